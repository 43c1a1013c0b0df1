"""Conditional GETs compare If-None-Match weakly; the calculator answers a repeated body from
memory, exactly as it answered it the first time; a calendar's UIDs do not follow `as_of`."""

from __future__ import annotations

import json
import re

from api.http.context import container
from tests.api.conftest import REFERENCE

CALENDAR = ("/v1/schedules.ics?cryoablation_date=2026-03-02&recovery_status=recovered"
            "&recovery_date=2026-03-09&dose_given=1:2026-03-09")


def test_protocol_revalidates_with_a_weak_tag(client):
    etag = client.get("/v1/protocol").headers["ETag"]
    assert client.get("/v1/protocol", headers={"If-None-Match": f"W/{etag}"}).status_code \
        == 304


def test_schedule_calendar_revalidates_with_a_weak_tag_in_a_list(client):
    etag = client.get(CALENDAR).headers["ETag"]
    response = client.get(CALENDAR, headers={"If-None-Match": f'"other", W/{etag}'})
    assert response.status_code == 304
    assert response.headers["ETag"] == etag


def test_openapi_document_revalidates_with_a_weak_tag(client):
    etag = client.get("/openapi.yaml").headers["ETag"]
    assert client.get("/openapi.yaml", headers={"If-None-Match": f"W/{etag}"}).status_code \
        == 304


def uids(text: str) -> list[str]:
    return re.findall(r"^UID:(.+)\r$", text, re.M)


def site_today(app):
    return container(app).clock.today()


def test_calendar_uids_do_not_change_with_as_of(client):
    # As of a day inside C2D1's window nothing is held (rule held-dose-projection would
    # re-project the chain after a dose held past its window): the day changes statuses only.
    plain = client.get(CALENDAR + "&as_of=2026-03-20").get_data(as_text=True)
    later = client.get(CALENDAR + "&as_of=2026-04-01").get_data(as_text=True)
    assert uids(plain) == uids(later)
    assert len(uids(plain)) == plain.count("BEGIN:VEVENT") > 10


def test_a_repeated_schedule_body_is_answered_from_memory_with_the_same_bytes(app, client):
    body = b'{"cryoablation_date": "2026-03-02", "recovery": {"status": "recovered", ' \
           b'"date": "2026-03-16"}}'
    first = client.post("/v1/schedules", data=body, content_type="application/json")
    assert first.status_code == 200
    kept = container(app).schedules
    assert kept.answers.get(kept.answer_key(body, site_today(app))) == first.data
    second = client.post("/v1/schedules", data=body, content_type="application/json")
    assert second.status_code == 200 and second.data == first.data
    assert second.headers["Content-Type"] == "application/json"


def test_a_body_that_failed_is_not_remembered_and_fails_again(app, client):
    body = b'{"cryoablation_date": "2026-03-02", "recovery": {"status": "nope"}}'
    for _ in range(2):
        response = client.post("/v1/schedules", data=body, content_type="application/json")
        assert response.status_code == 422
        assert response.get_json()["errors"] == {
            "recovery.status": ["Must be one of: pending, recovered, complication."]}
    kept = container(app).schedules
    assert kept.answers.get(kept.answer_key(body, site_today(app))) is None


def test_a_remembered_body_still_needs_a_json_content_type(client):
    raw = json.dumps(REFERENCE).encode()
    assert client.post("/v1/schedules", data=raw, content_type="application/json") \
        .status_code == 200
    response = client.post("/v1/schedules", data=raw, content_type="text/plain")
    assert response.status_code == 415
