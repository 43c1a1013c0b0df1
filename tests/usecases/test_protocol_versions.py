"""Protocol versions on the in-memory unit of work: a participant is computed under the
version it is pinned to, and only a recorded protocol_version_changed event moves it."""

from __future__ import annotations

import pytest

from api.persistence.memory import MemoryStore
from api.persistence.records import bumped
from api.usecases.common import now
from api.usecases.feeds import feeds_protocol_tag
from api.usecases.protocols import DateChange, Protocols, VisitDate
from scheduler import ScheduleInputError
from scheduler.errors import ProtocolError
from scheduler.history import (
    Complication,
    Correction,
    Discontinued,
    DoseGiven,
    Enrolment,
    HistoryConflict,
    ProtocolVersionChanged,
    RecoveryConfirmed,
)
from scheduler.protocol import parse_protocol
from tests.conftest import PROTOCOL_V1, D, protocol_document
from tests.usecases.conftest import service_on

V1, V2, V3 = "2025-09-15.1", "2026-11-25.2", "2026-12-04.3"
TODAY = D("2026-11-25")
ENROLMENT = Enrolment("ZS-001", D("2026-03-02"))


@pytest.fixture
def service(store):
    return service_on(store)


def enrolled_on_v1(store) -> str:
    """A participant enrolled while the first version was current."""
    return service_on(store, PROTOCOL_V1).enrol(ENROLMENT, "edc").id


def late_cycles(service, participant_id):
    for new in (RecoveryConfirmed(D("2026-03-09")), DoseGiven(1, D("2026-03-09")),
                DoseGiven(2, D("2026-04-20")), DoseGiven(3, D("2026-06-01"))):
        service.record(participant_id, new, "edc", TODAY)


def scan_dates(schedule):
    return [v.date.isoformat() for v in schedule.visits
            if v.kind == "response_imaging" and v.date]


def test_the_packaged_versions_are_loaded_and_the_newest_is_current():
    protocols = Protocols.loaded()
    assert protocols.versions == (V1, V2, V3)
    assert protocols.current.version == V3
    assert protocols.get(V1) is PROTOCOL_V1


def test_a_configured_protocol_file_is_current_beside_the_packaged_versions():
    document = protocol_document()
    document["version"] = "2027-01-10.site"
    site_protocol = parse_protocol(document)
    protocols = Protocols.loaded(site_protocol)
    assert protocols.versions == (V1, V2, V3, "2027-01-10.site")
    assert protocols.current is site_protocol


def test_the_feeds_protocol_tag_fits_its_column_however_many_versions_ship():
    """The rendered feeds store the tag in a 128-character column: three packaged versions
    and a site file once overflowed it on PostgreSQL."""
    document = protocol_document()
    document["version"] = "2027-01-10.site"
    protocols = Protocols.loaded(parse_protocol(document))
    tag = feeds_protocol_tag(protocols)
    assert len(tag) <= 128
    assert tag != feeds_protocol_tag(Protocols.loaded(None))


def test_a_protocol_file_of_another_trial_is_refused():
    document = protocol_document()
    document["id"] = "NCT00000000"
    with pytest.raises(ProtocolError, match="pinned to versions of NCT07064876"):
        Protocols.loaded(parse_protocol(document))


def test_a_new_enrolment_is_pinned_to_the_current_version(service, store):
    assert service.enrol(ENROLMENT, "edc").protocol_version == V3
    assert service_on(MemoryStore(), PROTOCOL_V1).enrol(ENROLMENT, "edc").protocol_version == V1


def test_a_participant_pinned_to_v1_keeps_v1_dates_after_the_service_moves_to_v2(store):
    participant_id = enrolled_on_v1(store)
    upgraded = service_on(store)  # the service now enrols under revision 2
    late_cycles(upgraded, participant_id)
    participant, schedule = upgraded.schedule(participant_id, TODAY)
    assert (participant.protocol_version, schedule.protocol_version) == (V1, V1)
    assert scan_dates(schedule) == ["2026-04-20", "2026-06-01", "2026-07-13", "2026-08-24",
                                    "2026-09-09", "2026-12-09", "2027-03-09", "2027-09-09"]


