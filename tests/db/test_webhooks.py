"""Webhooks end to end on each database: endpoints registered over HTTP, writes through the
API, the worker's deliveries to a receiver on 127.0.0.1 that verifies every signature with
`standardwebhooks` (docs/webhooks.md)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import replace

import pytest
import sqlalchemy as sa

from api.http.context import container
from api.persistence.records import Outcome
from api.persistence.tables import webhook_deliveries
from api.persistence.webhooks import CHANNEL
from api.usecases.webhooks import Deliverer, WebhookSettings
from scheduler.history import RecoveryConfirmed
from tests.db.conftest import ENROL, bearer
from tests.webhook_receiver import Inbox, Receiver, bodies, receiving, types_of

FAST = WebhookSettings(max_attempts=5, retry_base_seconds=0.01, retry_cap_seconds=0.05,
                       timeout_seconds=5, lease_seconds=10, poll_seconds=0.01)


@pytest.fixture
def receiver():
    with receiving() as running:
        yield running


@pytest.fixture
def admin(keys):
    return bearer(keys["admin"])


def register(client, admin, inbox: Inbox, url: str, types: list[str] | None = None) -> str:
    body = {"url": url} if types is None else {"url": url, "event_types": types}
    answer = client.post("/v1/webhooks", json=body, headers=admin)
    assert answer.status_code == 201, answer.get_json()
    created = answer.get_json()
    assert created["secret"].startswith("whsec_")
    assert answer.headers["Location"].endswith(f"/v1/webhooks/{created['id']}")
    inbox.secret = created["secret"]
    return created["id"]


def deliverer(app, settings: WebhookSettings = FAST) -> Deliverer:
    services = container(app)
    return Deliverer(services.units, services.clock, settings)


def drain(app, settings: WebhookSettings = FAST, seconds: float = 10.0) -> None:
    """Run the worker's rounds until no delivery is pending."""
    worker = deliverer(app, settings)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            worker.drain_once()
            if not pending(app):
                return
            time.sleep(0.005)
    finally:
        worker.close()
    raise AssertionError("deliveries still pending")


def pending(app) -> int:
    services = container(app)
    with services.units(readonly=True) as uow:
        return sum(len(uow.webhooks.deliveries(endpoint.id, "pending", 500))
                   for endpoint in uow.webhooks.endpoints())


def deliveries(client, admin, endpoint_id: str, state: str | None = None) -> list[dict]:
    query = f"?state={state}" if state else ""
    answer = client.get(f"/v1/webhooks/{endpoint_id}/deliveries{query}", headers=admin)
    assert answer.status_code == 200
    return answer.get_json()["items"]


def record(client, writer, participant_id: str, event: dict) -> dict:
    answer = client.post(f"/v1/participants/{participant_id}/events", json=event,
                         headers=writer)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def test_every_event_reaches_every_endpoint_once_while_the_receiver_fails_three_tries(
        client, db_app, admin, writer, receiver: Receiver):
    all_url, every = receiver.inbox("all", fail_first=3)
    changes_url, changes = receiver.inbox("changes", fail_first=3)
    all_id = register(client, admin, every, all_url)
    changes_id = register(client, admin, changes, changes_url, ["schedule.changed"])

    enrolled = client.post("/v1/participants", json=ENROL, headers=writer).get_json()
    pid = enrolled["id"]
    record(client, writer, pid, {"type": "recovery_confirmed", "date": "2026-03-09"})
    record(client, writer, pid, {"type": "off_study", "date": "2026-03-20",
                                 "reason": "withdrawal_of_consent",
                                 "note": "moved to Beijing, private"})
    drain(db_app)

    assert types_of(every) == ["participant.enrolled", "participant.off_study",
                               "schedule.changed"]
    assert types_of(changes) == ["schedule.changed"]
    for inbox in (every, changes):
        assert inbox.forged == 0 and not inbox.repeats
        # Each message: three failed tries, then accepted once; the id never changed.
        assert set(inbox.tries.values()) == {4}
        assert set(inbox.tries) == set(inbox.accepted)
    # The same event has the same webhook-id at every endpoint it went to.
    changed_id = next(i for i, p in every.accepted.items() if p["type"] == "schedule.changed")
    assert changed_id in changes.accepted
    listed = deliveries(client, admin, all_id)
    assert [(d["state"], d["attempts"], d["last_status"]) for d in listed] == \
        [("delivered", 4, 204)] * 3
    assert {d["webhook_id"] for d in listed} == set(every.accepted)
    assert len(deliveries(client, admin, changes_id, "delivered")) == 1
    # No free text reaches a receiver: the off-study note stays in the history.
    assert "Beijing" not in bodies(every)


