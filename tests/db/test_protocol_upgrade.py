"""Upgrading a database whose participants were computed under the first protocol version:
every schedule stays byte for byte what it was, on every configured database, until a
`protocol_version_changed` event moves a participant, and that event's answer lists every
date it moved."""

from __future__ import annotations

import datetime as dt
import os
import re

import pytest
import sqlalchemy as sa
from flask import jsonify

from api import create_app
from api.http.context import container
from api.http.schemas import schedule_dict
from api.persistence.database import create_db_engine, scratch_database
from api.persistence.migrate import upgrade
from scheduler import compute_schedule
from scheduler.history import Enrolment, Event, fold, outcomes_of
from scheduler.outcomes import apply_outcomes, on_day
from scheduler.subscription import changed_states
from tests.conftest import PROTOCOL_V1, PROTOCOL_V2, SITE, D
from tests.db.conftest import BACKENDS, bearer

V1, V2 = "2025-09-15.1", "2026-11-25.2"
TODAY = D("2026-11-25")
WHEN = dt.datetime(2026, 6, 2, 8, 0, tzinfo=dt.UTC)

# Cycles 2 and 3 each three weeks late: under the first version the scans fall on 08-24 and
# 09-09, sixteen days apart; under revision 2 the post-treatment scan is 12-09.
LATE = ("ZS-LATE", [("recovery_confirmed", {"date": D("2026-03-09")}),
                    ("dose_given", {"cycle": 1, "date": D("2026-03-09")}),
                    ("dose_given", {"cycle": 2, "date": D("2026-04-20")}),
                    ("dose_given", {"cycle": 3, "date": D("2026-06-01")})])
# A complication dated before the confirmed recovery, entered after it: the first version
# folds by entry order (on hold), revision 2 by date (scheduled).
ORDER = ("ZS-ORDER", [("recovery_confirmed", {"date": D("2026-03-09")}),
                      ("complication", {"date": D("2026-03-05"), "description": "pneumothorax"})])


@pytest.fixture(params=BACKENDS)
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"
        return
    with scratch_database(os.environ["TEST_DATABASE_URL"], "trial_schedule_upgrade") as url:
        yield url


def history(code: str, entered: list[tuple[str, dict[str, object]]]) -> list[Event]:
    return [Event(f"{code}-e{seq}", seq, kind, "edc", WHEN, **values)  # type: ignore[arg-type]
            for seq, (kind, values) in enumerate(entered, 1)]


def under(protocol, code: str, events: list[Event]):
    # As the service shows it: what the history records, and the day's due and overdue.
    return on_day(recorded_under(protocol, code, events), TODAY)


def recorded_under(protocol, code: str, events: list[Event]):
    """What the stored visit states hold: the recorded schedule, before the day's statuses."""
    enrolment = Enrolment(code, D("2026-03-02"))
    facts = fold(enrolment, events, TODAY, protocol=protocol)
    return apply_outcomes(compute_schedule(protocol, facts, SITE), outcomes_of(events))


def store_at_0002(engine: sa.Engine, code: str, events: list[Event]) -> str:
    """A participant as the service stored it before protocol versions were recorded: its
    row, its events and the visit states its feed was built from."""
    participant_id = f"00000000-0000-0000-0000-{code[-4:].lower():0>12}"
    meta = sa.MetaData()
    with engine.begin() as connection:
        participants, events_table, states = (
            sa.Table(name, meta, autoload_with=connection)
            for name in ("participants", "events", "visit_states"))
        assert "protocol_version" not in participants.c  # the old schema
        connection.execute(participants.insert().values(
            id=participant_id, subject_code=code, cryoablation_date=D("2026-03-02"),
            childbearing_potential=False, lookbacks={}, version=len(events) + 1,
            enrolled_at=WHEN, enrolled_by="edc", updated_at=WHEN))
        for event in events:
            connection.execute(events_table.insert().values(
                id=event.id, participant_id=participant_id, seq=event.seq, type=event.type,
                date=event.date, cycle=event.cycle, description=event.description,
                recorded_by=event.recorded_by, recorded_at=event.recorded_at))
        for state in changed_states({}, recorded_under(PROTOCOL_V1, code, events), WHEN):
            connection.execute(states.insert().values(
                participant_id=participant_id, visit_id=state.visit_id, date=state.date,
                earliest=state.earliest, latest=state.latest, status=state.status,
                present=state.present, sequence=state.sequence, changed_at=state.changed_at))
    return participant_id


def sequences(data: bytes) -> dict[str, int]:
    text = re.sub(r"\r\n[ \t]", "", data.decode())
    return {block.split("X-TRIAL-VISIT-ID:")[1].split("\r\n")[0]:
            int(block.split("SEQUENCE:")[1].split("\r\n")[0])
            for block in text.split("BEGIN:VEVENT")[1:]}


def site_visits(client, link: str, code: str) -> dict[str, str]:
    """One participant's visits in the site feed, with their dates."""
    with client.get(link) as response:
        text = re.sub(r"\r\n[ \t]", "", response.data.decode())
    return {block.split("X-TRIAL-VISIT-ID:")[1].split("\r\n")[0]:
            block.split("DTSTART;VALUE=DATE:")[1].split("\r\n")[0]
            for block in text.split("BEGIN:VEVENT")[1:] if f"SUMMARY:{code}:" in block}


