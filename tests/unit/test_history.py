"""The append-only history folds into the engine's facts; contradictions are refused."""

from __future__ import annotations

import datetime as dt

import pytest

from scheduler import ScheduleInputError
from scheduler.history import Enrolment, Event, HistoryConflict, check_append, fold
from scheduler.model import Discontinuation, DoseRecord, OffStudy, Recovery
from tests.conftest import PROTOCOL, PROTOCOL_V1, D

ENROLMENT = Enrolment("ZS-001", D("2026-03-02"))
AT = dt.datetime(2026, 3, 9, tzinfo=dt.UTC)


def event(seq, type_, **fields):
    return Event(f"e{seq}", seq, type_, "coordinator", AT, **fields)


HISTORY = [event(1, "recovery_confirmed", date=D("2026-03-09")),
           event(2, "dose_given", cycle=1, date=D("2026-03-09"))]


def test_fold_gives_the_facts_of_the_history():
    facts = fold(ENROLMENT, HISTORY)
    assert facts.recovery == Recovery("recovered", D("2026-03-09"))
    assert facts.doses == (DoseRecord(1, "given", D("2026-03-09")),)


def test_a_correction_voids_the_event_it_names():
    corrected = [*HISTORY, event(3, "correction", corrects="e2", reason="wrong patient")]
    assert fold(ENROLMENT, corrected).doses == ()


def test_the_latest_of_complication_and_recovery_wins():
    history = [event(1, "complication", date=D("2026-03-04"), description="pneumothorax"),
               event(2, "recovery_confirmed", date=D("2026-03-12"))]
    assert fold(ENROLMENT, history).recovery == Recovery("recovered", D("2026-03-12"))
    assert fold(ENROLMENT, history[:1]).recovery.status == "complication"


@pytest.mark.parametrize(("new", "field", "rule"), [
    (event(3, "dose_given", cycle=1, date=D("2026-03-10")), "cycle", "serplulimab"),
    (event(3, "complication", date=D("2026-03-10"), description="x"), "type",
     "complication-hold"),
    (event(3, "recovery_confirmed", date=D("2026-03-10")), "type", "recovery-gate"),
])
def test_contradictions_are_conflicts(new, field, rule):
    with pytest.raises(HistoryConflict) as caught:
        check_append(PROTOCOL, ENROLMENT, HISTORY, new)
    assert (caught.value.error.field, caught.value.error.rule) == (field, rule)


def test_nothing_after_discontinuation():
    stopped = [*HISTORY, event(3, "discontinued", date=D("2026-03-20"), reason="progression")]
    with pytest.raises(HistoryConflict):
        check_append(PROTOCOL, ENROLMENT, stopped, event(4, "dose_skipped", cycle=2))


def test_corrections_cannot_be_corrected_or_repeated():
    corrected = [*HISTORY, event(3, "correction", corrects="e2", reason="x")]
    with pytest.raises(HistoryConflict):
        check_append(PROTOCOL, ENROLMENT, corrected, event(4, "correction", corrects="e3"))
    with pytest.raises(HistoryConflict):
        check_append(PROTOCOL, ENROLMENT, corrected, event(4, "correction", corrects="e2"))


def test_voiding_recovery_under_a_given_dose_is_refused_naming_the_rule():
    with pytest.raises(ScheduleInputError) as caught:
        check_append(PROTOCOL, ENROLMENT, HISTORY, event(3, "correction", corrects="e1"))
    assert caught.value.errors[0].rule == "recovery-gate"


def test_a_new_dose_problem_names_the_events_own_field():
    with pytest.raises(ScheduleInputError) as caught:
        check_append(PROTOCOL, ENROLMENT, HISTORY,
                     event(3, "dose_given", cycle=2, date=D("2026-03-01")))
    assert [(e.field, e.rule) for e in caught.value.errors] == [("date", "recovery-gate")]


def test_recovery_and_complications_fold_by_date_whatever_the_entry_order():
    # Rule fact-order (revision 2): the complication on 03-05, entered after the recovery
    # confirmed on 03-12, is older than it and does not reopen the hold.
    history = [event(1, "recovery_confirmed", date=D("2026-03-12")),
               event(2, "complication", date=D("2026-03-05"), description="pneumothorax")]
    assert fold(ENROLMENT, history, protocol=PROTOCOL).recovery == \
        Recovery("recovered", D("2026-03-12"))


def test_the_first_protocol_version_folds_in_entry_order():
    history = [event(1, "recovery_confirmed", date=D("2026-03-12")),
               event(2, "complication", date=D("2026-03-05"), description="pneumothorax")]
    assert fold(ENROLMENT, history, protocol=PROTOCOL_V1).recovery == \
        Recovery("complication", D("2026-03-05"))


def test_discontinuation_reason_code_and_leaving_the_study_reach_the_facts():
    history = [*HISTORY,
               event(3, "discontinued", date=D("2026-03-20"), reason="new lesion",
                     reason_code="progression"),
               event(4, "off_study", date=D("2026-03-25"), reason="withdrawal_of_consent")]
    facts = fold(Enrolment("ZS-001", D("2026-03-02"), screening_date=D("2026-02-20")), history)
    assert facts.discontinuation == Discontinuation(D("2026-03-20"), "new lesion", "progression")
    assert facts.off_study == OffStudy(D("2026-03-25"), "withdrawal_of_consent")
    assert facts.screening_date == D("2026-02-20")


def test_leaving_the_study_may_follow_a_discontinuation_and_nothing_follows_it():
    stopped = [*HISTORY, event(3, "discontinued", date=D("2026-03-20"), reason="x")]
    check_append(PROTOCOL, ENROLMENT, stopped,
                 event(4, "off_study", date=D("2026-03-25"), reason="lost_to_follow_up"))
    left = [*stopped, event(4, "off_study", date=D("2026-03-25"), reason="lost_to_follow_up")]
    with pytest.raises(HistoryConflict) as caught:
        check_append(PROTOCOL, ENROLMENT, left, event(5, "dose_skipped", cycle=2))
    assert caught.value.error.rule == "off-study"
