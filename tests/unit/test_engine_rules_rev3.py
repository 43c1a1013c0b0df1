"""Exact dates and statuses for what the third clinical review found: one owner for the order of
visits, obligations after leaving the study, no warnings about visits that will never happen,
held screening visits, pre-dose labs of given doses, stale projections while a dose is held,
late enrolment, and an unrecorded cryoablation that later facts prove.

Each test names the review's item. Revision 3 (2026-12-04.3) is the default protocol; the
corrections that are bug fixes hold under revision 2 as well, and say so.
"""

from __future__ import annotations

from scheduler import compute_schedule
from scheduler.engine import add_months
from scheduler.model import Discontinuation, DoseRecord, OffStudy, ParticipantFacts, Recovery
from scheduler.outcomes import (
    NO_OUTCOMES,
    OffStudyOutcome,
    Outcomes,
    VisitMissedOutcome,
    apply_outcomes,
    facts_with_outcomes,
    on_day,
)
from tests.conftest import PROTOCOL, PROTOCOL_V2, SITE, D, schedule_for


def given(*days):
    return tuple(DoseRecord(n, "given", D(day)) for n, day in enumerate(days, start=1))


def as_recorded(facts: ParticipantFacts, outcomes: Outcomes = NO_OUTCOMES, protocol=PROTOCOL):
    """What a stored participant or the calculator shows: engine, outcomes, then the day."""
    schedule = compute_schedule(protocol, facts_with_outcomes(facts, outcomes), SITE)
    return on_day(apply_outcomes(schedule, outcomes), facts.as_of)


def facts(**values) -> ParticipantFacts:
    base = dict(cryoablation_date=D("2026-03-02"), recovery=Recovery("recovered", D("2026-03-09")))
    return ParticipantFacts(**{**base, **values})


def on(schedule, day):
    return [v.id for v in schedule.visits if v.date == D(day)]


# --- Item 1: the order of one day's visits has one owner ---------------------------------------

def test_recorded_outcomes_keep_the_same_day_clinical_order():
    """On 03-09 the recovery is checked, the screening labs drawn, then cycle 1 given; the
    outcomes step used to re-sort by id and list C1D1 first."""
    schedule = as_recorded(facts(as_of=D("2026-03-09")))
    assert on(schedule, "2026-03-09") == ["RECOVERY", "SCREEN-LABS", "C1D1"]
    scanned = as_recorded(facts(doses=given("2026-03-09", "2026-03-30"), as_of=D("2026-04-20")))
    assert on(scanned, "2026-04-20") == ["C3-LABS", "IMG-1", "C3D1"]


# --- Item 2: after leaving the study, from the last dose actually given ------------------------

def test_contraception_end_after_off_study_counts_from_the_last_dose_given():
    left = as_recorded(facts(doses=given("2026-03-09", "2026-03-30"), as_of=D("2026-04-24")),
                       Outcomes(off_study=OffStudyOutcome(D("2026-04-24"),
                                                          "withdrawal_of_consent")))
    end = left.visit("CONTRACEPTION-END")
    assert (end.date, end.status) == (D("2026-09-30"), "planned")
    assert end.rule.anchor == ("last dose 2026-03-30 (C2D1, given; left the study 2026-04-24) "
                               "+ 6 months")
    # What counted from the planned C6 is cancelled with the rest after leaving.
    assert {left.visit(i).status for i in ("EOT", "SAFETY-FU", "C3D1", "C6D1")} == {"cancelled"}


def test_end_of_treatment_and_safety_after_a_discontinuation_count_from_the_dose_given():
    stopped = schedule_for(doses=given("2026-03-09", "2026-03-30"),
                           discontinuation=Discontinuation(D("2026-04-10"), None, "toxicity"))
    assert stopped.visit("SAFETY-FU").date == D("2026-06-29")  # 03-30 + 90 days
    assert stopped.visit("EOT").rule.anchor.startswith(
        "last dose 2026-03-30 (C2D1, given; treatment discontinued 2026-04-10) + 30 days")


# --- Item 3: no warning about a visit that will never happen -----------------------------------

def test_a_cancelled_infusion_raises_no_hold_limit_warning():
    """Cycle 2 was due 03-30 and never given; the participant died 08-01. Nothing about C2D1
    is still due, so no warning names it."""
    dead = as_recorded(facts(doses=given("2026-03-09"), as_of=D("2026-08-05")),
                       Outcomes(off_study=OffStudyOutcome(D("2026-08-01"), "death")))
    assert dead.visit("C2D1").status == "cancelled"
    assert [w.code for w in dead.warnings if w.visit_id == "C2D1"] == []
    assert not [w for w in dead.warnings if w.code == "hold-limit-exceeded"]


# --- Item 4: leaving the study is applied once, the same for the calculator and a history -------

def test_off_study_from_the_calculator_and_from_a_history_reads_the_same():
    outcomes = Outcomes(off_study=OffStudyOutcome(D("2026-04-24"), "lost_to_follow_up"))
    from_body = as_recorded(facts(doses=given("2026-03-09"), as_of=D("2026-04-30")), outcomes)
    from_history = as_recorded(facts(doses=given("2026-03-09"), as_of=D("2026-04-30"),
                                     off_study=OffStudy(D("2026-04-24"), "lost_to_follow_up")),
                               outcomes)
    assert from_body == from_history
    assert from_body.visit("SAFETY-FU").rule.anchor == (
        "left the study 2026-04-24 (lost_to_follow_up)")


