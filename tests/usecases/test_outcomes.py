"""Visit outcomes on the in-memory store: one participant walked from enrolment to leaving the
study through every event type, the site's today set to a new day at each step."""

from __future__ import annotations

import pytest

from api.usecases.common import AlreadyEnrolled
from scheduler import ScheduleInputError
from scheduler.history import (
    Complication,
    Correction,
    CryoablationDone,
    Discontinued,
    DoseGiven,
    DoseSkipped,
    Enrolment,
    HistoryConflict,
    OffStudy,
    ProtocolVersionChanged,
    RecoveryConfirmed,
    UnscheduledVisit,
    VisitDone,
    VisitMissed,
)
from tests.conftest import PROTOCOL, PROTOCOL_V1, PROTOCOL_V2, D
from tests.usecases.conftest import service_on

ENROLMENT = Enrolment("ZS-101", D("2026-03-02"), childbearing_potential=True)


@pytest.fixture
def service(store):
    # The walk's dates follow the first protocol version's windows (pregnancy test and
    # baseline scan counted back from C1D1); `service_v2` walks revision 2's.
    return service_on(store, PROTOCOL_V1)


def statuses(schedule, *ids):
    return {visit_id: schedule.visit(visit_id).status for visit_id in ids}


def done_ids(schedule):
    return {v.id for v in schedule.visits if v.status == "done"}


SCREENING = ("CRYO", "RECOVERY", "SCREEN-LABS", "BASELINE-IMAGING", "PREGNANCY", "C1D1")


@pytest.fixture
def service_v2(store):
    """New enrolments on revision 2 (`2026-11-25.2`), the default for new participants."""
    return service_on(store, PROTOCOL_V2)


def shown(visit):
    return visit.status, visit.date, visit.actual_date


def not_planned(schedule):
    return {w.visit_id for w in schedule.warnings if w.code == "recorded-visit-not-planned"}


