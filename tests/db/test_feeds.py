"""Calendar feeds follow every recomputation cleanly, read the same by every client."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from api.http.context import container
from tests.db.conftest import bearer
from tests.feed_readers import agreed_pairs, check_bytes, need

# The story's days: enrolled and dosed by 03-20, the late dose and the discontinuation recorded
# on 04-10. Nothing is held on either day (a dose held past its window would re-project the
# chain after it from the site's today, rule held-dose-projection).
STORY_START, STORY_WRITES = dt.date(2026, 3, 20), dt.date(2026, 4, 10)


@pytest.fixture
def enrolled(client, writer):
    container(client.application).clock.freeze(STORY_START)
    participant = client.post("/v1/participants", json={
        "subject_code": "ZS-001", "cryoablation_date": "2026-03-02",
        "childbearing_potential": True}, headers=writer).get_json()
    events = f"/v1/participants/{participant['id']}/events"
    for body in ({"type": "recovery_confirmed", "date": "2026-03-09"},
                 {"type": "dose_given", "cycle": 1, "date": "2026-03-09"}):
        assert client.post(events, json=body, headers=writer).status_code == 201
    return participant


def path_of(link: str) -> str:
    return "/" + link.split("://", 1)[1].split("/", 1)[1]


def feed(client, participant) -> bytes:
    response = client.get(path_of(participant["feed"]["https"]))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    return response.data


def by_visit(data: bytes) -> dict[str, dict[str, str]]:
    """Each event's properties, by the visit id it carries (unfolded)."""
    text = re.sub(r"\r\n[ \t]", "", data.decode())
    visits = {}
    for block in text.split("BEGIN:VEVENT")[1:]:
        own = block.split("END:VEVENT")[0].split("BEGIN:VALARM")[0]  # not the alarm's lines
        fields = dict(line.split(":", 1) for line in own.split("\r\n")
                      if ":" in line and not line.startswith(("BEGIN", "END")))
        visits[fields["X-TRIAL-VISIT-ID"]] = fields
    return visits


def late_dose_then_discontinuation(client, writer, participant):
    container(client.application).clock.freeze(STORY_WRITES)
    events = f"/v1/participants/{participant['id']}/events"
    assert client.post(events, json={"type": "dose_given", "cycle": 2, "date": "2026-04-03"},
                       headers=writer).status_code == 201
    after_late = feed(client, participant)
    assert client.post(events, json={"type": "discontinued", "date": "2026-04-10",
                                     "reason": "progression"}, headers=writer).status_code == 201
    return after_late, feed(client, participant)


def test_four_readers_agree_before_and_after_a_late_dose_and_a_discontinuation(
        client, writer, enrolled):
    before = feed(client, enrolled)
    after_late, after_stop = late_dose_then_discontinuation(client, writer, enrolled)
    readings = [agreed_pairs(data) for data in (before, after_late, after_stop)]
    for data in (before, after_late, after_stop):
        check_bytes(data)
    uid_of = {v: f["UID"] for v, f in by_visit(before).items()}
    start = dict(readings[0])
    assert start[uid_of["C3D1"]] == "2026-04-20"
    assert dict(readings[1])[uid_of["C3D1"]] == "2026-04-24"  # moved with the late dose
    assert uid_of["C3D1"] not in dict(readings[2])             # cancelled: gone
    assert dict(readings[2])[uid_of["C2D1"]] == "2026-04-03"


def test_sequence_rises_only_for_visits_that_changed(client, writer, enrolled):
    before = by_visit(feed(client, enrolled))
    after_late, _ = late_dose_then_discontinuation(client, writer, enrolled)
    after = by_visit(after_late)
    assert {v: f["UID"] for v, f in after.items()} == {
        v: before[v]["UID"] for v in after}  # UIDs stable
    assert after["C3D1"]["SEQUENCE"] == str(int(before["C3D1"]["SEQUENCE"]) + 1)
    assert after["C3D1"]["DTSTAMP"] >= before["C3D1"]["DTSTAMP"]  # seconds resolution
    assert after["CRYO"]["SEQUENCE"] == before["CRYO"]["SEQUENCE"]
    assert after["CRYO"]["DTSTAMP"] == before["CRYO"]["DTSTAMP"]
    assert after["C2D1"]["X-TRIAL-VISIT-STATUS"] == "done"