def test_payloads_name_the_participant_and_list_moved_visits(
        client, db_app, admin, writer, receiver: Receiver):
    url, inbox = receiver.inbox("all")
    register(client, admin, inbox, url)
    enrolled = client.post("/v1/participants", json=ENROL, headers=writer).get_json()
    pid = enrolled["id"]
    before = client.get(f"/v1/participants/{pid}/schedule", headers=writer).get_json()
    record(client, writer, pid, {"type": "recovery_confirmed", "date": "2026-03-16"})
    after = client.get(f"/v1/participants/{pid}/schedule", headers=writer).get_json()
    drain(db_app)

    payloads = {p["type"]: p for p in inbox.accepted.values()}
    enrolment = payloads["participant.enrolled"]
    assert enrolment["data"] == {
        "participant_id": pid, "subject_code": "ZS-001",
        "protocol_version": enrolled["protocol"]["version"], "participant_version": 1,
        "cryoablation_date": "2026-03-02"}
    assert dt.datetime.fromisoformat(enrolment["timestamp"]).tzinfo is not None
    change = payloads["schedule.changed"]["data"]
    assert change["cause"] == "recovery_confirmed" and change["participant_version"] == 2
    old = {v["id"]: v["date"] for v in before["visits"]}
    new = {v["id"]: v["date"] for v in after["visits"]}
    assert change["moved"] == [
        {"visit_id": vid, "old_date": old[vid], "new_date": new[vid]}
        for vid in sorted((v for v in new if v in old and old[v] != new[v]),
                          key=lambda v: (new[v] or "9999", v))]
    assert change["moved"], "confirming recovery a week later moves the first dose"
    assert change["added"] == [{"visit_id": v, "date": new[v]} for v in
                               sorted(set(new) - set(old), key=lambda v: (new[v] or "9999", v))]
    assert change["removed"] == []


def test_a_write_that_rolls_back_sends_nothing(client, db_app, admin, writer,
                                              receiver: Receiver):
    url, inbox = receiver.inbox("all")
    endpoint_id = register(client, admin, inbox, url)
    pid = client.post("/v1/participants", json=ENROL, headers=writer).get_json()["id"]
    drain(db_app)
    assert types_of(inbox) == ["participant.enrolled"]

    def fail(*_: object) -> None:
        raise RuntimeError("the response could not be stored")

    people = container(db_app).participants
    with pytest.raises(RuntimeError):
        people.record(pid, RecoveryConfirmed(dt.date(2026, 3, 9)),
                      "test", dt.date(2026, 11, 25), before_commit=fail)
    assert pending(db_app) == 0
    drain(db_app)
    assert types_of(inbox) == ["participant.enrolled"]
    assert len(deliveries(client, admin, endpoint_id)) == 1
    # A write refused by the protocol (409: a cycle before recovery) sends nothing either.
    refused = client.post(f"/v1/participants/{pid}/events", headers=writer,
                          json={"type": "dose_given", "cycle": 2, "date": "2026-03-09"})
    assert refused.status_code in (409, 422)
    assert pending(db_app) == 0


def test_a_receiver_failing_every_try_leaves_a_dead_delivery_that_can_be_redelivered(
        client, db_app, admin, writer, receiver: Receiver):
    url, inbox = receiver.inbox("down", fail_first=100, fail_status=500)
    endpoint_id = register(client, admin, inbox, url)
    client.post("/v1/participants", json=ENROL, headers=writer)
    drain(db_app)
    [dead] = deliveries(client, admin, endpoint_id, "dead")
    assert (dead["attempts"], dead["last_status"], dead["last_error"]) == (5, 500, "HTTP 500")
    assert dead["next_attempt_at"] is None and dead["delivered_at"] is None
    assert inbox.accepted == {}

    inbox.fail_first = 0  # the receiver is fixed
    again = client.post(f"/v1/webhooks/{endpoint_id}/deliveries/{dead['id']}/redeliver",
                        headers=admin)
    assert again.status_code == 202
    assert (again.get_json()["state"], again.get_json()["attempts"]) == ("pending", 0)
    drain(db_app)
    assert list(inbox.accepted) == [dead["webhook_id"]]
    [delivered] = deliveries(client, admin, endpoint_id)
    assert (delivered["state"], delivered["attempts"]) == ("delivered", 1)