def test_an_upgrade_keeps_every_schedule_byte_identical_until_a_version_change_moves_one(
        empty_url):
    engine = create_db_engine(empty_url)
    upgrade(engine, "0002")
    late_events, order_events = history(*LATE), history(*ORDER)
    late_id = store_at_0002(engine, LATE[0], late_events)
    order_id = store_at_0002(engine, ORDER[0], order_events)
    upgrade(engine)
    engine.dispose()

    app = create_app({"DATABASE_URL": empty_url, "TESTING": True,
                      "FEED_SECRET": "test-feed-secret"})
    container(app).clock.freeze(TODAY)
    writer = bearer(container(app).api_keys.create("edc", "write"))
    admin = bearer(container(app).api_keys.create("site", "admin"))
    client = app.test_client()
    site_link = client.post("/v1/site/feed-token", headers=admin).get_json()["feed"]["https"]
    site_path = "/" + site_link.split("://", 1)[1].split("/", 1)[1]
    with app.app_context():
        v1_bytes = {pid: jsonify(schedule_dict(under(PROTOCOL_V1, code, events))).get_data()
                    for pid, code, events in ((late_id, LATE[0], late_events),
                                              (order_id, ORDER[0], order_events))}
        v2_late = jsonify(schedule_dict(under(PROTOCOL_V2, LATE[0], late_events))).get_data()
    assert v2_late != v1_bytes[late_id]  # revision 2 would move this participant's dates

    for pid in (late_id, order_id):
        shown = client.get(f"/v1/participants/{pid}", headers=writer).get_json()
        assert shown["protocol"] == {"id": "NCT07064876", "version": V1}
        assert client.get(f"/v1/participants/{pid}/schedule", headers=writer).data \
            == v1_bytes[pid]
    # The feed is built from the stored visit states: nothing moved, so no SEQUENCE rose. The
    # first read fills in the worklist's columns of states stored before they existed (one
    # write, the participant's version once), and the next read writes nothing.
    link = client.post(f"/v1/participants/{late_id}/feed-token", headers=writer) \
        .get_json()["feed"]["https"]
    feed_path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    version_before = client.get(f"/v1/participants/{late_id}", headers=writer) \
        .get_json()["version"]
    first_feed = client.get(feed_path).data
    assert set(sequences(first_feed).values()) == {0}
    filled = client.get(f"/v1/participants/{late_id}", headers=writer).get_json()["version"]
    assert filled in (version_before, version_before + 1)
    assert sequences(client.get(feed_path).data) == sequences(first_feed)
    assert client.get(f"/v1/participants/{late_id}", headers=writer).get_json()["version"] \
        == filled

    site_before = site_visits(client, site_path, LATE[0])
    assert {visit: site_before[visit] for visit in ("IMG-5", "IMG-8")} == {
        "IMG-5": "20260909", "IMG-8": "20270909"}

    moved = client.post(f"/v1/participants/{late_id}/events", headers=writer, json={
        "type": "protocol_version_changed", "version": V2,
        "reason": "protocol amendment approved by the ethics committee"})
    assert moved.status_code == 201, moved.get_json()
    answer = moved.get_json()
    assert answer["protocol_change"] == {
        "old_version": V1, "new_version": V2,
        "moved": [
            {"visit_id": "BASELINE-IMAGING", "old_date": "2026-03-09", "new_date": "2026-02-24"},
            {"visit_id": "IMG-5", "old_date": "2026-09-09", "new_date": "2026-12-09"},
            {"visit_id": "IMG-6", "old_date": "2026-12-09", "new_date": "2027-03-09"},
            {"visit_id": "IMG-7", "old_date": "2027-03-09", "new_date": "2027-09-09"}],
        "added": [],
        "removed": [{"visit_id": "IMG-8", "date": "2027-09-09"}]}
    assert answer["event"]["version"] == V2
    assert answer["event"]["changes"] == [
        f"protocol: {V1} -> {V2}", "BASELINE-IMAGING: 2026-03-09 -> 2026-02-24",
        "IMG-5: 2026-09-09 -> 2026-12-09", "IMG-6: 2026-12-09 -> 2027-03-09",
        "IMG-7: 2027-03-09 -> 2027-09-09", "IMG-8: removed from 2027-09-09"]
    assert answer["schedule"]["protocol"] == {"id": "NCT07064876", "version": V2}

    assert client.get(f"/v1/participants/{late_id}/schedule", headers=writer).data == v2_late
    assert client.get(f"/v1/participants/{late_id}", headers=writer).get_json()["protocol"] \
        == {"id": "NCT07064876", "version": V2}
    history_types = [e["type"] for e in client.get(
        f"/v1/participants/{late_id}/events", headers=writer).get_json()["items"]]
    assert history_types[-1] == "protocol_version_changed"
    # The other participant was not moved: still byte for byte its first-version schedule.
    assert client.get(f"/v1/participants/{order_id}/schedule", headers=writer).data \
        == v1_bytes[order_id]
    # Subscribers see the moved scans as the same events with a higher SEQUENCE.
    after = sequences(client.get(feed_path).data)
    assert {visit: seq for visit, seq in after.items() if seq} == {
        "BASELINE-IMAGING": 1, "IMG-5": 1, "IMG-6": 1, "IMG-7": 1}
    assert "IMG-8" not in after
    site_after = site_visits(client, site_path, LATE[0])
    assert (site_after["IMG-5"], "IMG-8" in site_after) == ("20261209", False)
    container(app).engine.dispose()