def test_the_pinned_version_decides_how_recovery_and_complications_fold(store):
    participant_id = enrolled_on_v1(store)
    upgraded = service_on(store)
    upgraded.record(participant_id, RecoveryConfirmed(D("2026-03-09")), "edc", TODAY)
    upgraded.record(participant_id, Complication(D("2026-03-05"), "pneumothorax"), "edc", TODAY)
    assert upgraded.schedule(participant_id, TODAY)[1].state == "on_hold"  # by entry: v1
    upgraded.record(participant_id, ProtocolVersionChanged(V2, "amendment"), "edc", TODAY)
    assert upgraded.schedule(participant_id, TODAY)[1].state == "scheduled"  # by date: v2


def test_moving_to_v2_is_recorded_and_answers_every_date_it_moves(store):
    participant_id = enrolled_on_v1(store)
    upgraded = service_on(store)
    late_cycles(upgraded, participant_id)
    with store(readonly=True) as uow:
        before = uow.visit_states.of(participant_id)
    done = upgraded.record(participant_id, ProtocolVersionChanged(V2, "amendment 2"), "edc",
                           TODAY)
    change = done.version_change
    assert change is not None
    assert (change.old_version, change.new_version) == (V1, V2)
    assert change.moved == (DateChange("BASELINE-IMAGING", D("2026-03-09"), D("2026-02-24")),
                            DateChange("IMG-5", D("2026-09-09"), D("2026-12-09")),
                            DateChange("IMG-6", D("2026-12-09"), D("2027-03-09")),
                            DateChange("IMG-7", D("2027-03-09"), D("2027-09-09")))
    assert change.added == ()
    assert change.removed == (VisitDate("IMG-8", D("2027-09-09")),)
    assert (done.event.type, done.event.version, done.event.reason) == (
        "protocol_version_changed", V2, "amendment 2")
    assert done.event.changes[0] == f"protocol: {V1} -> {V2}"
    assert done.participant.protocol_version == V2
    assert upgraded.get(participant_id).protocol_version == V2
    assert scan_dates(done.schedule) == ["2026-04-20", "2026-06-01", "2026-07-13",
                                         "2026-08-24", "2026-12-09", "2027-03-09",
                                         "2027-09-09"]
    # The visit states follow, so calendar subscribers see the moves.
    with store(readonly=True) as uow:
        states = uow.visit_states.of(participant_id)
    raised = {visit for visit, state in states.items()
              if state.sequence != before[visit].sequence}
    assert raised == {"BASELINE-IMAGING", "IMG-5", "IMG-6", "IMG-7", "IMG-8"}
    assert {visit: states[visit].sequence - before[visit].sequence for visit in raised} == \
        dict.fromkeys(raised, 1)
    assert (states["IMG-5"].date, states["IMG-8"].present) == (D("2026-12-09"), False)


def test_moving_back_is_another_recorded_change(store):
    participant_id = enrolled_on_v1(store)
    upgraded = service_on(store)
    late_cycles(upgraded, participant_id)
    upgraded.record(participant_id, ProtocolVersionChanged(V2, "amendment"), "edc", TODAY)
    back = upgraded.record(participant_id, ProtocolVersionChanged(V1, "entered in error"),
                           "edc", TODAY)
    assert back.version_change is not None
    assert back.version_change.added == (VisitDate("IMG-8", D("2027-09-09")),)
    assert back.participant.protocol_version == V1


def test_moving_to_the_version_already_pinned_is_a_conflict_and_changes_nothing(service):
    participant = service.enrol(ENROLMENT, "edc")
    with pytest.raises(HistoryConflict) as caught:
        service.record(participant.id, ProtocolVersionChanged(V3, "again"), "edc", TODAY)
    assert (caught.value.error.field, caught.value.error.rule) == ("version", "protocol-version")
    assert service.get(participant.id) == participant


def test_an_unknown_version_is_refused_naming_the_field(service):
    participant = service.enrol(ENROLMENT, "edc")
    with pytest.raises(ScheduleInputError) as caught:
        service.record(participant.id, ProtocolVersionChanged("2099-01-01.9", "typo"), "edc",
                       TODAY)
    assert [(e.field, e.rule) for e in caught.value.errors] == [("version", "protocol-version")]
    assert service.history(participant.id)[1] == []