def test_one_participant_from_enrolment_to_off_study_through_every_event_type(service, store):
    participant = service.enrol(ENROLMENT, "coordinator")
    pid = participant.id

    def on(today, *ids):
        return statuses(service.schedule(pid, D(today))[1], *ids)

    def record(event, today):
        return service.record(pid, event, "nurse", D(today))

    # Enrolled ahead of the cryoablation: nothing is done, the screening windows open.
    assert on("2026-02-20", *SCREENING) == {
        "CRYO": "planned", "RECOVERY": "provisional", "SCREEN-LABS": "provisional",
        "BASELINE-IMAGING": "due", "PREGNANCY": "provisional", "C1D1": "provisional"}
    assert done_ids(service.schedule(pid, D("2026-02-20"))[1]) == set()
    assert on("2026-02-25", "SCREEN-LABS", "PREGNANCY") == {"SCREEN-LABS": "due",
                                                            "PREGNANCY": "due"}

    labs = record(VisitDone("SCREEN-LABS", D("2026-02-25")), "2026-02-25").schedule
    assert (labs.visit("SCREEN-LABS").status, labs.visit("SCREEN-LABS").actual_date,
            labs.visit("SCREEN-LABS").timing) == ("done", D("2026-02-25"), "in_window")
    assert done_ids(labs) == {"SCREEN-LABS"}

    # The day of the cryoablation: due until recorded, overdue the day after without it.
    assert on("2026-03-02", "CRYO") == {"CRYO": "due"}
    assert on("2026-03-03", "CRYO") == {"CRYO": "overdue"}
    overdue = service.schedule(pid, D("2026-03-03"))[1]
    assert [w.message for w in overdue.warnings if w.code == "visit-overdue"] == [
        "CRYO (CT-guided cryoablation) is overdue: its window "
        "2026-03-02 to 2026-03-02 closed and nothing is recorded by 2026-03-03 "
        "(rule cryoablation)"]
    cryo = record(CryoablationDone(D("2026-03-02")), "2026-03-03").schedule
    assert (cryo.visit("CRYO").status, cryo.visit("CRYO").timing) == ("done", "in_window")
    assert done_ids(cryo) == {"SCREEN-LABS", "CRYO"}

    # A complication holds dosing; recovery confirmed a week later sets the first dose.
    held = record(Complication(D("2026-03-04"), "bleeding"), "2026-03-04").schedule
    assert (held.state, held.visit("C1D1").status) == ("on_hold", "held")
    recovered = record(RecoveryConfirmed(D("2026-03-10")), "2026-03-10").schedule
    assert statuses(recovered, *SCREENING) == {
        "CRYO": "done", "RECOVERY": "done", "SCREEN-LABS": "done",
        "BASELINE-IMAGING": "due", "PREGNANCY": "due", "C1D1": "due"}

    missed = record(VisitMissed("PREGNANCY", "declined the test"), "2026-03-10").schedule
    assert missed.visit("PREGNANCY").status == "missed"
    # By 2026-03-12 the baseline imaging window (it closed on C1D1's planned day) has passed.
    assert on("2026-03-12", "BASELINE-IMAGING", "C1D1", "PREGNANCY") == {
        "BASELINE-IMAGING": "overdue", "C1D1": "due", "PREGNANCY": "missed"}

    # Cycle 1 given: the screening visits do not become done with it.
    dosed = record(DoseGiven(1, D("2026-03-12")), "2026-03-12").schedule
    assert statuses(dosed, "C1D1", "BASELINE-IMAGING", "SCREEN-LABS") == {
        "C1D1": "done", "BASELINE-IMAGING": "due", "SCREEN-LABS": "done"}
    # The labs done 2026-02-25 now fall outside the window C1D1's new day gives them.
    assert dosed.visit("SCREEN-LABS").timing == "out_of_window"
    assert [w.message for w in dosed.warnings if w.code == "visit-out-of-window"] == [
        "SCREEN-LABS was done on 2026-02-25, outside its window 2026-02-26 to 2026-03-12 "
        "(rule screening-labs); recorded as done"]
    imaging = record(VisitDone("BASELINE-IMAGING", D("2026-03-11")), "2026-03-12").schedule
    assert (imaging.visit("BASELINE-IMAGING").actual_date,
            imaging.visit("BASELINE-IMAGING").timing) == (D("2026-03-11"), "in_window")

    # Unscheduled visits: listed done on their day, never moving a planned visit; a voided one
    # keeps its number, so the next is UNS-2.
    before = [(v.id, v.date) for v in imaging.visits]
    first = record(UnscheduledVisit(D("2026-03-20"), "rash"), "2026-03-20")
    uns = first.schedule.visit("UNS-1")
    assert (uns.kind, uns.status, uns.date, uns.title) == ("unscheduled", "done",
                                                          D("2026-03-20"), "Unscheduled visit")
    assert [(v.id, v.date) for v in first.schedule.visits if v.id != "UNS-1"] == before
    voided = record(Correction(first.event.id, "wrong participant"), "2026-03-20").schedule
    assert "UNS-1" not in {v.id for v in voided.visits}
    second = record(UnscheduledVisit(D("2026-03-21"), "rash review"), "2026-03-21").schedule
    assert [v.id for v in second.visits if v.kind == "unscheduled"] == ["UNS-2"]

    skipped = record(DoseSkipped(2, "pneumonitis"), "2026-04-02").schedule
    assert statuses(skipped, "C2D1", "C2-LABS", "C3D1") == {
        "C2D1": "skipped", "C2-LABS": "cancelled", "C3D1": "planned"}

    # Discontinued: the follow-up goes on, and its visits can still be recorded.
    stopped = record(Discontinued(D("2026-04-10"), "toxicity"), "2026-04-10").schedule
    assert (stopped.state, stopped.visit("C3D1").status, stopped.visit("EOT").status) == (
        "discontinued", "cancelled", "due")
    eot = record(VisitDone("EOT", D("2026-04-12")), "2026-04-12").schedule
    assert (eot.visit("EOT").status, eot.visit("EOT").timing) == ("done", "in_window")
    assert on("2026-05-01", "IMG-1") == {"IMG-1": "overdue"}

    # Off study: every later visit is cancelled and leaves the feed; the contraception end
    # stays as information; nothing but a correction can follow.
    left = record(OffStudy(D("2026-06-01"), "withdrawal_of_consent"), "2026-06-01")
    after = left.schedule
    assert after.state == "off_study"
    later = [v for v in after.visits if v.rule.id == "off-study"]
    assert {v.id for v in later} >= {"SAFETY-FU", "SURV-1", "OS-1Y", "IMG-2"}
    assert all((v.status, v.date, v.window) == ("cancelled", None, None) for v in later)
    assert statuses(after, "IMG-1", "EOT", "CONTRACEPTION-END") == {
        "IMG-1": "overdue", "EOT": "done", "CONTRACEPTION-END": "planned"}
    with store(readonly=True) as uow:
        shown = {s.visit_id for s in uow.visit_states.of(pid).values() if s.present}
    assert shown.isdisjoint(v.id for v in later)
    assert done_ids(after) == {"SCREEN-LABS", "CRYO", "RECOVERY", "BASELINE-IMAGING", "C1D1",
                               "UNS-2", "EOT"}
    with pytest.raises(HistoryConflict) as caught:
        record(VisitDone("IMG-1", D("2026-06-01")), "2026-06-02")
    assert caught.value.error.rule == "off-study"
    back = record(Correction(left.event.id, "entered for the wrong participant"),
                  "2026-06-02").schedule
    assert (back.state, back.visit("SAFETY-FU").status) == ("discontinued", "planned")