def test_the_same_schedule_gives_the_same_bytes_and_etag(client, enrolled):
    link = path_of(enrolled["feed"]["https"])
    first, second = client.get(link), client.get(link)
    assert first.data == second.data
    assert first.headers["ETag"] == second.headers["ETag"]
    assert client.get(link, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    assert client.get(link, headers={
        "If-Modified-Since": first.headers["Last-Modified"]}).status_code == 304


def source_of(data: bytes) -> list[str]:
    """Every SOURCE the calendar carries (RFC 7986 §5.8), unfolded."""
    text = re.sub(r"\r\n[ \t]", "", data.decode())
    return re.findall(r"\r\nSOURCE;VALUE=URI:([^\r]*)\r\n", text)


def test_calendar_metadata_and_event_text(client, enrolled):
    data = feed(client, enrolled)
    text = re.sub(r"\r\n[ \t]", "", data.decode())
    for line in ("NAME:NCT07064876 ZS-001", "X-WR-CALNAME:NCT07064876 ZS-001",
                 "REFRESH-INTERVAL;VALUE=DURATION:PT1H", "X-PUBLISHED-TTL:PT1H",
                 "SOURCE;VALUE=URI:" + enrolled["feed"]["https"]):
        assert text.count("\r\n" + line + "\r\n") == 1, line
    assert "\r\nMETHOD" not in text
    c2 = by_visit(data)["C2D1"]
    assert c2["DTSTART;VALUE=DATE"] == "20260330" and c2["DTEND;VALUE=DATE"] == "20260331"
    assert c2["SUMMARY"] == "ZS-001: Serplulimab 300 mg IV\\, cycle 2"
    assert "window 2026-03-27 to 2026-04-02" in c2["DESCRIPTION"]
    assert "why: cycle 1 given 2026-03-09 + 21 days" in c2["DESCRIPTION"]
    assert "TRIGGER:-P1D" in text


def test_provisional_visits_say_so(client, writer):
    participant = client.post("/v1/participants", json={
        "subject_code": "ZS-002", "cryoablation_date": "2026-03-02"}, headers=writer).get_json()
    c1 = by_visit(feed(client, participant))["C1D1"]
    assert c1["SUMMARY"].endswith("(provisional)") and c1["STATUS"] == "TENTATIVE"


def test_rotating_a_token_kills_the_old_url_at_once(client, writer, enrolled):
    old = path_of(enrolled["feed"]["https"])
    before = client.get(old)  # warms every cache under the old token
    assert source_of(before.data) == [enrolled["feed"]["https"]]
    rotated = client.post(f"/v1/participants/{enrolled['id']}/feed-token", headers=writer)
    assert rotated.status_code == 200
    assert client.get(old).status_code == 404
    new = client.get(path_of(rotated.get_json()["feed"]["https"]))
    assert new.status_code == 200
    assert source_of(new.data) == [rotated.get_json()["feed"]["https"]]  # never the old URL
    assert new.headers["ETag"] != before.headers["ETag"]
    assert rotated.get_json()["feed"]["webcal"].startswith("webcal://")


@pytest.mark.parametrize("token", ["nope", "a" * 32 + ".x", "x" * 500, ""])
def test_a_wrong_token_is_404(client, enrolled, token):
    response = client.get(f"/feeds/{token}.ics")
    assert response.status_code == 404


def test_site_feed_needs_an_admin_to_issue_and_lists_every_participant(
        client, keys, writer, enrolled):
    assert client.post("/v1/site/feed-token", headers=writer).status_code == 403
    issued = client.post("/v1/site/feed-token", headers=bearer(keys["admin"]))
    assert issued.status_code == 200
    client.post("/v1/participants", json={"subject_code": "ZS-002",
                                          "cryoablation_date": "2026-04-01"}, headers=writer)
    link = path_of(issued.get_json()["feed"]["https"])
    with client.get(link) as response:  # a file served by sendfile: close it
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
        data = response.data
    with client.get(link) as again_served:
        assert again_served.data == data  # the assembled file, served again
    check_bytes(data)
    assert source_of(data) == [issued.get_json()["feed"]["https"]]
    assert data.index(b"SOURCE") < data.index(b"BEGIN:VEVENT")  # the calendar's, not an event's
    summaries = re.findall(r"SUMMARY:(ZS-\d+):", data.decode())
    assert set(summaries) == {"ZS-001", "ZS-002"}
    assert len(agreed_pairs(data)) == data.count(b"BEGIN:VEVENT")
    assert client.get(link, headers={"If-None-Match": response.headers["ETag"]}).status_code \
        == 304
    again = client.post("/v1/site/feed-token", headers=bearer(keys["admin"])).get_json()
    assert client.get(link).status_code == 404
    with client.get(path_of(again["feed"]["https"])) as rotated:
        assert rotated.status_code == 200
        assert source_of(rotated.data) == [again["feed"]["https"]]  # never the old URL
        assert rotated.headers["ETag"] != response.headers["ETag"]


def test_the_site_feed_follows_a_change(client, keys, writer, enrolled):
    link = path_of(client.post("/v1/site/feed-token", headers=bearer(keys["admin"]))
                   .get_json()["feed"]["https"])
    with client.get(link) as before:
        old = before.data
    events = f"/v1/participants/{enrolled['id']}/events"
    container(client.application).clock.freeze(STORY_WRITES)
    assert client.post(events, json={"type": "dose_given", "cycle": 2, "date": "2026-04-03"},
                       headers=writer).status_code == 201
    with client.get(link, headers={"If-None-Match": before.headers["ETag"]}) as after:
        assert after.status_code == 200 and after.data != old
        assert "X-TRIAL-VISIT-ID:C2D1" in after.data.decode()


def test_feed_tokens_are_stored_only_as_digests(db_app, client, enrolled):
    import sqlalchemy as sa

    token = path_of(enrolled["feed"]["https"]).split("/")[-1].removesuffix(".ics")
    with container(db_app).engine.connect() as connection:
        stored = repr(connection.execute(sa.text("SELECT * FROM feed_tokens")).all())
    assert token not in stored and token.split(".")[1] not in stored


def installed(tool: str) -> str | None:
    """A tool from this virtualenv (make test installs them), or from PATH."""
    beside = Path(sys.executable).parent / tool
    return str(beside) if beside.exists() else shutil.which(tool)


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result.stdout


def test_a_real_subscriber_follows_every_change(db_app, client, writer, enrolled, tmp_path):
    """vdirsyncer subscribes to the feed served on 127.0.0.1; khal lists what it synced."""
    vdirsyncer, khal = installed("vdirsyncer"), installed("khal")
    need(vdirsyncer is not None and khal is not None, "vdirsyncer and khal are not installed")
    server = make_server("127.0.0.1", 0, db_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}{path_of(enrolled['feed']['https'])}"
        calendar = tmp_path / "calendar"
        calendar.mkdir()
        (tmp_path / "vdirsyncer.conf").write_text(f"""
[general]
status_path = "{tmp_path}/status/"

[pair feed]
a = "remote"
b = "local"
collections = null
conflict_resolution = "a wins"

[storage remote]
type = "http"
url = "{url}"

[storage local]
type = "filesystem"
path = "{calendar}/"
fileext = ".ics"
""")
        (tmp_path / "khal.conf").write_text(f"""
[calendars]
[[trial]]
path = {calendar}/
type = calendar

[locale]
timeformat = %H:%M
dateformat = %Y-%m-%d
longdateformat = %Y-%m-%d
datetimeformat = %Y-%m-%d %H:%M
longdatetimeformat = %Y-%m-%d %H:%M
default_timezone = Asia/Shanghai
local_timezone = Asia/Shanghai
""")
        env = {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path),
               "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        sync = [vdirsyncer, "-c", str(tmp_path / "vdirsyncer.conf")]

        def listed() -> list[str]:
            run([*sync, "sync"], env=env)
            out = run([khal, "-c", str(tmp_path / "khal.conf"), "list", "2026-01-01",
                       "2028-01-01", "--format", "{start-date} {title}"], env=env)
            return [line for line in out.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)]

        run([*sync, "discover"], env=env, input="y\n")
        first = listed()
        assert "2026-04-20 ZS-001: Serplulimab 300 mg IV, cycle 3" in first
        late_dose_then_discontinuation(client, writer, enrolled)
        last = listed()
    finally:
        server.shutdown()
        thread.join(timeout=10)
    expected = sorted(f"{v.date.isoformat()} {title}" for v, title in expected_visits(db_app,
                                                                                    enrolled))
    assert sorted(last) == expected                      # exactly the new schedule
    assert len(last) == len(set(last))                   # nothing duplicated
    assert "2026-04-03 ZS-001: Serplulimab 300 mg IV, cycle 2" in last      # moved
    assert not any("cycle 3" in line or "cycle 4" in line for line in last)  # removed