def test_a_receiver_answering_410_gone_disables_its_endpoint(client, db_app, admin, writer,
                                                             receiver: Receiver):
    url, inbox = receiver.inbox("gone", fail_first=100, fail_status=410)
    endpoint_id = register(client, admin, inbox, url)
    pid = client.post("/v1/participants", json=ENROL, headers=writer).get_json()["id"]
    drain(db_app)
    shown = client.get(f"/v1/webhooks/{endpoint_id}", headers=admin).get_json()
    assert shown["status"] == "disabled" and shown["disabled_at"]
    [dead] = deliveries(client, admin, endpoint_id)
    assert (dead["state"], dead["attempts"], dead["last_status"]) == ("dead", 1, 410)
    record(client, writer, pid, {"type": "recovery_confirmed", "date": "2026-03-09"})
    assert len(deliveries(client, admin, endpoint_id)) == 1  # nothing more for it
    refused = client.post(f"/v1/webhooks/{endpoint_id}/deliveries/{dead['id']}/redeliver",
                          headers=admin)
    assert refused.status_code == 409


def test_overdue_visits_are_announced_once_each_even_across_a_restart(
        client, db_app, admin, writer, receiver: Receiver):
    url, inbox = receiver.inbox("overdue")
    register(client, admin, inbox, url, ["visit.overdue"])
    services = container(db_app)
    services.clock.freeze(dt.date(2026, 3, 3))
    pid = client.post("/v1/participants", json=ENROL, headers=writer).get_json()["id"]
    record(client, writer, pid, {"type": "cryoablation_done", "date": "2026-03-02"})
    record(client, writer, pid, {"type": "recovery_confirmed", "date": "2026-03-03"})

    def overdue_on(day: dt.date) -> dict[str, dict]:
        services.clock.freeze(day)
        schedule = client.get(f"/v1/participants/{pid}/schedule", headers=writer).get_json()
        return {v["id"]: v for v in schedule["visits"] if v["status"] == "overdue"}

    early = overdue_on(dt.date(2026, 3, 3))
    assert deliverer(db_app).announce_overdue() == len(early)
    overdue = overdue_on(dt.date(2026, 4, 30))
    assert len(overdue) > len(early), "nothing recorded since March: more overdue by April"
    assert deliverer(db_app).announce_overdue() == len(set(overdue) - set(early))
    assert deliverer(db_app).announce_overdue() == 0  # a restarted worker: nothing twice
    drain(db_app)
    announced = {p["data"]["visit_id"]: p["data"] for p in inbox.accepted.values()}
    assert set(announced) == set(overdue)
    some = next(data for vid, data in announced.items() if vid not in early)
    visit = overdue[some["visit_id"]]
    assert some["window"] == visit["window"] and some["date"] == visit["date"]
    assert some["today"] == "2026-04-30" and some["participant_id"] == pid
    assert some["subject_code"] == "ZS-001"