SCREENING_V2 = ("BASELINE-IMAGING", "PREGNANCY", "CRYO", "RECOVERY", "SCREEN-LABS", "C1D1")


def test_one_participant_on_revision_2_from_enrolment_to_off_study(service_v2, store):
    """The same walk on revision 2, the version new enrolments are pinned to: the baseline scan
    and the pregnancy test come before the cryoablation, and the test is repeated before a first
    dose more than 14 days after it."""
    participant = service_v2.enrol(ENROLMENT, "coordinator")
    pid = participant.id
    assert participant.protocol_version == "2026-11-25.2"

    def on(today, *ids):
        return statuses(service_v2.schedule(pid, D(today))[1], *ids)

    def record(event, today):
        return service_v2.record(pid, event, "nurse", D(today))

    # Enrolled ahead of the cryoablation: nothing done; the scan's window (from C1D1 - 28
    # days to the day before the cryoablation) is open, the pregnancy test's not yet.
    assert on("2026-02-10", *SCREENING_V2) == {
        "BASELINE-IMAGING": "due", "PREGNANCY": "planned", "CRYO": "planned",
        "RECOVERY": "provisional", "SCREEN-LABS": "provisional", "C1D1": "provisional"}
    assert done_ids(service_v2.schedule(pid, D("2026-02-10"))[1]) == set()
    assert on("2026-02-20", "PREGNANCY", "SCREEN-LABS") == {"PREGNANCY": "due",
                                                            "SCREEN-LABS": "provisional"}
    tested = record(VisitDone("PREGNANCY", D("2026-02-20")), "2026-02-20").schedule
    assert shown(tested.visit("PREGNANCY")) == ("done", D("2026-02-20"), D("2026-02-20"))
    assert done_ids(tested) == {"PREGNANCY"}
    assert on("2026-02-25", "BASELINE-IMAGING", "SCREEN-LABS") == {
        "BASELINE-IMAGING": "due", "SCREEN-LABS": "due"}

    # The day after the cryoablation with nothing recorded: the scan's window closed the day
    # before it, so the scan is overdue, like the cryoablation itself.
    assert on("2026-03-03", *SCREENING_V2) == {
        "BASELINE-IMAGING": "overdue", "PREGNANCY": "done", "CRYO": "overdue",
        "RECOVERY": "due", "SCREEN-LABS": "due", "C1D1": "provisional"}
    scanned = record(VisitDone("BASELINE-IMAGING", D("2026-02-27")), "2026-03-03").schedule
    assert scanned.visit("BASELINE-IMAGING").timing == "in_window"
    cryo = record(CryoablationDone(D("2026-03-02")), "2026-03-03").schedule
    assert done_ids(cryo) == {"PREGNANCY", "BASELINE-IMAGING", "CRYO"}

    # A complication holds dosing: the scan stays done as recorded, though nothing dates the
    # first dose it is counted back to; the labs are listed held, with the reason, until a
    # first dose is dated to count back from (never silently absent).
    held = record(Complication(D("2026-03-04"), "bleeding"), "2026-03-04").schedule
    assert (held.state, held.visit("C1D1").status) == ("on_hold", "held")
    assert shown(held.visit("BASELINE-IMAGING")) == ("done", D("2026-02-27"), D("2026-02-27"))
    assert shown(held.visit("SCREEN-LABS")) == ("held", None, None)
    assert held.visit("SCREEN-LABS").rule.anchor == (
        "C1D1 is held until recovery from the complication is confirmed; dated from the first "
        "dose then")
    assert not_planned(held) == set()
    assert done_ids(held) == {"PREGNANCY", "BASELINE-IMAGING", "CRYO"}

    # Recovered on 03-16: C1D1 that day, more than 14 days after the pregnancy test, so the
    # test is repeated before it. Unrecorded, the screening visits are due, then overdue.
    recovered = record(RecoveryConfirmed(D("2026-03-16")), "2026-03-16").schedule
    assert not_planned(recovered) == set()
    assert on("2026-03-16", "C1D1", "PREGNANCY-C1", "SCREEN-LABS", "RECOVERY") == {
        "C1D1": "due", "PREGNANCY-C1": "due", "SCREEN-LABS": "due", "RECOVERY": "done"}
    assert on("2026-03-17", "C1D1", "PREGNANCY-C1", "SCREEN-LABS") == {
        "C1D1": "due", "PREGNANCY-C1": "overdue", "SCREEN-LABS": "overdue"}
    labs = record(VisitDone("SCREEN-LABS", D("2026-03-16")), "2026-03-17").schedule
    assert shown(labs.visit("SCREEN-LABS")) == ("done", D("2026-03-16"), D("2026-03-16"))
    missed = record(VisitMissed("PREGNANCY-C1", "declined the test"), "2026-03-17").schedule
    assert missed.visit("PREGNANCY-C1").status == "missed"

    # Cycle 1 given: no screening visit becomes done with it, the missed test stays missed.
    dosed = record(DoseGiven(1, D("2026-03-17")), "2026-03-17").schedule
    assert statuses(dosed, "C1D1", "PREGNANCY-C1", "SCREEN-LABS", "C2D1", "IMG-1") == {
        "C1D1": "done", "PREGNANCY-C1": "missed", "SCREEN-LABS": "done", "C2D1": "planned",
        "IMG-1": "planned"}
    assert done_ids(dosed) == {"PREGNANCY", "BASELINE-IMAGING", "CRYO", "RECOVERY",
                               "SCREEN-LABS", "C1D1"}

    first = record(UnscheduledVisit(D("2026-03-25"), "rash"), "2026-03-25")
    record(Correction(first.event.id, "wrong participant"), "2026-03-25")
    second = record(UnscheduledVisit(D("2026-03-26"), "rash review"), "2026-03-26").schedule
    assert [v.id for v in second.visits if v.kind == "unscheduled"] == ["UNS-2"]

    assert on("2026-04-06", "C2D1", "C2-LABS", "IMG-1") == {
        "C2D1": "due", "C2-LABS": "due", "IMG-1": "planned"}
    skipped = record(DoseSkipped(2, "pneumonitis"), "2026-04-08").schedule
    assert statuses(skipped, "C2D1", "C2-LABS", "C3D1") == {
        "C2D1": "skipped", "C2-LABS": "cancelled", "C3D1": "planned"}

    # Discontinued for toxicity: the end-of-treatment visit 7 days on, and imaging goes on.
    stopped = record(Discontinued(D("2026-04-15"), "toxicity", "toxicity"),
                     "2026-04-15").schedule
    assert stopped.state == "discontinued"
    assert statuses(stopped, "C3D1", "C3-LABS", "EOT", "IMG-1", "SAFETY-FU") == {
        "C3D1": "cancelled", "C3-LABS": "cancelled", "EOT": "due", "IMG-1": "planned",
        "SAFETY-FU": "planned"}
    assert on("2026-05-10", "EOT", "IMG-1") == {"EOT": "overdue", "IMG-1": "overdue"}
    eot = record(VisitDone("EOT", D("2026-04-28")), "2026-05-10").schedule
    assert shown(eot.visit("EOT")) == ("done", D("2026-04-28"), D("2026-04-28"))
    assert on("2026-05-10", "EOT", "IMG-1") == {"EOT": "done", "IMG-1": "overdue"}

    # Off study: every later visit is cancelled and undated; the past stays as it was.
    left = record(OffStudy(D("2026-06-01"), "withdrawal_of_consent"), "2026-06-01")
    after = left.schedule
    assert after.state == "off_study"
    later = [v for v in after.visits if v.rule.id == "off-study"]
    assert {v.id for v in later} >= {"IMG-2", "SAFETY-FU", "SURV-1", "OS-1Y"}
    assert all((v.status, v.date, v.window) == ("cancelled", None, None) for v in later)
    assert all(v.status in ("done", "missed", "skipped", "cancelled", "overdue")
               or v.kind == "contraception_end" for v in after.visits)
    assert statuses(after, "IMG-1", "EOT", "PREGNANCY-C1", "CONTRACEPTION-END") == {
        "IMG-1": "overdue", "EOT": "done", "PREGNANCY-C1": "missed",
        "CONTRACEPTION-END": "planned"}
    with store(readonly=True) as uow:
        feed = {s.visit_id for s in uow.visit_states.of(pid).values() if s.present}
    assert feed.isdisjoint(v.id for v in later)
    assert done_ids(after) == {"PREGNANCY", "BASELINE-IMAGING", "CRYO", "RECOVERY",
                               "SCREEN-LABS", "C1D1", "UNS-2", "EOT"}
    with pytest.raises(HistoryConflict) as caught:
        record(VisitDone("IMG-1", D("2026-06-01")), "2026-06-02")
    assert caught.value.error.rule == "off-study"