def expected_visits(db_app, participant):
    service = container(db_app).participants
    stored, history = service.history(participant["id"])
    schedule = service.compute(stored, history)
    code = stored.enrolment.subject_code
    marks = {"provisional": " (provisional)"}
    return [(v, f"{code}: {v.title}{marks.get(v.status, '')}") for v in schedule.visits
            if v.date is not None]


def test_reading_a_held_participants_feed_on_a_later_day_writes_nothing(client, writer,
                                                                         enrolled):
    """C2D1 is due 03-30; on 05-18 nothing is recorded, so a revision 3 schedule re-projects
    the cycles after it from that day. The feed shows the visit states as the last write
    stored them, and reading it rewrites nothing: the participant's version stays."""
    where = f"/v1/participants/{enrolled['id']}"
    version = client.get(where, headers=writer).headers["ETag"]
    before = by_visit(feed(client, enrolled))
    container(client.application).clock.freeze(dt.date(2026, 5, 18))
    schedule = client.get(f"{where}/schedule", headers=writer).get_json()
    c3 = next(v for v in schedule["visits"] if v["id"] == "C3D1")
    assert (c3["date"], c3["status"]) == ("2026-06-08", "provisional")  # projected from today
    later = by_visit(feed(client, enrolled))
    assert later["C3D1"]["DTSTART;VALUE=DATE"] == before["C3D1"]["DTSTART;VALUE=DATE"]
    assert client.get(where, headers=writer).headers["ETag"] == version
