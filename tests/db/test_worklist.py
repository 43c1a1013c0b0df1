"""The worklist and the deviations, on each database, against a slow reference that recomputes
every participant's schedule; and the site feed, which must show every listed visit on the
same day."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import scheduler
from api import create_app
from api.cli import main
from api.http.context import container
from scheduler.history import (
    Complication,
    CryoablationDone,
    Discontinued,
    DoseGiven,
    DoseSkipped,
    Enrolment,
    OffStudy,
    RecoveryConfirmed,
    UnscheduledVisit,
    VisitDone,
    VisitMissed,
)
from scheduler.ical import visit_uid
from tests.conftest import D
from tests.db.conftest import SITE_TODAY, bearer

RECORDED_BY = dt.date(2026, 11, 20)  # the site's today while the histories are recorded
DAYS = ("2026-02-01", "2026-04-15", "2026-07-01", "2026-10-01", "2026-11-20", "2027-02-01")


# A reason a person typed, which a spreadsheet would run as a formula were it not quoted.
MISSED_REASON = "=scanner down, rebooked"


def history(stage: int, cryo: dt.date) -> list:
    """What happened to a participant at one of seven stages, counted from its cryoablation."""
    def day(offset: int) -> dt.date:
        return cryo + dt.timedelta(days=offset)
    recovered = [CryoablationDone(cryo), RecoveryConfirmed(day(7))]
    return [
        [],
        recovered,
        [*recovered, VisitDone("SCREEN-LABS", day(1)), DoseGiven(1, day(7))],
        [*recovered, VisitMissed("BASELINE-IMAGING", MISSED_REASON), DoseGiven(1, day(7)),
         DoseGiven(2, day(35))],
        [CryoablationDone(cryo), Complication(day(2), "haemorrhage")],
        [*recovered, DoseGiven(1, day(8)), DoseSkipped(2, "grade 3 rash"),
         Discontinued(day(40), "toxicity"), OffStudy(day(60), "withdrawal_of_consent")],
        [UnscheduledVisit(day(-3), "consent questions"), *recovered,
         VisitDone("BASELINE-IMAGING", day(-40)), DoseGiven(1, day(9))],
    ][stage]


@pytest.fixture
def db_app(database_url, tmp_path):
    """The service with the first protocol version current: the fifty histories below were
    written on its windows (the pregnancy test and baseline scan counted back from C1D1)."""
    v1 = Path(scheduler.__file__).parent / "protocols" / "NCT07064876.json"
    app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                      "SITE_FEED_DIR": str(tmp_path), "FEED_SECRET": "test-feed-secret",
                      "TODAY": SITE_TODAY, "PROTOCOL_FILE": str(v1)})
    yield app
    container(app).engine.dispose()


@pytest.fixture
def site(db_app):
    """Fifty participants at different stages, cryoablations a week apart from January."""
    services = container(db_app)
    services.clock.freeze(RECORDED_BY)
    people = services.participants
    ids = []
    for number in range(50):
        cryo = dt.date(2026, 1, 5) + dt.timedelta(days=7 * (number % 40))
        participant = people.enrol(Enrolment(f"WL-{number:03d}", cryo), "coordinator")
        for event in history(number % 7, cryo):
            if getattr(event, "date", None) is None or event.date <= RECORDED_BY:
                people.record(participant.id, event, "nurse", RECORDED_BY)
        ids.append(participant.id)
    return ids


def reference_worklist(db_app, ids, start, end, today):
    people = container(db_app).participants
    found = set()
    for pid in ids:
        participant, events = people.history(pid)
        for visit in people.compute(participant, events, today).visits:
            if visit.date is None or visit.window is None:
                continue
            if visit.status in ("due", "overdue") or (
                    visit.status in ("planned", "provisional") and start <= visit.date <= end):
                found.add((pid, visit.id, visit.date.isoformat(), visit.status))
    return found


def reference_deviations(db_app, ids, today):
    people = container(db_app).participants
    found = set()
    for pid in ids:
        participant, events = people.history(pid)
        for visit in people.compute(participant, events, today).visits:
            if visit.timing == "out_of_window":
                rule = "dose-window" if visit.kind == "infusion" else visit.rule.id
                found.add((pid, visit.id, "out_of_window", rule))
            elif visit.status in ("missed", "overdue"):
                found.add((pid, visit.id, visit.status, visit.rule.id))
    return found


def listed(body):
    return {(v["participant_id"], v["visit_id"], day["date"], v["status"])
            for day in body["days"] for v in day["visits"]}


def test_worklist_agrees_with_recomputed_schedules_on_every_day(db_app, client, keys, site):
    reader = bearer(keys["read"])
    answers = []
    for today in DAYS:
        container(db_app).clock.freeze(D(today))
        start, end = D(today), D(today) + dt.timedelta(days=14)
        response = client.get(f"/v1/worklist?from={start}&to={end}", headers=reader)
        assert response.status_code == 200
        body = response.get_json()
        assert (body["from"], body["to"], body["today"]) == (str(start), str(end), today)
        assert [day["date"] for day in body["days"]] == sorted(d["date"] for d in body["days"])
        assert listed(body) == reference_worklist(db_app, site, start, end, D(today))
        answers.append(listed(body))
    # Nothing was written between these reads: only the site's day changed.
    assert all(a != b for a, b in itertools.pairwise(answers))
    assert all(answers)


def test_the_overdue_metric_counts_what_the_recomputed_schedules_show_overdue(
        db_app, client, site):
    for today in DAYS:
        container(db_app).clock.freeze(D(today))
        expected = {(pid, visit) for pid, visit, status, _ in
                    reference_deviations(db_app, site, D(today)) if status == "overdue"}
        scraped = client.get("/metrics").get_data(as_text=True)
        assert f"\ntrial_schedule_visits_overdue {float(len(expected))}\n" in scraped, today
    assert expected  # the last day has some


def test_worklist_defaults_to_the_next_seven_days(db_app, client, keys, site):
    container(db_app).clock.freeze(D("2026-04-15"))
    body = client.get("/v1/worklist", headers=bearer(keys["read"])).get_json()
    assert (body["from"], body["to"]) == ("2026-04-15", "2026-04-22")
    assert listed(body) == reference_worklist(db_app, site, D("2026-04-15"), D("2026-04-22"),
                                              D("2026-04-15"))


def test_deviations_agree_with_recomputed_schedules(db_app, client, keys, site):
    reader = bearer(keys["read"])
    for today in ("2026-04-15", "2026-11-20"):
        container(db_app).clock.freeze(D(today))
        body = client.get("/v1/deviations", headers=reader).get_json()
        found = {(item["participant_id"], d["visit_id"], d["deviation"], d["rule"])
                 for item in body["items"] for d in item["deviations"]}
        expected = reference_deviations(db_app, site, D(today))
        assert found == expected
        assert {kind for _, _, kind, _ in expected} == {"out_of_window", "missed", "overdue"}
        answer = client.get("/v1/deviations?format=csv", headers=reader)
        assert answer.mimetype == "text/csv"
        rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
        assert rows[0] == ["subject_code", "participant_id", "visit_id", "title", "date",
                           "window_earliest", "window_latest", "status", "deviation", "rule",
                           "reason"]
        assert {(row[1], row[2], row[8], row[9]) for row in rows[1:]} == expected
        # A missed visit carries the reason recorded, and only a missed one has a reason.
        reasons = {d["deviation"]: set() for item in body["items"] for d in item["deviations"]}
        for item in body["items"]:
            for d in item["deviations"]:
                reasons[d["deviation"]].add(d["reason"])
        assert reasons == {"out_of_window": {None}, "missed": {MISSED_REASON}, "overdue": {None}}
        assert {row[10] for row in rows[1:] if row[8] == "missed"} == {"'" + MISSED_REASON}
        assert {row[10] for row in rows[1:] if row[8] != "missed"} == {""}


def test_every_worklist_visit_is_in_the_site_feed_on_the_same_day(db_app, client, keys, site):
    container(db_app).clock.freeze(D("2026-07-01"))
    body = client.get("/v1/worklist?from=2026-07-01&to=2026-09-30",
                      headers=bearer(keys["read"])).get_json()
    link = client.post("/v1/site/feed-token", headers=bearer(keys["admin"])).get_json()
    path = link["feed"]["https"].split("://", 1)[1].split("/", 1)[1]
    with client.get("/" + path) as response:
        text = response.get_data(as_text=True).replace("\r\n ", "")
    feed = {uid: start for start, uid in re.findall(
        r"DTSTART;VALUE=DATE:(\d{8})[\s\S]*?UID:([^\r\n]+)", text)}
    entries = [(v["participant_id"], v["visit_id"], day["date"])
               for day in body["days"] for v in day["visits"]]
    assert len(entries) > 20
    for pid, visit_id, date in entries:
        assert feed[visit_uid(f"site/{pid}", visit_id)] == date.replace("-", "")


def test_a_participant_is_found_by_subject_code_with_state_and_next_visit(
        db_app, client, keys, site):
    container(db_app).clock.freeze(D("2026-01-06"))
    body = client.get("/v1/participants?subject_code=WL-001",
                      headers=bearer(keys["read"])).get_json()
    assert [item["subject_code"] for item in body["items"]] == ["WL-001"]
    item = body["items"][0]
    assert (item["id"], item["state"]) == (site[1], "scheduled")
    assert (item["next_visit"]["id"], item["next_visit"]["status"]) == ("BASELINE-IMAGING",
                                                                       "due")
    none = client.get("/v1/participants?subject_code=WL-999", headers=bearer(keys["read"]))
    assert none.get_json() == {"items": [], "next_cursor": None}


def test_the_command_line_prints_the_worklist_and_a_participant_by_day(
        db_app, database_url, monkeypatch):
    people = container(db_app).participants
    enrolled = people.enrol(Enrolment("CLI-001", D("2026-03-02")), "coordinator")
    people.record(enrolled.id, RecoveryConfirmed(D("2026-03-09")), "nurse", D("2026-03-09"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("TRIAL_SCHEDULE_FEED_SECRET", "test-feed-secret")
    monkeypatch.setenv("TRIAL_SCHEDULE_TODAY", "2026-03-10")
    result = CliRunner().invoke(main, ["worklist", "--to", "2026-03-12"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ("Worklist Tue 2026-03-10 to Thu 2026-03-12, as of Tue 2026-03-10: "
                        "3 visits")
    assert [re.split(r"\s{2,}", line) for line in lines[1:]] == [
        ["date", "subject", "visit", "title", "window", "status", "why"],
        # One day's visits in the protocol's clinical order (rule same-day-order): labs,
        # then the scan, then the infusion.
        ["Mon 2026-03-09", "CLI-001", "SCREEN-LABS",
         "Screening labs (haematology, liver, renal, coagulation, urinalysis)",
         "2026-02-23..2026-03-09", "overdue", "window closed 2026-03-09 (rule screening-labs)"],
        ["Mon 2026-03-09", "CLI-001", "BASELINE-IMAGING",
         "Baseline imaging (measurable target lesion, mRECIST (2019))",
         "2026-02-09..2026-03-09", "overdue",
         "window closed 2026-03-09 (rule baseline-imaging)"],
        ["Mon 2026-03-09", "CLI-001", "C1D1", "Serplulimab 300 mg IV, cycle 1",
         "2026-03-09..2026-03-12", "due", "window open until 2026-03-12 (rule first-dose)"]]
    shown = CliRunner().invoke(main, ["participant", "show", "CLI-001"])
    assert shown.exit_code == 0, shown.output
    output = shown.output.splitlines()
    assert output[0] == (
        f"CLI-001 ({enrolled.id}): scheduled, as of Tue 2026-03-10; protocol NCT07064876 "
        "version 2025-09-15.1")
    recovery = next(line for line in output if " RECOVERY " in line)
    assert re.split(r"\s{2,}", recovery) == [
        "Mon 2026-03-09", "RECOVERY", "Recovery check after cryoablation",
        "2026-03-09..2026-03-09", "done 2026-03-09 (in window)",
        "recovery confirmed 2026-03-09 (rule recovery-gate)"]
    missing = CliRunner().invoke(main, ["participant", "show", "CLI-404"])
    assert (missing.exit_code, missing.output) == (
        1, "Error: no participant with subject code 'CLI-404'\n")


def test_held_doses_and_a_proved_cryoablation_read_the_same_in_the_worklist_as_in_the_schedule(
        database_url, tmp_path):
    """Revision 3 (rule held-dose-projection): while a dose is held, the dates after it are
    projected from the site's today. The worklist, the deviations and the site's CSV agree with
    the schedule computed for each day, with no write between the reads; nobody still on
    treatment is asked for an end-of-treatment visit."""
    app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                      "SITE_FEED_DIR": str(tmp_path), "FEED_SECRET": "test-feed-secret",
                      "TODAY": "2026-04-01"})
    services = container(app)
    people = services.participants
    ids = []
    for number, cryo in enumerate((D("2026-01-05"), D("2026-02-02"), D("2026-03-02"))):
        participant = people.enrol(Enrolment(f"HD-{number}", cryo), "coordinator")
        recovered, first = cryo + dt.timedelta(days=7), cryo + dt.timedelta(days=7)
        for event in (CryoablationDone(cryo), RecoveryConfirmed(recovered),
                      DoseGiven(1, first), DoseGiven(2, first + dt.timedelta(days=21))):
            if event.date <= D("2026-04-01"):
                people.record(participant.id, event, "nurse", D("2026-04-01"))
        ids.append(participant.id)
    # Recovery recorded, the cryoablation not: proved, so not overdue (rule cryoablation),
    # though the worklist's read of open visits does not hold the recovery that proves it.
    unrecorded = people.enrol(Enrolment("HD-cryo", D("2026-03-09")), "coordinator")
    people.record(unrecorded.id, RecoveryConfirmed(D("2026-03-16")), "nurse", D("2026-04-01"))
    ids.append(unrecorded.id)
    reader = bearer(services.api_keys.create("reader", "read"))
    client = app.test_client()
    for today in ("2026-04-20", "2026-05-18", "2026-07-06", "2026-09-01"):
        services.clock.freeze(D(today))
        start, end = D(today), D(today) + dt.timedelta(days=30)
        body = client.get(f"/v1/worklist?from={start}&to={end}", headers=reader).get_json()
        assert listed(body) == reference_worklist(app, ids, start, end, D(today)), today
        found = {(item["participant_id"], d["visit_id"], d["deviation"], d["rule"])
                 for item in client.get("/v1/deviations", headers=reader).get_json()["items"]
                 for d in item["deviations"]}
        assert found == reference_deviations(app, ids, D(today)), today
        assert not [v for day in body["days"] for v in day["visits"]
                    if v["visit_id"] in ("EOT", "CRYO") and v["status"] == "overdue"], today
    container(app).engine.dispose()