def test_after_death_the_contraception_end_no_longer_applies():
    dead = as_recorded(facts(doses=given("2026-03-09"), as_of=D("2026-04-30")),
                       Outcomes(off_study=OffStudyOutcome(D("2026-04-24"), "death")))
    end = dead.visit("CONTRACEPTION-END")
    assert (end.status, end.date) == ("cancelled", None)
    assert end.rule.anchor == ("the participant died 2026-04-24: the contraception end no "
                               "longer applies")


# --- Item 5: screening visits during a complication hold ----------------------------------------

def test_screening_visits_are_held_not_absent_during_a_complication_hold():
    for protocol in (PROTOCOL, PROTOCOL_V2):
        held = schedule_for(recovered=None, protocol=protocol,
                            recovery=Recovery("complication", D("2026-03-04")))
        assert [(held.visit(i).status, held.visit(i).date) for i in
                ("SCREEN-LABS", "BASELINE-IMAGING")] == [("held", None), ("held", None)]


# --- Second part, item 1: pre-dose labs of doses given ------------------------------------------

def test_unrecorded_labs_of_given_doses_are_overdue_whatever_later_doses_were_given():
    schedule = as_recorded(facts(doses=given("2026-03-09", "2026-03-30", "2026-04-20"),
                                 as_of=D("2026-05-06")))
    assert [(i, schedule.visit(i).status) for i in ("C2-LABS", "C3-LABS", "C4-LABS")] == [
        ("C2-LABS", "overdue"), ("C3-LABS", "overdue"), ("C4-LABS", "planned")]


def test_the_labs_window_follows_the_dose_as_given():
    late = schedule_for(doses=given("2026-03-09", "2026-04-02"))
    labs = late.visit("C2-LABS")
    assert (labs.date, labs.window.earliest, labs.window.latest) == (
        D("2026-04-02"), D("2026-03-30"), D("2026-04-02"))


def test_a_dose_given_while_its_labs_are_recorded_missed_is_warned_about():
    schedule = as_recorded(facts(doses=given("2026-03-09", "2026-03-30"), as_of=D("2026-04-01")),
                           Outcomes(missed=(VisitMissedOutcome("C2-LABS", "no blood drawn"),)))
    [warning] = [w for w in schedule.warnings if w.code == "dose-given-labs-missed"]
    assert (warning.visit_id, warning.message) == (
        "C2D1", "C2D1 was given on 2026-03-30 while its pre-dose labs C2-LABS are recorded "
                "missed (rule predose-labs)")


# --- Second part, item 2: a held dose re-projects the rest from today ---------------------------

def test_a_held_dose_projects_the_later_cycles_and_follow_up_from_the_sites_today():
    """C3D1 was due 04-20; on 05-18 nothing is recorded. It stays on its day, overdue; cycle 4
    follows 21 days after today, and nothing asks for an end-of-treatment visit yet."""
    schedule = as_recorded(facts(doses=given("2026-03-09", "2026-03-30"), as_of=D("2026-05-18")))
    assert (schedule.visit("C3D1").date, schedule.visit("C3D1").status) == (
        D("2026-04-20"), "overdue")
    c4 = schedule.visit("C4D1")
    assert (c4.date, c4.status) == (D("2026-06-08"), "provisional")
    assert c4.rule.anchor == ("cycle 3 held since 2026-04-20, projected as if given on the "
                              "site's today 2026-05-18, + 21 days")
    eot = schedule.visit("EOT")
    assert (eot.date, eot.status) == (D("2026-08-19"), "provisional")
    assert "C3D1 held since 2026-04-20" in eot.rule.anchor
    assert schedule.visit("CONTRACEPTION-END").date == add_months(D("2026-07-20"), 6)
    # A week later the projection moves with the day.
    later = as_recorded(facts(doses=given("2026-03-09", "2026-03-30"), as_of=D("2026-05-25")))
    assert later.visit("C4D1").date == D("2026-06-15")


def test_revision_2_keeps_the_planned_chain_while_a_dose_is_held():
    kept = as_recorded(facts(doses=given("2026-03-09", "2026-03-30"), as_of=D("2026-05-18")),
                       protocol=PROTOCOL_V2)
    assert kept.visit("C4D1").date == D("2026-05-11")


# --- Second part, item 3: late enrolment --------------------------------------------------------

def test_cycles_after_the_estimated_completion_are_kept_with_a_warning():
    late = schedule_for(cryoablation="2027-07-05", recovered="2027-07-12")
    c6 = late.visit("C6D1")
    assert (c6.date, c6.status) == (D("2027-10-27"), "provisional")
    assert "C6D1" in {w.visit_id for w in late.warnings
                      if w.code == "after-estimated-study-completion"}
    assert late.visit("C6-LABS").date == D("2027-10-27")
    cut = schedule_for(cryoablation="2027-07-05", recovered="2027-07-12", protocol=PROTOCOL_V2)
    assert "C6D1" not in {v.id for v in cut.visits}


# --- Second part, item 4: an unrecorded cryoablation that later facts prove --------------------

def test_an_unrecorded_cryoablation_proved_by_a_dose_is_not_overdue():
    schedule = as_recorded(facts(doses=given("2026-03-09"), as_of=D("2026-03-20")))
    cryo = schedule.visit("CRYO")
    assert cryo.status == "planned"
    assert cryo.rule.anchor.endswith("procedure not recorded (RECOVERY on 2026-03-09 shows it "
                                     "happened)")
    assert [w.visit_id for w in schedule.warnings if w.code == "procedure-not-recorded"] == [
        "CRYO"]
    unproved = as_recorded(facts(recovery=Recovery("pending"), as_of=D("2026-03-20")))
    assert unproved.visit("CRYO").status == "overdue"