def test_a_rounds_outcomes_are_settled_each_as_attempted_and_a_lapsed_lease_overwrites_nothing(
        client, db_app, admin, writer, receiver: Receiver):
    """A round's outcomes are recorded together: each delivery gets its own state, status,
    error and times, and an outcome for an attempt that another claim has since taken over
    (its lease ran out) changes nothing."""
    url, inbox = receiver.inbox("settled")
    register(client, admin, inbox, url, ["participant.enrolled"])
    for n in range(3):
        answer = client.post("/v1/participants", json={**ENROL, "subject_code": f"SET-{n}"},
                             headers=writer)
        assert answer.status_code == 201
    units = container(db_app).units
    start = dt.datetime.now(dt.UTC)
    with units() as uow:
        claimed = uow.webhooks.claim(start, start + dt.timedelta(seconds=60), 10)
        uow.commit()
    assert len(claimed) == 3 and {c.attempts for c in claimed} == {1}
    first, second, third = claimed
    later = start + dt.timedelta(minutes=5)
    # The third's lease ran out and another worker's claim took it over (attempt 2).
    with container(db_app).engine.begin() as connection:
        connection.execute(webhook_deliveries.update().where(
            webhook_deliveries.c.id == third.id).values(attempts=2))
    with units() as uow:
        uow.webhooks.settle([
            Outcome(first.id, 1, "delivered", 204, None, start, start),
            Outcome(second.id, 1, "pending", 503, "HTTP 503", later),
            Outcome(third.id, 1, "dead", None, "refused", start)])
        uow.commit()
    with units(readonly=True) as uow:
        found = {d.id: d for d in uow.webhooks.deliveries(first.endpoint_id, None, 10)}
    assert (found[first.id].state, found[first.id].last_status,
            found[first.id].delivered_at) == ("delivered", 204, start)
    assert (found[second.id].state, found[second.id].last_status, found[second.id].last_error,
            found[second.id].next_attempt_at) == ("pending", 503, "HTTP 503", later)
    assert (found[third.id].state, found[third.id].attempts, found[third.id].last_status,
            found[third.id].last_error) == ("pending", 2, None, None)


def test_endpoints_are_admin_only_and_checked(client, admin, keys, receiver: Receiver):
    url, inbox = receiver.inbox("x")
    assert client.post("/v1/webhooks", json={"url": url},
                       headers=bearer(keys["write"])).status_code == 403
    assert client.get("/v1/webhooks").status_code == 401
    for body, field in (({"url": "ftp://example.org/x"}, "url"),
                        ({"url": "not a url"}, "url"),
                        ({}, "url"),
                        ({"url": url, "event_types": ["visit.done"]}, "event_types.0"),
                        ({"url": url, "event_types": []}, "event_types"),
                        ({"url": url, "secret": "mine"}, "secret")):
        answer = client.post("/v1/webhooks", json=body, headers=admin)
        assert answer.status_code == 422, body
        assert answer.content_type == "application/problem+json"
        assert field in answer.get_json()["errors"], (body, answer.get_json())
    assert client.get("/v1/webhooks", headers=admin).get_json() == {"items": []}

    endpoint_id = register(client, admin, inbox, url)
    listed = client.get("/v1/webhooks", headers=admin).get_json()["items"]
    assert [item["id"] for item in listed] == [endpoint_id]
    assert "secret" not in listed[0]  # shown once, at creation
    assert "secret" not in client.get(f"/v1/webhooks/{endpoint_id}", headers=admin).get_json()
    assert client.delete(f"/v1/webhooks/{endpoint_id}", headers=admin).status_code == 204
    assert client.get(f"/v1/webhooks/{endpoint_id}", headers=admin).status_code == 404
    assert client.delete(f"/v1/webhooks/{endpoint_id}", headers=admin).status_code == 404
    assert client.get(f"/v1/webhooks/{endpoint_id}/deliveries",
                      headers=admin).status_code == 404
    assert client.get("/v1/webhooks/nope/deliveries?state=lost",
                      headers=admin).status_code == 422


def test_no_endpoint_no_outbox_rows(client, db_app, writer):
    client.post("/v1/participants", json=ENROL, headers=writer)
    with container(db_app).units(readonly=True) as uow:
        assert uow.webhooks.claim(dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC), 10) == []


def test_settings_come_from_the_configuration():
    settings = WebhookSettings.from_config({"WEBHOOK_MAX_ATTEMPTS": "3",
                                            "WEBHOOK_POLL_SECONDS": 0.2})
    assert settings == replace(WebhookSettings(), max_attempts=3, poll_seconds=0.2)
    assert json.dumps(settings.backoff(30, lambda: 1.0)) == "36000.0"


def test_deleting_an_endpoint_stops_its_pending_deliveries(client, db_app, admin, writer,
                                                          receiver: Receiver):
    url, inbox = receiver.inbox("deleted")
    endpoint_id = register(client, admin, inbox, url)
    client.post("/v1/participants", json=ENROL, headers=writer)
    assert pending(db_app) == 1
    assert client.delete(f"/v1/webhooks/{endpoint_id}", headers=admin).status_code == 204
    drain(db_app)
    assert inbox.tries == {}
    with container(db_app).units(readonly=True) as uow:
        [dead] = uow.webhooks.deliveries(endpoint_id, None, 10)
    assert (dead.state, dead.attempts, dead.last_error) == ("dead", 0, "endpoint deleted")