def test_an_outcome_recorded_twice_is_a_conflict(service):
    pid = service.enrol(ENROLMENT, "coordinator").id
    service.record(pid, VisitDone("SCREEN-LABS", D("2026-03-01")), "nurse", D("2026-03-01"))
    with pytest.raises(HistoryConflict) as caught:
        service.record(pid, VisitMissed("SCREEN-LABS", "no show"), "nurse", D("2026-03-01"))
    assert caught.value.error.field == "visit_id"
    service.record(pid, CryoablationDone(D("2026-03-02")), "nurse", D("2026-03-02"))
    with pytest.raises(HistoryConflict):
        service.record(pid, CryoablationDone(D("2026-03-02")), "nurse", D("2026-03-02"))


@pytest.mark.parametrize(("event", "field", "message"), [
    (VisitDone("IMG-99", D("2026-03-01")), "visit_id",
     "IMG-99 is not a visit of this participant's schedule"),
    (VisitDone("C1D1", D("2026-03-01")), "visit_id",
     "C1D1 is a infusion visit: record dose_given instead"),
    (VisitMissed("CRYO", "no show"), "visit_id",
     "CRYO is a cryoablation visit: record off_study instead"),
    (VisitDone("BASELINE-IMAGING", D("2026-01-08")), "date",
     "2026-01-08 is before BASELINE-IMAGING's window 2026-02-09 to 2026-03-09 opens, by more "
     "than the window's length"),
    (VisitDone("SCREEN-LABS", D("2026-03-05")), "date",
     "2026-03-05 is after the site's today 2026-03-01"),
    (CryoablationDone(D("2026-02-28")), "date",
     "the cryoablation is enrolled for 2026-03-02; correct the enrolment's cryoablation_date "
     "first"),
])
def test_an_impossible_outcome_is_refused_naming_its_field(service, event, field, message):
    pid = service.enrol(ENROLMENT, "coordinator").id
    with pytest.raises(ScheduleInputError) as caught:
        service.record(pid, event, "nurse", D("2026-03-01"))
    assert [(e.field, e.message) for e in caught.value.errors] == [(field, message)]
    assert service.history(pid)[1] == []