def test_a_version_change_cannot_be_voided_only_reversed(store):
    participant_id = enrolled_on_v1(store)
    upgraded = service_on(store)
    change = upgraded.record(participant_id, ProtocolVersionChanged(V2, "amendment"), "edc",
                             TODAY)
    with pytest.raises(HistoryConflict) as caught:
        upgraded.record(participant_id, Correction(change.event.id, "undo"), "edc", TODAY)
    assert caught.value.error.rule == "protocol-version"


def test_a_discontinued_participant_may_still_be_moved(store):
    participant_id = enrolled_on_v1(store)
    upgraded = service_on(store)
    late_cycles(upgraded, participant_id)
    upgraded.record(participant_id, Discontinued(D("2026-06-10"), "progression",
                                                 "progression"), "edc", TODAY)
    moved = upgraded.record(participant_id, ProtocolVersionChanged(V2, "amendment"), "edc",
                            TODAY)
    assert moved.participant.protocol_version == V2
    with pytest.raises(HistoryConflict):
        upgraded.record(participant_id, DoseGiven(4, D("2026-06-22")), "edc", TODAY)


def test_a_fact_dated_after_today_is_refused_under_v2_only(store):
    v1_id = enrolled_on_v1(store)
    upgraded = service_on(store)
    v2_id = upgraded.enrol(Enrolment("ZS-002", D("2026-03-02")), "edc").id
    with pytest.raises(ScheduleInputError) as caught:
        upgraded.record(v2_id, RecoveryConfirmed(D("2026-03-09")), "edc", D("2026-03-08"))
    assert [(e.field, e.rule) for e in caught.value.errors] == [("date", "future-facts")]
    # The first version has no such rule: its participants record as they always did.
    upgraded.record(v1_id, RecoveryConfirmed(D("2026-03-09")), "edc", D("2026-03-08"))


def test_a_discontinuation_keeps_its_reason_code_and_defaults_to_other(service):
    participant = service.enrol(ENROLMENT, "edc")
    service.record(participant.id, RecoveryConfirmed(D("2026-03-09")), "edc", TODAY)
    service.record(participant.id, DoseGiven(1, D("2026-03-09")), "edc", TODAY)
    stopped = service.record(participant.id, Discontinued(D("2026-03-20"), "rash"), "edc",
                             TODAY)
    assert stopped.event.reason_code == "other"
    other = service.enrol(Enrolment("ZS-002", D("2026-03-02")), "edc")
    service.record(other.id, RecoveryConfirmed(D("2026-03-09")), "edc", TODAY)
    service.record(other.id, DoseGiven(1, D("2026-03-09")), "edc", TODAY)
    progressed = service.record(other.id, Discontinued(D("2026-04-20"), "CT", "progression"),
                                "edc", TODAY)
    assert progressed.event.reason_code == "progression"
    # Progression stops response imaging (revision 2): no scan after the discontinuation.
    assert [d for d in scan_dates(progressed.schedule) if d > "2026-04-20"] == []


def test_a_screening_date_is_kept_and_corrected_like_other_enrolment_data(service):
    participant = service.enrol(Enrolment("ZS-001", D("2026-03-02"),
                                          screening_date=D("2026-02-20")), "edc")
    assert service.get(participant.id).enrolment.screening_date == D("2026-02-20")
    corrected = service.correct_enrolment(participant.id, {"screening_date": D("2026-02-18")},
                                          "CRF", "edc", participant.version)
    assert corrected.enrolment.screening_date == D("2026-02-18")
    assert service.history(participant.id)[1][-1].changes == (
        "screening_date: 2026-02-20 -> 2026-02-18",)


def test_a_participant_pinned_to_a_version_no_longer_loaded_is_an_error_not_a_silent_move(
        store):
    participant = service_on(store).enrol(ENROLMENT, "edc")
    with store() as uow:
        uow.participants.update(bumped(participant, now(), protocol_version="2020-01-01.0"))
        uow.commit()
    with pytest.raises(ProtocolError, match=r"no protocol version '2020-01-01\.0' is loaded"):
        service_on(store).schedule(participant.id, TODAY)