class Rings:
    """Stands in for the units' waker: notes, at each ring, how many deliveries another
    connection sees pending (so whether the write had committed)."""

    def __init__(self, app) -> None:
        self.app = app
        self.seen: list[int] = []

    def ring(self) -> None:
        self.seen.append(pending(self.app))


# Set once `notifications` is LISTENing.
listening = threading.Event()


def notifications(database_url: str, seconds: float) -> int:
    """How many NOTIFYs on the workers' channel arrive within `seconds` of LISTENing."""
    engine = sa.create_engine(database_url)
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        connection.autocommit = True
        connection.execute(f"LISTEN {CHANNEL}")
        listening.set()
        return sum(1 for _ in connection.notifies(timeout=seconds))
    finally:
        raw.close()
        engine.dispose()


def test_the_workers_are_woken_after_the_write_commits_and_not_by_it(
        client, db_app, database_url, admin, writer, receiver: Receiver):
    """PostgreSQL serialises the commits of transactions that NOTIFY, so the write's own
    transaction does not: a waker sends it once the write has committed."""
    if not database_url.startswith("postgresql"):
        pytest.skip("NOTIFY is PostgreSQL's; the worker polls SQLite")
    units = container(db_app).units
    real, rings = units.waker, Rings(db_app)
    url, inbox = receiver.inbox("woken")
    register(client, admin, inbox, url, ["participant.enrolled", "schedule.changed"])
    units.waker = rings
    heard: list[int] = []
    listening.clear()
    listener = threading.Thread(target=lambda: heard.append(notifications(database_url, 1.0)))
    listener.start()
    assert listening.wait(10)
    pid = client.post("/v1/participants", json=ENROL, headers=writer).get_json()["id"]
    # Rung once, with the message already visible to another connection: after the commit.
    assert rings.seen == [1]
    # A write that rolls back rings nothing.
    with pytest.raises(RuntimeError):
        container(db_app).participants.record(
            pid, RecoveryConfirmed(dt.date(2026, 3, 9)), "test", dt.date(2026, 11, 25),
            before_commit=lambda *_: (_ for _ in ()).throw(RuntimeError("not stored")))
    assert rings.seen == [1]
    # A recorded event, whose message goes out in the write's batched statement, rings once
    # it has committed.
    record(client, writer, pid, {"type": "recovery_confirmed", "date": "2026-03-16"})
    assert rings.seen == [1, 2]
    listener.join(10)
    assert heard == [0], "the write's own transaction sent a NOTIFY"
    # The real waker: its NOTIFY reaches a listener.
    units.waker = real
    listening.clear()
    listener = threading.Thread(target=lambda: heard.append(notifications(database_url, 2.0)))
    listener.start()
    assert listening.wait(10)
    assert client.post("/v1/participants", json={**ENROL, "subject_code": "ZS-W02"},
                       headers=writer).status_code == 201
    listener.join(10)
    assert heard[1] >= 1


def test_the_waker_reconnects_after_the_server_ended_its_connection(
        client, db_app, database_url, admin, writer, receiver: Receiver, end_connections):
    url, inbox = receiver.inbox("reconnected")
    register(client, admin, inbox, url, ["participant.enrolled"])
    assert client.post("/v1/participants", json=ENROL, headers=writer).status_code == 201
    waker = container(db_app).units.waker
    assert waker is not None
    deadline = time.monotonic() + 10
    while not waker._reads.opened:  # its thread has sent the first NOTIFY on its connection
        assert time.monotonic() < deadline, "the waker sent nothing"
        time.sleep(0.01)
    assert end_connections() >= 1
    heard: list[int] = []
    listening.clear()
    listener = threading.Thread(target=lambda: heard.append(notifications(database_url, 2.0)))
    listener.start()
    assert listening.wait(10)
    # The API's pooled connections were ended too: the idle ping replaces them.
    time.sleep(1.1)
    assert client.post("/v1/participants", json={**ENROL, "subject_code": "ZS-R02"},
                       headers=writer).status_code == 201
    listener.join(10)
    assert heard[0] >= 1, "no NOTIFY after the server ended the waker's connection"