def test_a_visit_done_a_window_length_early_is_accepted_out_of_window(service):
    pid = service.enrol(ENROLMENT, "coordinator").id
    done = service.record(pid, VisitDone("BASELINE-IMAGING", D("2026-01-12")), "nurse",
                          D("2026-03-01")).schedule.visit("BASELINE-IMAGING")
    assert (done.status, done.timing) == ("done", "out_of_window")


def test_a_duplicate_enrolment_names_the_participant_already_enrolled(service):
    first = service.enrol(ENROLMENT, "coordinator")
    with pytest.raises(AlreadyEnrolled) as caught:
        service.enrol(ENROLMENT, "coordinator")
    assert caught.value.existing_id == first.id


def test_the_list_summary_gives_state_and_next_visit_as_of_the_day(service):
    participant = service.enrol(ENROLMENT, "coordinator")
    summary = service.summaries([participant], D("2026-03-03"))[participant.id]
    assert (summary.state, summary.next_visit.id, summary.next_visit.status) == (
        "provisional", "CRYO", "overdue")
    assert service.by_subject_code("ZS-101") == participant
    assert service.by_subject_code("ZS-999") is None


def test_the_list_summary_follows_the_day_and_every_write(service):
    participant = service.enrol(ENROLMENT, "coordinator")
    before = service.summaries([participant], D("2026-02-01"))[participant.id]
    assert (before.next_visit.id, before.next_visit.status) == ("CRYO", "planned")
    # A visit due now comes before an earlier-dated one still ahead.
    later = service.summaries([participant], D("2026-02-10"))[participant.id]
    assert (later.next_visit.id, later.next_visit.status) == ("BASELINE-IMAGING", "due")
    done = service.record(participant.id, VisitDone("BASELINE-IMAGING", D("2026-02-10")),
                          "nurse", D("2026-02-10")).participant
    after = service.summaries([done], D("2026-02-10"))[participant.id]
    assert (after.state, after.next_visit.id, after.next_visit.status) == (
        "provisional", "CRYO", "planned")


