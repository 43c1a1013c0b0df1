"""The participant use cases on the in-memory unit of work: no HTTP, no database."""

from __future__ import annotations

import pytest

from api.usecases.common import NotFound, StaleVersion
from scheduler import ScheduleInputError
from scheduler.history import (
    Correction,
    DoseGiven,
    Enrolment,
    HistoryConflict,
    RecoveryConfirmed,
    voided_by,
)
from tests.conftest import D
from tests.usecases.conftest import service_on

ENROLMENT = Enrolment("ZS-001", D("2026-03-02"))


@pytest.fixture
def service(store):
    return service_on(store)


def states(store, participant_id):
    with store(readonly=True) as uow:
        return uow.visit_states.of(participant_id)


def test_enrolment_stores_version_1_its_visits_and_a_feed_token(service, store):
    participant = service.enrol(ENROLMENT, "coordinator")
    assert (participant.version, participant.enrolled_by) == (1, "coordinator")
    assert service.get(participant.id) == participant
    assert len(states(store, participant.id)) == 30
    assert {s.sequence for s in states(store, participant.id).values()} == {0}
    with store(readonly=True) as uow:
        token = uow.feed_tokens.active("participant", participant.id)
    assert token is not None and token.participant_id == participant.id


def test_a_second_enrolment_of_one_subject_code_is_a_conflict_and_stores_nothing(service):
    service.enrol(ENROLMENT, "coordinator")
    with pytest.raises(HistoryConflict) as caught:
        service.enrol(ENROLMENT, "coordinator")
    assert caught.value.error.rule == "enrolment"
    assert len(service.page(None, 10)[0]) == 1


def test_recording_recovery_then_a_dose_moves_the_first_dose_and_raises_sequences(
        service, store):
    participant = service.enrol(ENROLMENT, "coordinator")
    recovered = service.record(participant.id, RecoveryConfirmed(D("2026-03-09")), "nurse",
                               D("2026-03-09"))
    assert (recovered.participant.version, recovered.schedule.state) == (2, "scheduled")
    assert recovered.schedule.first_dose_date == D("2026-03-09")
    dosed = service.record(participant.id, DoseGiven(1, D("2026-03-10")), "nurse",
                           D("2026-03-10"))
    assert dosed.participant.version == 3
    assert dosed.schedule.visit("C1D1").date == D("2026-03-10")
    assert dosed.schedule.visit("C2D1").date == D("2026-03-31")
    kept = states(store, participant.id)
    assert (kept["C1D1"].date, kept["C1D1"].sequence) == (D("2026-03-10"), 2)
    assert (kept["CRYO"].date, kept["CRYO"].sequence) == (D("2026-03-02"), 0)
    _, history = service.history(participant.id)
    assert [(e.seq, e.type, e.recorded_by) for e in history] == [
        (1, "recovery_confirmed", "nurse"), (2, "dose_given", "nurse")]


def test_a_correction_voids_the_dose_it_names_and_the_open_cycle_is_due_again(service):
    participant = service.enrol(ENROLMENT, "coordinator")
    service.record(participant.id, RecoveryConfirmed(D("2026-03-09")), "nurse", D("2026-03-09"))
    dose = service.record(participant.id, DoseGiven(1, D("2026-03-10")), "nurse",
                          D("2026-03-10")).event
    undone = service.record(participant.id, Correction(dose.id, "wrong participant"), "nurse",
                            D("2026-03-10"))
    assert undone.event.corrects == dose.id
    assert undone.schedule.visit("C1D1").status == "due"
    _, history = service.history(participant.id)
    assert voided_by(history) == {dose.id: undone.event.id}


def test_a_stale_version_is_refused_and_nothing_is_recorded(service):
    participant = service.enrol(ENROLMENT, "coordinator")
    with pytest.raises(StaleVersion):
        service.record(participant.id, RecoveryConfirmed(D("2026-03-09")), "nurse",
                       D("2026-03-09"), expected_version=7)
    assert service.history(participant.id) == (participant, [])


def test_a_fact_the_protocol_rules_out_is_refused_naming_the_field(service):
    participant = service.enrol(ENROLMENT, "coordinator")
    with pytest.raises(ScheduleInputError) as caught:
        service.record(participant.id, DoseGiven(1, D("2026-03-10")), "nurse", D("2026-03-10"))
    assert [item.field for item in caught.value.errors] == ["date"]
    assert service.get(participant.id).version == 1


def test_a_failure_before_commit_leaves_nothing_behind(service):
    participant = service.enrol(ENROLMENT, "coordinator")

    def fail(_uow, _recorded):
        raise RuntimeError("the response could not be stored")

    with pytest.raises(RuntimeError):
        service.record(participant.id, RecoveryConfirmed(D("2026-03-09")), "nurse",
                       D("2026-03-09"), before_commit=fail)
    assert service.history(participant.id) == (participant, [])


def test_correcting_enrolment_records_what_changed(service):
    participant = service.enrol(ENROLMENT, "coordinator")
    corrected = service.correct_enrolment(participant.id, {"childbearing_potential": True},
                                          "CRF reviewed", "monitor", expected_version=1)
    assert (corrected.version, corrected.enrolment.childbearing_potential) == (2, True)
    _, history = service.history(participant.id)
    assert [(e.type, e.reason, e.changes) for e in history] == [
        ("enrolment_corrected", "CRF reviewed", ("childbearing_potential: False -> True",))]


def test_an_unknown_participant_is_not_found(service):
    with pytest.raises(NotFound):
        service.get("no-such-id")


def test_pages_follow_enrolment_order_with_a_cursor(service):
    enrolled = [service.enrol(Enrolment(f"ZS-{n:03d}", D("2026-03-02")), "coordinator")
                for n in range(3)]
    first, cursor = service.page(None, 2)
    rest, last = service.page(cursor, 2)
    assert [p.id for p in first + rest] == [p.id for p in enrolled]
    assert last is None
