"""The participants list and the web participants page read where each participant stands
from the stored visit states and the history, computing no schedule: what they show must be
what computing every schedule shows, on every configured database."""

from __future__ import annotations

import datetime as dt

import pytest

import api.usecases.participants as participants_module
from api.http.context import container
from api.usecases.participants import next_visit, standing_of, stored_standing
from api.web import backend
from bench.seeding import awaiting_first_dose, followed
from scheduler.history import (
    Complication,
    Correction,
    Discontinued,
    DoseGiven,
    DoseSkipped,
    Enrolment,
    OffStudy,
    RecoveryConfirmed,
)
from scheduler.outcomes import on_day

TODAY = dt.date(2026, 11, 25)


@pytest.fixture
def site(db_app):
    """A site as it looks after a year (bench/seeding.py: done, missed and overdue visits),
    participants awaiting a first dose, and one in each state the engine gives."""
    ids = followed(db_app, 0, 24, TODAY) + awaiting_first_dose(db_app, 24, 2, TODAY)
    service = container(db_app).participants
    cryo = dt.date(2026, 9, 1)

    def enrol(code: str, *events: object) -> None:
        participant = service.enrol(Enrolment(code, cryo, childbearing_potential=True),
                                    "test")
        for event in events:
            service.record(participant.id, event, "test", TODAY)  # type: ignore[arg-type]
        ids.append(participant.id)

    recovered = RecoveryConfirmed(dt.date(2026, 9, 8))
    enrol("HOLD-1", Complication(dt.date(2026, 9, 5), "pneumothorax"))
    enrol("PEND-1")
    enrol("STOP-1", recovered, DoseGiven(1, dt.date(2026, 9, 8)),
          Discontinued(dt.date(2026, 9, 20), "toxicity"))
    enrol("OFF-1", recovered, OffStudy(dt.date(2026, 9, 20), "withdrawal_of_consent"))
    enrol("SKIP-1", recovered, DoseGiven(1, dt.date(2026, 9, 8)),
          DoseSkipped(2, "grade 2 pneumonitis"))
    done = service.enrol(Enrolment("DONE-1", dt.date(2026, 3, 2)), "test")
    service.record(done.id, RecoveryConfirmed(dt.date(2026, 3, 9)), "test", TODAY)
    day = dt.date(2026, 3, 9)
    for cycle in range(1, 7):
        recorded = service.record(done.id, DoseGiven(cycle, day), "test", TODAY)
        day += dt.timedelta(days=21)
    service.record(done.id, Correction(recorded.event.id, "entered on the wrong day"), "test",
                   TODAY)
    service.record(done.id, DoseGiven(6, day - dt.timedelta(days=20)), "test", TODAY)
    ids.append(done.id)
    return ids


def computed(db_app, participant_id: str, day: dt.date):
    service = container(db_app).participants
    participant, events = service.history(participant_id)
    return standing_of(on_day(service.recorded_schedule(participant, events, day), day))


def held(states, day: dt.date) -> bool:
    """A dose held past its window: a revision 3 schedule projects the rest from the day, so
    the stored states cannot stand for it and the list computes this participant."""
    return any(s.present and s.kind == "infusion" and s.status in ("planned", "provisional")
               and s.latest is not None and s.latest < day for s in states.values())


def test_the_stored_standing_is_the_computed_one_on_any_day(db_app, site):
    service = container(db_app).participants
    states_seen = set()
    with service.unit(readonly=True) as uow:
        histories = uow.participants.events_of_many(site)
        states = uow.visit_states.of_many(site)
        stored = {pid: uow.participants.get(pid) for pid in site}
    held_seen = 0
    for day in (TODAY, TODAY + dt.timedelta(days=12), dt.date(2027, 3, 1)):
        for pid in site:
            participant = stored[pid]
            found = stored_standing(service.protocol_of(participant), participant,
                                    histories[pid], states[pid], day)
            if found is None:
                assert held(states[pid], day), (participant.enrolment.subject_code, day)
                held_seen += 1
                found = service.standings([participant], day)[pid]
            assert found == computed(db_app, pid, day), (participant.enrolment.subject_code, day)
            states_seen.add(found.state)
    assert held_seen
    assert states_seen >= {"scheduled", "provisional", "on_hold", "discontinued", "off_study",
                           "completed"}


def test_the_list_and_the_page_compute_only_the_held_participants(db_app, client, keys, site,
                                                                   monkeypatch):
    expected = {pid: computed(db_app, pid, TODAY) for pid in site}
    service = container(db_app).participants
    with service.unit(readonly=True) as uow:
        states = uow.visit_states.of_many(site)
    held_now = sum(1 for pid in site if held(states[pid], TODAY))
    assert 0 < held_now < len(site) // 2
    calls = []
    real = participants_module.compute_schedule

    def counted(*args: object) -> object:
        calls.append(args)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(participants_module, "compute_schedule", counted)
    auth = {"Authorization": f"Bearer {keys['read']}"}
    items = client.get("/v1/participants?limit=200", headers=auth).get_json()["items"]
    assert len(items) == len(site)
    for item in items:
        want = next_visit(expected[item["id"]].visits)
        assert item["state"] == expected[item["id"]].state
        assert (item["next_visit"] and item["next_visit"]["id"]) == (want and want.id)
        if want is not None:
            assert item["next_visit"]["status"] == want.status
            assert item["next_visit"]["date"] == want.date.isoformat()

    with db_app.test_request_context():
        listed = {summary.id: summary for summary in backend.list_participants()}
    assert set(listed) == set(site)
    for pid, summary in listed.items():
        standing = expected[pid]
        shown = [(v, backend.display_status(v)) for v in standing.visits]
        assert summary.state == standing.state
        assert summary.overdue == sum(1 for _, status in shown if status == "overdue")
        upcoming = [v.id for v, status in shown if v.date is not None and v.date >= TODAY
                    and status not in (*backend.SETTLED, "overdue")]
        assert (summary.next_visit and summary.next_visit.visit.id) == \
            (upcoming[0] if upcoming else None)
    assert any(summary.overdue for summary in listed.values())
    # Each held participant computed once, for the API's list; the page found them kept.
    assert len(calls) == held_now