# --- A recorded outcome never vanishes; an obligation is never cut silently -------------------


def test_off_study_before_the_first_dose_cancels_the_screening_visits_and_keeps_what_was_done(
        service_v2):
    pid = service_v2.enrol(ENROLMENT, "coordinator").id
    service_v2.record(pid, VisitDone("SCREEN-LABS", D("2026-03-05")), "nurse", D("2026-03-05"))
    left = service_v2.record(pid, OffStudy(D("2026-03-06"), "withdrawal_of_consent"), "nurse",
                             D("2026-03-06")).schedule
    assert left.state == "off_study"
    # Done stays done, on the day it was done; the screening scan never done is cancelled
    # with the first dose it was counted back from, not dropped from the list.
    assert shown(left.visit("SCREEN-LABS")) == ("done", D("2026-03-05"), D("2026-03-05"))
    scan = left.visit("BASELINE-IMAGING")
    assert (scan.status, scan.date, scan.window) == ("cancelled", None, None)
    assert scan.rule.anchor == "C1D1 cancelled: left the study 2026-03-06 (withdrawal_of_consent)"
    assert {left.visit(f"C{n}D1").status for n in range(1, 7)} == {"cancelled"}
    assert not_planned(left) == set()


@pytest.mark.parametrize("protocol", [PROTOCOL_V1, PROTOCOL], ids=["v1", "v2"])
def test_a_discontinuation_before_the_first_dose_keeps_a_missed_screening_visit(store, protocol):
    service = service_on(store, protocol)
    pid = service.enrol(ENROLMENT, "coordinator").id
    service.record(pid, VisitMissed("SCREEN-LABS", "no show"), "nurse", D("2026-03-05"))
    stopped = service.record(pid, Discontinued(D("2026-03-06"), "toxicity"), "nurse",
                             D("2026-03-06")).schedule
    assert stopped.state == "discontinued"
    assert stopped.visit("SCREEN-LABS").status == "missed"
    assert stopped.visit("BASELINE-IMAGING").status == "cancelled"
    assert "done" not in {v.status for v in stopped.visits if v.kind != "cryoablation"
                          and v.kind != "recovery_check"}


