"""What a write announces to webhook receivers, and how a delivery is signed and retried
(api/usecases/webhooks.py), without a database."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from api.persistence.records import ClaimedDelivery, StoredParticipant
from api.usecases.participants import Written
from api.usecases.webhooks import (
    WebhookSettings,
    message_body,
    messages_of,
    new_secret,
    schedule_change,
    signed_headers,
)
from scheduler.history import Enrolment, Event
from scheduler.subscription import VisitState

WHEN = dt.datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=dt.UTC)
PARTICIPANT = StoredParticipant("p-1", Enrolment("ZS-001", dt.date(2026, 3, 2)), 3, WHEN, "edc",
                                WHEN, protocol_version="2026-11-25.2")


def state(visit_id: str, day: str | None, present: bool = True) -> VisitState:
    date = dt.date.fromisoformat(day) if day else None
    return VisitState(visit_id, date, date, date, "planned", present, 1, WHEN)


def event(type_: str, **values: object) -> Event:
    return Event(id="e-1", seq=2, type=type_, recorded_by="edc", recorded_at=WHEN,
                 **values)  # type: ignore[arg-type]


def test_a_moved_dose_lists_each_moved_visit_with_its_old_and_new_date():
    before = {"C1D1": state("C1D1", "2026-03-09"), "C2D1": state("C2D1", "2026-03-30"),
              "EOT": state("EOT", "2026-08-01"), "OLD": state("OLD", "2026-04-01"),
              "GONE": state("GONE", "2026-05-01", present=False)}
    after = {"C1D1": state("C1D1", "2026-03-09"), "C2D1": state("C2D1", "2026-04-02"),
             "EOT": state("EOT", None), "OLD": state("OLD", "2026-04-01", present=False),
             "NEW": state("NEW", "2026-04-20"), "GONE": state("GONE", "2026-05-01", False)}
    assert schedule_change(before, after) == {
        "moved": [{"visit_id": "C2D1", "old_date": "2026-03-30", "new_date": "2026-04-02"},
                  {"visit_id": "EOT", "old_date": "2026-08-01", "new_date": None}],
        "added": [{"visit_id": "NEW", "date": "2026-04-20"}],
        "removed": [{"visit_id": "OLD", "date": "2026-04-01"}]}


def test_a_status_alone_is_no_change_of_schedule():
    before = {"C1D1": state("C1D1", "2026-03-09")}
    after = {"C1D1": VisitState("C1D1", dt.date(2026, 3, 9), None, None, "done", True, 2, WHEN)}
    written = Written(PARTICIPANT, event("dose_given", cycle=1, date=dt.date(2026, 3, 9)),
                      before, after)
    assert messages_of(written) == []


def test_enrolment_announces_the_participant_only():
    [(kind, data)] = messages_of(Written(PARTICIPANT, None, {}, {"CRYO": state("CRYO",
                                                                                 "2026-03-02")}))
    assert kind == "participant.enrolled"
    assert data == {"participant_id": "p-1", "subject_code": "ZS-001",
                    "protocol_version": "2026-11-25.2", "participant_version": 3,
                    "cryoablation_date": "2026-03-02"}


def test_off_study_carries_its_reason_code_never_its_note():
    left = event("off_study", date=dt.date(2026, 4, 1), reason="withdrawal_of_consent",
                 note="moved to Beijing")
    before = {"C3D1": state("C3D1", "2026-04-20")}
    after = {"C3D1": state("C3D1", "2026-04-20", present=False)}
    found = dict(messages_of(Written(PARTICIPANT, left, before, after)))
    assert set(found) == {"schedule.changed", "participant.off_study"}
    assert found["participant.off_study"]["reason"] == "withdrawal_of_consent"
    assert found["participant.off_study"]["date"] == "2026-04-01"
    assert found["schedule.changed"]["cause"] == "off_study"
    assert "Beijing" not in json.dumps(found)


def test_the_body_is_type_timestamp_and_data_compact():
    assert message_body("visit.overdue", WHEN, {"visit_id": "C2D1"}) == (
        '{"type":"visit.overdue","timestamp":"2026-12-07T01:02:03.456Z",'
        '"data":{"visit_id":"C2D1"}}')


def test_a_delivery_verifies_with_the_standard_webhooks_library():
    secret = new_secret()
    assert secret.startswith("whsec_") and len(Webhook(secret)._whsecret) == 32
    body = message_body("participant.enrolled", WHEN, {"participant_id": "p-1"})
    delivery = ClaimedDelivery("d-1", 1, "e-1", "http://x", secret, "msg_1", body)
    sent = dt.datetime.now(dt.UTC)
    headers = signed_headers(delivery, sent)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(int(sent.timestamp()))
    assert Webhook(secret).verify(body, headers)["type"] == "participant.enrolled"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("p-1", "p-2"), headers)


def test_retries_back_off_exponentially_with_jitter_up_to_the_cap():
    settings = WebhookSettings(retry_base_seconds=5, retry_cap_seconds=3600)
    assert [settings.backoff(n, lambda: 1.0) for n in range(1, 7)] == \
        [5.0, 20.0, 80.0, 320.0, 1280.0, 3600.0]
    assert [settings.backoff(n, lambda: 0.0) for n in (1, 2)] == [2.5, 10.0]
    assert 2.5 <= settings.backoff(1) <= 5.0
