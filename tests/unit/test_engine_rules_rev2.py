"""Exact dates for every rule protocol revision 2 (2026-11-25.2) corrects, one behaviour per
test, including every example of the clinical review.

Weekdays and holidays are those of the State Council's 2026 notice: Spring Festival Sun 02-15
to Mon 02-23 with make-up working days Sat 02-14 and Sat 02-28; Qingming Sat 04-04 to Mon
04-06; Labour Day Fri 05-01 to Tue 05-05 (make-up Sat 05-09); National Day Thu 10-01 to Wed
10-07 (make-up Sun 09-20 and Sat 10-10).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from scheduler import ScheduleInputError, compute_schedule
from scheduler.history import Enrolment, Event, check_append, fold
from scheduler.model import (
    Discontinuation,
    DoseRecord,
    Lookbacks,
    OffStudy,
    ParticipantFacts,
    Recovery,
    Window,
)
from scheduler.validation import validate_facts
from tests.conftest import PROTOCOL, SITE, D, schedule_for


def given(*days):
    return tuple(DoseRecord(n, "given", D(day)) for n, day in enumerate(days, start=1))


def scans(schedule):
    return [v.date.isoformat() for v in schedule.visits
            if v.kind == "response_imaging" and v.date is not None]


def warnings(schedule, code):
    return [w for w in schedule.warnings if w.code == code]


def weekday(text):
    return D(text).strftime("%a")


# Rule 21: repeating series end at the estimated completion; single obligations are kept


LATE = dict(cryoablation="2027-08-24", recovered="2027-08-31", doses=given("2027-08-31"),
            discontinuation=Discontinuation(D("2027-08-31"), "grade 3 colitis", "toxicity"))


def test_obligations_after_estimated_completion_are_kept_with_a_warning():
    schedule = schedule_for(**LATE)
    assert (weekday("2027-11-29"), weekday("2028-02-29")) == ("Mon", "Tue")
    assert schedule.visit("SAFETY-FU").date == D("2027-11-29")  # last dose + 90 days
    assert schedule.visit("SAFETY-FU").window == Window(D("2027-11-22"), D("2027-12-06"))
    assert schedule.visit("CONTRACEPTION-END").date == D("2028-02-29")  # + 6 months
    assert schedule.visit("OS-1Y").date == D("2028-08-24")
    assert schedule.visit("EOT").date == D("2027-09-30")
    kept = warnings(schedule, "after-estimated-study-completion")
    assert [w.visit_id for w in kept] == ["SAFETY-FU", "CONTRACEPTION-END", "OS-1Y"]
    assert kept[0].message.startswith("SAFETY-FU on 2027-11-29 falls after the estimated "
                                      "study completion on 2027-09-30; it is kept")
    assert warnings(schedule, "cut-at-study-completion") == []


def test_repeating_series_still_end_at_the_estimated_completion():
    schedule = schedule_for(**LATE)
    assert scans(schedule) == []  # C1D1 2027-08-31 + 6 weeks = 2027-10-12, after completion
    assert not [v for v in schedule.visits if v.kind == "survival_follow_up"]
    on_time = schedule_for("2027-05-03", "2027-05-10")
    assert [v.id for v in on_time.visits if v.kind == "infusion" and v.date] == [
        "C1D1", "C2D1", "C3D1", "C4D1", "C5D1", "C6D1"]
    assert max(v.date for v in on_time.visits if v.kind in (
        "response_imaging", "survival_follow_up")) <= D("2027-09-30")


# Rule 15: the response imaging grid


THREE_WEEKS_LATE = dict(doses=given("2026-03-09", "2026-04-20", "2026-06-01"))


def test_cycles_given_three_weeks_late_keep_scans_six_weeks_apart():
    # Cryoablation 03-02, recovered 03-09, C2 on 04-20 and C3 on 06-01, each three weeks late:
    # C6 is planned 08-03, so treatment ends 08-24, itself a 6-weekly point; month 6 (09-09)
    # is 16 days later and left out.
    schedule = schedule_for(**THREE_WEEKS_LATE)
    assert scans(schedule) == ["2026-04-20", "2026-06-01", "2026-07-13", "2026-08-24",
                               "2026-12-09", "2027-03-09", "2027-09-09"]
    assert [weekday(day) for day in scans(schedule)] == [
        "Mon", "Mon", "Mon", "Mon", "Wed", "Tue", "Thu"]


def test_cycles_moved_earlier_by_a_holiday_keep_the_post_treatment_scan():
    # C1 Mon 01-26; C2 due on Chinese New Year's Eve (Mon 02-16) moves to the make-up working
    # Saturday 02-14 and C3 (due Sat 03-07) to Fri 03-06, so C6 is Fri 05-08 and treatment
    # ends 05-29. The first 6-weekly point on or after it, 06-01, is kept (the first version
    # dropped it, leaving 98 days between 04-20 and 07-27).
    schedule = schedule_for("2026-01-19", "2026-01-26")
    assert schedule.visit("C6D1").date == D("2026-05-08")
    grid = [v.rule.shifted_from or v.date for v in schedule.visits
            if v.kind == "response_imaging"]
    assert [day.isoformat() for day in grid[:5]] == [
        "2026-03-09", "2026-04-20", "2026-06-01", "2026-07-26", "2026-10-26"]


def test_imaging_stops_after_a_discontinuation_for_progression():
    stop = Discontinuation(D("2026-05-15"), "new lesion", "progression")
    schedule = schedule_for(doses=given("2026-03-09", "2026-03-30"), discontinuation=stop)
    assert scans(schedule) == ["2026-04-20"]
    img2 = schedule.visit("IMG-2")
    assert (img2.date, img2.status, img2.rule.id) == (None, "cancelled", "discontinuation")
    assert img2.rule.anchor == "discontinued 2026-05-15 for progression"


def test_imaging_goes_on_after_a_discontinuation_for_toxicity():
    stop = Discontinuation(D("2026-05-15"), "grade 3 pneumonitis", "toxicity")
    schedule = schedule_for(doses=given("2026-03-09", "2026-03-30"), discontinuation=stop)
    # Treatment ended 04-20 (C2 + 21 days); 04-20 closes the 6-weekly phase, then the
    # 3-monthly points from C1D1: 06-09, 09-09, 12-09, 2027-03-09, then 2027-09-09.
    assert scans(schedule)[:3] == ["2026-04-20", "2026-06-09", "2026-09-09"]


# Rules 12 and 13: pregnancy test and baseline scan before the cryoablation


def test_pregnancy_test_within_14_days_before_cryoablation():
    test = schedule_for(childbearing_potential=True).visit("PREGNANCY")
    assert test.window == Window(D("2026-02-16"), D("2026-03-01"))
    # Sun 03-01 moves to the Spring Festival make-up working Saturday 02-28.
    assert (test.date, test.rule.shifted_from) == (D("2026-02-28"), D("2026-03-01"))
    assert test.rule.shift_reason == ("2026-03-01 is a Sunday; Saturday 2026-02-28 is a working "
                                      "day: Spring Festival make-up day")


def test_pregnancy_test_is_repeated_when_the_first_dose_is_more_than_14_days_later():
    schedule = schedule_for(recovered="2026-03-20", childbearing_potential=True)
    repeat = schedule.visit("PREGNANCY-C1")
    assert (repeat.date, repeat.window) == (D("2026-03-20"), Window(D("2026-03-06"),
                                                                    D("2026-03-20")))
    assert weekday("2026-03-20") == "Fri"
    with pytest.raises(KeyError):
        schedule_for(childbearing_potential=True).visit("PREGNANCY-C1")  # 9 days: no repeat


def test_baseline_imaging_before_cryoablation_within_28_days_of_the_first_dose():
    baseline = schedule_for().visit("BASELINE-IMAGING")
    assert baseline.window == Window(D("2026-02-09"), D("2026-03-01"))
    # The target, cryoablation - 7 days, is Mon 02-23, a Spring Festival holiday.
    assert (baseline.date, baseline.rule.shifted_from) == (D("2026-02-24"), D("2026-02-23"))
    assert baseline.rule.shift_reason == "2026-02-23 is a Spring Festival holiday"


def test_baseline_imaging_without_a_day_in_its_window_asks_the_investigator():
    # C1D1 Mon 03-30 is 28 days after the cryoablation: no day is in [03-02, 03-01].
    schedule = schedule_for(recovered="2026-03-30")
    baseline = schedule.visit("BASELINE-IMAGING")
    assert baseline.date == D("2026-02-24")
    [warning] = warnings(schedule, "baseline-imaging-window-empty")
    assert warning.visit_id == "BASELINE-IMAGING"
    assert "within 28 days before C1D1 on 2026-03-30" in warning.message


# Rules 16 and 23: end of treatment, discontinuation reasons, leaving the study


def test_end_of_treatment_is_seven_days_after_a_later_discontinuation():
    schedule = schedule_for(doses=(*given("2026-03-09", "2026-04-03"),
                                   DoseRecord(3, "skipped", reason="grade 2 pneumonitis")),
                            discontinuation=Discontinuation(D("2026-05-10"), "progression"))
    eot = schedule.visit("EOT")
    # Last dose 04-03 + 30 = 05-03; discontinued Sun 05-10 + 7 = Sun 05-17, later: Mon 05-18.
    assert (eot.date, eot.rule.shifted_from) == (D("2026-05-18"), D("2026-05-17"))
    assert eot.window == Window(D("2026-05-10"), D("2026-05-24"))
    assert eot.rule.anchor.startswith("discontinued 2026-05-10 + 7 days, later than last dose")


def test_end_of_treatment_stays_30_days_after_the_last_dose_when_that_is_later():
    schedule = schedule_for(doses=given("2026-03-09", "2026-03-30"),
                            discontinuation=Discontinuation(D("2026-04-20"), None, "toxicity"))
    eot = schedule.visit("EOT")
    assert eot.date == D("2026-04-29")  # 03-30 + 30 days (Wed), later than 04-20 + 7
    assert eot.window == Window(D("2026-04-22"), D("2026-05-06"))


def test_end_of_treatment_window_opens_no_earlier_than_the_discontinuation():
    schedule = schedule_for(doses=given("2026-03-09", "2026-03-30"),
                            discontinuation=Discontinuation(D("2026-04-24"), None, "toxicity"))
    eot = schedule.visit("EOT")
    # 04-24 + 7 = Fri 05-01 (Labour Day), later than 04-29: moved to Thu 04-30.
    assert (eot.date, eot.rule.shifted_from) == (D("2026-04-30"), D("2026-05-01"))
    assert eot.rule.shift_reason == "2026-05-01 is a Labour Day holiday"
    assert eot.window == Window(D("2026-04-24"), D("2026-05-08"))


def test_discontinuation_reason_code_must_be_one_the_protocol_lists():
    with pytest.raises(ScheduleInputError) as caught:
        schedule_for(doses=given("2026-03-09"),
                     discontinuation=Discontinuation(D("2026-03-20"), None, "boredom"))
    assert [(e.field, e.rule) for e in caught.value.errors] == [
        ("discontinuation.reason_code", "discontinuation")]


def test_leaving_the_study_cancels_every_later_visit():
    schedule = schedule_for(doses=given("2026-03-09", "2026-03-30"),
                            off_study=OffStudy(D("2026-04-10"), "withdrawal_of_consent"))
    assert schedule.state == "off_study"
    # The 1-year survival landmark too, as the rule says ("every visit after its date") and
    # as a recorded off_study cancels it (scheduler.outcomes): the two paths agree.
    for visit_id in ("C3D1", "IMG-1", "EOT", "SAFETY-FU", "SURV-1", "OS-1Y"):
        visit = schedule.visit(visit_id)
        assert (visit.date, visit.status, visit.rule.id) == (None, "cancelled", "off-study")
    assert schedule.visit("C3-LABS").status == "cancelled"  # no dose, no pre-dose labs
    assert schedule.visit("C2D1").status == "done"
    # The contraception end stays as information: last dose 03-30 + 6 months.
    assert schedule.visit("CONTRACEPTION-END").date == D("2026-09-30")


# Rule 24: same-day order; rule 25: one trip


def test_visits_on_one_day_are_in_clinical_order():
    schedule = schedule_for()
    same_day = [v.id for v in schedule.visits if v.date == D("2026-04-20")]
    assert same_day == ["C3-LABS", "IMG-1", "C3D1"]
    assert [v.id for v in schedule.visits if v.date == D("2026-03-09")] == [
        "RECOVERY", "SCREEN-LABS", "C1D1"]


def test_a_scan_joins_an_infusion_within_its_window():
    # C3 given late on Fri 05-08, so C4 is due Fri 05-29; the scan due Mon 06-01 joins it.
    schedule = schedule_for(doses=given("2026-03-09", "2026-03-30", "2026-05-08"))
    scan, c4 = schedule.visit("IMG-2"), schedule.visit("C4D1")
    assert (c4.date, c4.rule.shifted_from) == (D("2026-05-29"), None)
    assert (scan.date, scan.rule.shifted_from) == (D("2026-05-29"), D("2026-06-01"))
    assert scan.rule.shift_reason == "with C4D1 (rule one-trip)"


def test_a_follow_up_visit_joins_a_scan_and_says_why_it_moved():
    schedule = schedule_for()
    survival = schedule.visit("SURV-1")
    # Due Sun 12-13; the scan on Wed 12-09 is within 7 days and inside its window.
    assert (survival.date, survival.rule.shifted_from) == (D("2026-12-09"), D("2026-12-13"))
    assert survival.rule.shift_reason == "2026-12-13 is a Sunday; with IMG-5 (rule one-trip)"


# Rule 26: facts cannot be in the future


def test_a_dose_after_the_sites_today_is_refused_naming_the_field():
    facts = ParticipantFacts(D("2026-03-02"), Recovery("recovered", D("2026-03-09")),
                             doses=given("2026-03-09", "2026-03-31"))
    with pytest.raises(ScheduleInputError) as caught:
        validate_facts(PROTOCOL, facts, today=D("2026-03-30"))
    assert [(e.field, e.rule) for e in caught.value.errors] == [
        ("doses.1.date", "future-facts")]
    validate_facts(PROTOCOL, facts, today=D("2026-03-31"))


def test_a_cryoablation_in_the_future_is_allowed_and_stays_planned():
    facts = ParticipantFacts(D("2026-12-07"), as_of=D("2026-11-25"))
    validate_facts(PROTOCOL, facts, today=D("2026-11-25"))
    assert compute_schedule(PROTOCOL, facts, SITE).visit("CRYO").status == "planned"


def test_a_recorded_event_dated_after_today_is_a_422_on_its_own_field():
    enrolment = Enrolment("ZS-001", D("2026-03-02"))
    at = dt.datetime(2026, 3, 9, tzinfo=dt.UTC)
    new = Event("e1", 1, "recovery_confirmed", "coordinator", at, date=D("2026-03-10"))
    with pytest.raises(ScheduleInputError) as caught:
        check_append(PROTOCOL, enrolment, [], new, today=D("2026-03-09"))
    assert [(e.field, e.rule) for e in caught.value.errors] == [("date", "future-facts")]


# Rule 27: recovery and complications folded by date


def test_a_complication_dated_before_the_recovery_does_not_reopen_the_hold():
    at = dt.datetime(2026, 3, 20, tzinfo=dt.UTC)
    history = [Event("e1", 1, "recovery_confirmed", "coordinator", at, date=D("2026-03-12")),
               Event("e2", 2, "complication", "coordinator", at, date=D("2026-03-05"),
                     description="pneumothorax")]
    facts = fold(Enrolment("ZS-001", D("2026-03-02")), history, protocol=PROTOCOL)
    assert facts.recovery == Recovery("recovered", D("2026-03-12"))


# Look-backs: inclusive boundaries, screening date, prior malignancy


def test_a_live_vaccine_exactly_28_days_before_the_first_dose_is_a_conflict():
    schedule = schedule_for(lookbacks=Lookbacks(live_vaccine=D("2026-02-09")))
    [conflict] = warnings(schedule, "lookback-conflict")
    assert conflict.message.startswith("C1D1 2026-03-09 is before 2026-03-10, the earliest")
    assert warnings(schedule_for(lookbacks=Lookbacks(live_vaccine=D("2026-02-08"))),
                    "lookback-conflict") == []


def test_other_trial_look_back_counts_to_the_screening_date():
    lookbacks = Lookbacks(other_trial_last_dose=D("2025-11-20"))
    conflict = schedule_for(lookbacks=lookbacks, screening_date=D("2026-02-20"))
    [warning] = warnings(conflict, "lookback-conflict")
    assert warning.message.startswith("screening 2026-02-20 is before 2026-02-21")
    assert warnings(schedule_for(lookbacks=lookbacks, screening_date=D("2026-02-21")),
                    "lookback-conflict") == []


def test_other_trial_look_back_without_a_screening_date_asks_for_it():
    schedule = schedule_for(lookbacks=Lookbacks(other_trial_last_dose=D("2025-12-05")))
    [asked] = warnings(schedule, "screening-date-missing")
    assert "against the cryoablation on 2026-03-02" in asked.message
    [conflict] = warnings(schedule, "lookback-conflict")
    assert conflict.message.startswith("cryoablation 2026-03-02 is before 2026-03-06")


def test_prior_malignancy_within_five_years_is_a_conflict_naming_the_exceptions():
    schedule = schedule_for(lookbacks=Lookbacks(prior_malignancy=D("2021-03-01")),
                            screening_date=D("2026-02-20"))
    [conflict] = warnings(schedule, "lookback-conflict")
    assert conflict.message.startswith("screening 2026-02-20 is before 2026-03-02")
    assert conflict.message.endswith(
        "a conflict for the investigator to judge; the record excepts curatively treated "
        "localized tumors such as basal cell carcinoma, squamous cell carcinoma of the skin, "
        "superficial bladder cancer, carcinoma in situ of the cervix, prostate, or breast")
    assert warnings(schedule_for(lookbacks=Lookbacks(prior_malignancy=D("2021-02-19")),
                                 screening_date=D("2026-02-20")), "lookback-conflict") == []


# Rule 10 and the explanations (item 8)


def test_a_hold_beyond_12_weeks_before_cycle_1_is_an_eligibility_question():
    schedule = schedule_for(recovered=None, recovery=Recovery("complication", D("2026-03-05")),
                            as_of=D("2026-06-02"))
    [question] = warnings(schedule, "eligibility-question")
    assert question.message == (
        "C1D1 could be given from 2026-03-09 and is still held on 2026-06-02, more than 12 "
        "weeks later: whether the participant is still eligible is a question for the "
        "investigator (rule hold-limit)")
    assert warnings(schedule, "hold-limit-exceeded") == []


def test_held_visits_do_not_repeat_their_status_in_the_title():
    schedule = schedule_for(recovered=None, recovery=Recovery("complication", D("2026-03-05")))
    assert schedule.visit("RECOVERY").title == "Recovery check after cryoablation"
    assert schedule.visit("C1D1").title == "Serplulimab 300 mg IV, cycle 1"


def test_an_overdue_warning_names_the_moved_date_the_visit_list_shows():
    # C1 given Mon 03-16: C2 is due Mon 04-06 (Qingming, observed) and planned Tue 04-07.
    schedule = schedule_for(doses=given("2026-03-16"), as_of=D("2026-07-01"))
    assert schedule.visit("C2D1").date == D("2026-04-07")
    [overdue] = warnings(schedule, "hold-limit-exceeded")
    assert overdue.message.startswith("C2D1 was due 2026-04-07 and is not recorded by "
                                      "2026-07-01")


def test_a_visit_kept_on_a_make_up_working_sunday_says_so():
    safety = schedule_for().visit("SAFETY-FU")
    assert (safety.date, safety.rule.shifted_from) == (D("2026-09-20"), None)
    assert safety.rule.shift_reason == ("Sunday 2026-09-20 is a working day: National Day "
                                        "make-up day")


def test_no_explanation_carries_the_holiday_packages_own_names():
    schedule = schedule_for("2026-01-19", "2026-01-26", childbearing_potential=True)
    reasons = " ".join(v.rule.shift_reason or "" for v in schedule.visits)
    assert "2026-02-16 is a Spring Festival holiday" in reasons
    assert "substituted" not in reasons and "Day off" not in reasons
    assert "Chinese New Year" not in reasons


def test_a_recorded_baseline_scan_outside_its_window_asks_the_investigator():
    # Window [02-09, 03-01] for cryoablation 03-02 and C1D1 03-09; a scan on 02-05 is too early.
    schedule = schedule_for(baseline_imaging_date=D("2026-02-05"))
    baseline = schedule.visit("BASELINE-IMAGING")
    assert (baseline.date, baseline.status, baseline.rule.anchor) == (
        D("2026-02-05"), "done", "recorded 2026-02-05")
    [warning] = warnings(schedule, "baseline-imaging-outside-window")
    assert warning.message.startswith("The baseline scan recorded on 2026-02-05 is outside its "
                                      "window 2026-02-09 to 2026-03-01")
    inside = schedule_for(baseline_imaging_date=D("2026-02-25"))
    assert inside.visit("BASELINE-IMAGING").date == D("2026-02-25")
    assert warnings(inside, "baseline-imaging-outside-window") == []


def test_a_baseline_scan_recorded_after_the_sites_today_is_refused():
    facts = ParticipantFacts(D("2026-03-02"), baseline_imaging_date=D("2026-02-25"))
    with pytest.raises(ScheduleInputError) as caught:
        validate_facts(PROTOCOL, facts, today=D("2026-02-24"))
    assert [(e.field, e.rule) for e in caught.value.errors] == [
        ("baseline_imaging_date", "future-facts")]


def test_a_recorded_visit_the_rules_no_longer_plan_is_listed_with_a_warning():
    schedule = schedule_for(recorded_visits=("IMG-40", "C9-LABS", "NOT-A-VISIT"))
    listed = {v.id: v for v in schedule.visits}
    assert (listed["IMG-40"].kind, listed["IMG-40"].title, listed["IMG-40"].rule.id) == (
        "response_imaging", "Response imaging 40 (mRECIST (2019))", "response-imaging")
    assert (listed["C9-LABS"].kind, listed["C9-LABS"].cycle) == ("predose_labs", 9)
    assert (listed["NOT-A-VISIT"].kind, listed["NOT-A-VISIT"].rule.id) == (
        "unscheduled", "recorded-outcome")
    assert {(v.status, v.date, v.window) for v in listed.values()
            if v.id in ("IMG-40", "C9-LABS", "NOT-A-VISIT")} == {("cancelled", None, None)}
    assert [w.visit_id for w in schedule.warnings if w.code == "recorded-visit-not-planned"] \
        == ["IMG-40", "C9-LABS", "NOT-A-VISIT"]
    # A recorded visit the rules still plan is left as they plan it.
    planned = schedule_for(recorded_visits=("IMG-1",))
    assert planned.visit("IMG-1") == schedule_for().visit("IMG-1")
    assert not [w for w in planned.warnings if w.code == "recorded-visit-not-planned"]


def test_a_recorded_pregnancy_test_counts_its_repeat_from_the_day_it_was_done():
    from scheduler.history import RecoveryConfirmed, VisitDone, outcomes_of, recorded
    from scheduler.outcomes import facts_with_outcomes

    at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    history = [recorded(VisitDone("PREGNANCY", D("2026-02-17")), "e1", 1, "rn", at),
               recorded(RecoveryConfirmed(D("2026-03-09")), "e2", 2, "rn", at)]
    facts = facts_with_outcomes(fold(Enrolment("ZS-1", D("2026-03-02"),
                                             childbearing_potential=True), history,
                                     protocol=PROTOCOL), outcomes_of(history))
    assert facts.pregnancy_test_date == D("2026-02-17")
    repeat = compute_schedule(PROTOCOL, facts, SITE).visit("PREGNANCY-C1")
    assert repeat.date == D("2026-03-09")
    assert repeat.rule.anchor == ("C1D1 2026-03-09 is more than 14 days after the test done on "
                                  "2026-02-17: repeated within 14 days before C1D1")
    # Done on 02-27, ten days before C1D1: no repeat, though planned the same.
    later = replace(facts, pregnancy_test_date=D("2026-02-27"))
    with pytest.raises(KeyError):
        compute_schedule(PROTOCOL, later, SITE).visit("PREGNANCY-C1")