def test_a_protocol_version_without_the_visit_keeps_its_recorded_outcome(service_v2):
    """PREGNANCY-C1 (a repeat test before a late first dose) exists only under revision 2: a
    participant moved back to version 1 keeps it as recorded, with a warning."""
    pid = service_v2.enrol(ENROLMENT, "coordinator").id
    service_v2.record(pid, Complication(D("2026-03-04"), "bleeding"), "nurse", D("2026-03-04"))
    service_v2.record(pid, RecoveryConfirmed(D("2026-03-16")), "nurse", D("2026-03-16"))
    service_v2.record(pid, VisitDone("PREGNANCY-C1", D("2026-03-16")), "nurse", D("2026-03-16"))
    moved = service_v2.record(pid, ProtocolVersionChanged("2025-09-15.1", "investigator decision"),
                              "nurse", D("2026-03-16")).schedule
    assert moved.protocol_version == "2025-09-15.1"
    test = moved.visit("PREGNANCY-C1")
    assert (test.status, test.date, test.actual_date, test.window, test.timing) == (
        "done", D("2026-03-16"), D("2026-03-16"), None, None)
    assert (test.kind, test.title) == ("pregnancy_test",
                                       "Serum pregnancy test (repeat before C1D1)")
    assert test.rule.anchor == ("no longer planned: the schedule under protocol version "
                                "2025-09-15.1 has no such visit; its outcome is recorded")
    [warning] = [w for w in moved.warnings if w.code == "recorded-visit-not-planned"]
    assert warning.visit_id == "PREGNANCY-C1"
    assert "its outcome is recorded" in warning.message
    # Moving back plans it again, as recorded.
    back = service_v2.record(pid, ProtocolVersionChanged("2026-11-25.2", "back to revision 2"),
                             "nurse", D("2026-03-16")).schedule
    assert back.visit("PREGNANCY-C1").window is not None
    assert not_planned(back) == set()


def test_while_dosing_is_held_the_screening_visits_are_listed_held_with_what_is_recorded(
        service_v2):
    pid = service_v2.enrol(ENROLMENT, "coordinator").id
    service_v2.record(pid, VisitDone("BASELINE-IMAGING", D("2026-02-27")), "nurse",
                      D("2026-03-01"))
    held = service_v2.record(pid, Complication(D("2026-03-04"), "bleeding"), "nurse",
                             D("2026-03-04")).schedule
    assert held.state == "on_hold"
    assert shown(held.visit("BASELINE-IMAGING")) == ("done", D("2026-02-27"), D("2026-02-27"))
    assert shown(held.visit("SCREEN-LABS")) == ("held", None, None)
    # Listed as held, so nothing stands in for it as "no longer planned".
    assert not_planned(held) == set()
    assert not [w for w in held.warnings if w.code == "recorded-visit-not-planned"]


def test_a_stored_pregnancy_test_done_early_is_repeated_before_the_first_dose(service_v2):
    # Planned for 02-28, nine days before C1D1 on 03-09: no repeat. Recorded done on 02-17,
    # twenty days before it: revision 2 repeats it within 14 days before C1D1.
    pid = service_v2.enrol(ENROLMENT, "coordinator").id
    planned = service_v2.record(pid, RecoveryConfirmed(D("2026-03-09")), "nurse",
                                D("2026-03-09")).schedule
    assert "PREGNANCY-C1" not in {visit.id for visit in planned.visits}
    tested = service_v2.record(pid, VisitDone("PREGNANCY", D("2026-02-17")), "nurse",
                               D("2026-03-09")).schedule
    repeat = tested.visit("PREGNANCY-C1")
    assert repeat.date == D("2026-03-09")
    assert "after the test done on 2026-02-17" in repeat.rule.anchor


# --- Revision 3: a participant whose third dose is held, read at several todays -------------

def test_a_held_participant_on_revision_3_at_several_todays(store):
    """C3D1 is due 2026-04-20 (window 04-17 to 04-23) and nothing is recorded for weeks: it
    stays on its day and becomes overdue; the chain after it is projected from each today and
    is provisional; nothing asks for an end-of-treatment visit; after 12 weeks the hold limit
    is flagged; recording the dose ends the projection."""
    service = service_on(store, PROTOCOL)
    pid = service.enrol(Enrolment("ZS-301", D("2026-03-02")), "coordinator").id
    service.record(pid, CryoablationDone(D("2026-03-02")), "nurse", D("2026-03-02"))
    service.record(pid, RecoveryConfirmed(D("2026-03-09")), "nurse", D("2026-03-09"))
    service.record(pid, DoseGiven(1, D("2026-03-09")), "nurse", D("2026-03-09"))
    service.record(pid, DoseGiven(2, D("2026-03-30")), "nurse", D("2026-03-30"))

    def on(day):
        return service.schedule(pid, D(day))[1]

    due = on("2026-04-21")
    assert statuses(due, "C3D1", "C4D1", "EOT") == {
        "C3D1": "due", "C4D1": "planned", "EOT": "planned"}
    assert due.visit("C4D1").date == D("2026-05-11")

    for today, c4 in (("2026-04-24", "2026-05-15"), ("2026-05-18", "2026-06-08"),
                      ("2026-06-15", "2026-07-06")):
        held = on(today)
        assert (held.visit("C3D1").status, held.visit("C3D1").date) == (
            "overdue", D("2026-04-20")), today
        assert (held.visit("C4D1").status, held.visit("C4D1").date) == ("provisional", D(c4))
        eot = held.visit("EOT")
        assert eot.status == "provisional" and eot.date > D(today), today
        assert f"projected as if given on the site's today {today}" in eot.rule.anchor
        assert not [w for w in held.warnings if w.code == "hold-limit-exceeded"], today

    beyond = on("2026-07-20")  # more than 12 weeks after 04-20
    [limit] = [w for w in beyond.warnings if w.code == "hold-limit-exceeded"]
    assert limit.visit_id == "C3D1"

    given = service.record(pid, DoseGiven(3, D("2026-06-01")), "nurse", D("2026-06-03"))
    after = given.schedule
    assert (after.visit("C3D1").status, after.visit("C4D1").date,
            after.visit("C4D1").status) == ("done", D("2026-06-22"), "planned")
    assert "held" not in after.visit("EOT").rule.anchor
