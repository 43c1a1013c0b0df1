"""Exact dates for every rule of the first protocol version (2025-09-15.1), one behaviour
per test: a participant pinned to it keeps these dates. Revision 2's rules are in
test_engine_rules_rev2.py.

Reference participant: cryoablation Mon 2026-03-02, recovery confirmed Mon 2026-03-09.
"""

from __future__ import annotations

from functools import partial

from scheduler.model import Discontinuation, DoseRecord, Lookbacks, Recovery, Window
from tests import conftest
from tests.conftest import PROTOCOL_V1, V1_FILE, D

schedule_for = partial(conftest.schedule_for, protocol=PROTOCOL_V1)
protocol_with = partial(conftest.protocol_with, name=V1_FILE)


def dates(schedule, *ids):
    return [schedule.visit(i).date for i in ids]


def given(*days):
    return tuple(DoseRecord(n, "given", D(day)) for n, day in enumerate(days, start=1))


def codes(schedule):
    return [w.code for w in schedule.warnings]


# recovery-gate, first-dose, first-dose-minimum-interval


def test_first_dose_on_recovery_date_when_recovery_binds():
    schedule = schedule_for(recovered="2026-03-09")
    c1 = schedule.visit("C1D1")
    assert c1.date == D("2026-03-09")
    assert c1.window == Window(D("2026-03-09"), D("2026-03-12"))
    assert (c1.rule.id, c1.rule.source, c1.rule.anchor) == (
        "first-dose", "record", "recovery confirmed 2026-03-09")
    assert schedule.first_dose_date == D("2026-03-09")
    assert schedule.state == "scheduled"


def test_first_dose_waits_seven_days_after_cryoablation_when_recovery_is_early():
    c1 = schedule_for(recovered="2026-03-04").visit("C1D1")
    assert c1.date == D("2026-03-09")
    assert (c1.rule.id, c1.rule.source) == ("first-dose-minimum-interval", "typical")
    assert c1.rule.anchor == "cryoablation 2026-03-02 + 7 days"


def test_first_dose_after_holiday_recovery_moves_to_next_working_day_never_before_recovery():
    # Sat 2026-04-04, then the Qingming holiday on Sun 04-05 and Mon 04-06.
    c1 = schedule_for(recovered="2026-04-04").visit("C1D1")
    assert c1.date == D("2026-04-07")
    assert c1.rule.shifted_from == D("2026-04-04")
    assert c1.rule.shift_reason == "2026-04-04 is a Saturday"


# pending-recovery-projection


def test_pending_recovery_projects_a_provisional_schedule_from_cryoablation_plus_seven():
    schedule = schedule_for(recovered=None)
    assert schedule.state == "provisional"
    assert schedule.visit("RECOVERY").status == "provisional"
    assert schedule.visit("RECOVERY").date == D("2026-03-09")
    assert schedule.visit("C1D1").date == D("2026-03-09")
    open_statuses = {v.status for v in schedule.visits if v.id not in ("CRYO", "OS-1Y")}
    assert open_statuses == {"provisional"}
    assert schedule.visit("OS-1Y").status == "planned"  # counted from the cryoablation
    assert schedule.warnings[0].code == "recovery-pending"
    assert "holiday-data-provisional" in codes(schedule)


# complication-hold


def test_complication_holds_every_infusion_without_a_date_and_says_why():
    schedule = schedule_for(recovery=Recovery("complication", D("2026-03-05")), recovered=None)
    assert schedule.state == "on_hold"
    infusions = [v for v in schedule.visits if v.kind == "infusion"]
    assert [(v.id, v.date, v.status) for v in infusions] == [
        (f"C{n}D1", None, "held") for n in range(1, 7)]
    assert "dosing-on-hold" in codes(schedule)
    assert schedule.first_dose_date is None
    kinds = {v.kind for v in schedule.visits}
    assert "screening_labs" not in kinds and "end_of_treatment" not in kinds
    assert schedule.visit("OS-1Y").date == D("2027-03-02")


# serplulimab, cycle-chaining, dose-window


def test_six_cycles_every_21_days_from_the_first_dose():
    schedule = schedule_for()
    assert dates(schedule, "C1D1", "C2D1", "C3D1", "C4D1", "C5D1", "C6D1") == [
        D("2026-03-09"), D("2026-03-30"), D("2026-04-20"), D("2026-05-11"), D("2026-06-01"),
        D("2026-06-22")]
    assert schedule.visit("C2D1").window == Window(D("2026-03-27"), D("2026-04-02"))


def test_cycle_moves_with_late_previous_dose():
    schedule = schedule_for(doses=given("2026-03-09", "2026-04-01"))
    c3 = schedule.visit("C3D1")
    assert c3.date == D("2026-04-22")
    assert c3.window == Window(D("2026-04-19"), D("2026-04-25"))
    assert c3.rule.anchor == "cycle 2 given 2026-04-01 + 21 days"
    assert schedule.visit("C2D1").status == "done"


def test_cycle_due_on_labour_day_tuesday_moves_to_wednesday():
    # C3 due Tue 2026-05-05, a day off in the Labour Day holiday; Mon 05-04 is one too.
    schedule = schedule_for("2026-03-10", "2026-03-17", doses=given("2026-03-24", "2026-04-14"))
    c3 = schedule.visit("C3D1")
    assert c3.date == D("2026-05-06")
    assert c3.rule.shifted_from == D("2026-05-05")
    assert c3.rule.shift_reason.startswith("2026-05-05 is not a working day")


def test_cycle_due_on_make_up_working_sunday_stays():
    # C2 due Sun 2026-09-20, a make-up working day (调休) for the National Day holiday.
    schedule = schedule_for("2026-08-20", "2026-08-27", doses=given("2026-08-30"))
    c2 = schedule.visit("C2D1")
    assert c2.date == D("2026-09-20")
    assert c2.rule.shifted_from is None


def test_cycle_due_on_an_ordinary_sunday_moves_to_monday():
    # C2 due Sun 2026-09-13: Sat 09-12 is not a working day either, so Mon 09-14.
    c2 = schedule_for("2026-08-13", "2026-08-20", doses=given("2026-08-23")).visit("C2D1")
    assert (c2.date, c2.rule.shifted_from) == (D("2026-09-14"), D("2026-09-13"))


def test_dose_given_outside_its_window_is_kept_as_fact_and_warned():
    schedule = schedule_for(doses=given("2026-03-09", "2026-04-06"))
    assert schedule.visit("C2D1").date == D("2026-04-06")
    assert schedule.visit("C2D1").status == "done"
    warning = next(w for w in schedule.warnings if w.code == "dose-out-of-window")
    assert warning.visit_id == "C2D1"
    assert "2026-03-27 to 2026-04-02" in warning.message
    assert schedule.visit("C3D1").date == D("2026-04-27")


def test_a_holiday_between_two_working_days_moves_to_the_earlier_one():
    # C2 due Wed 2027-06-09 (Dragon Boat Festival): Tue 06-08 and Thu 06-10 both work.
    schedule = schedule_for("2027-05-10", "2027-05-17", doses=given("2027-05-19"))
    c2 = schedule.visit("C2D1")
    assert (c2.date, c2.rule.shifted_from) == (D("2027-06-08"), D("2027-06-09"))


# dose-modification, hold-limit


def test_every_infusion_is_the_full_300_mg_dose():
    titles = {v.title for v in schedule_for().visits if v.kind == "infusion"}
    assert titles == {f"Serplulimab 300 mg IV, cycle {n}" for n in range(1, 7)}


def test_dose_given_more_than_12_weeks_after_due_warns_discontinuation():
    # C2 due 2026-03-30; 12 weeks later is 2026-06-22.
    late = schedule_for(doses=given("2026-03-09", "2026-06-23"))
    assert [w.visit_id for w in late.warnings if w.code == "hold-limit-exceeded"] == ["C2D1"]
    on_limit = schedule_for(doses=given("2026-03-09", "2026-06-22"))
    assert "hold-limit-exceeded" not in codes(on_limit)


def test_only_the_first_unrecorded_cycle_is_overdue():
    # As of late 2026, cycles 2 to 6 are all in the past; only cycle 2 is on hold.
    schedule = schedule_for(doses=given("2026-03-09"), as_of=D("2026-11-25"))
    assert [w.visit_id for w in schedule.warnings if w.code == "hold-limit-exceeded"] == ["C2D1"]


def test_an_open_complication_beyond_12_weeks_warns():
    held = schedule_for(recovery=Recovery("complication", D("2026-03-04")), recovered=None,
                        as_of=D("2026-06-02"))  # earliest first dose 03-09 + 12 weeks = 06-01
    assert [w.visit_id for w in held.warnings if w.code == "hold-limit-exceeded"] == ["C1D1"]


def test_unrecorded_dose_overdue_beyond_12_weeks_as_of_today_warns():
    overdue = schedule_for(doses=given("2026-03-09"), as_of=D("2026-06-23"))
    assert [w.visit_id for w in overdue.warnings if w.code == "hold-limit-exceeded"] == ["C2D1"]
    assert "hold-limit-exceeded" not in codes(schedule_for(doses=given("2026-03-09"),
                                                           as_of=D("2026-06-22")))


# screening-labs, pregnancy-test, baseline-imaging, predose-labs


def test_screening_labs_and_baseline_imaging_windows_end_on_the_first_dose():
    schedule = schedule_for()
    labs = schedule.visit("SCREEN-LABS")
    assert (labs.date, labs.window) == (D("2026-03-09"), Window(D("2026-02-23"), D("2026-03-09")))
    imaging = schedule.visit("BASELINE-IMAGING")
    assert imaging.window == Window(D("2026-02-09"), D("2026-03-09"))


def test_look_back_windows_move_with_the_first_dose():
    labs = schedule_for(recovered="2026-04-04").visit("SCREEN-LABS")
    assert labs.window == Window(D("2026-03-24"), D("2026-04-07"))


def test_pregnancy_test_only_for_childbearing_potential():
    assert "PREGNANCY" not in {v.id for v in schedule_for().visits}
    test = schedule_for(childbearing_potential=True).visit("PREGNANCY")
    assert test.window == Window(D("2026-02-23"), D("2026-03-09"))
    assert test.rule.source == "record"


def test_pregnancy_test_can_count_back_from_cryoablation_instead():
    protocol = protocol_with("pregnancy-test", anchor="cryoablation")
    test = schedule_for(protocol=protocol, childbearing_potential=True).visit("PREGNANCY")
    assert test.window == Window(D("2026-02-16"), D("2026-03-02"))


def test_predose_labs_in_the_three_days_before_cycles_2_to_6():
    schedule = schedule_for()
    assert "C1-LABS" not in {v.id for v in schedule.visits}
    labs = schedule.visit("C2-LABS")
    assert (labs.date, labs.window) == (D("2026-03-30"), Window(D("2026-03-27"), D("2026-03-30")))
    assert [v.id for v in schedule.visits if v.kind == "predose_labs"] == [
        "C2-LABS", "C3-LABS", "C4-LABS", "C5-LABS", "C6-LABS"]


# response-imaging


def test_response_imaging_grid_from_first_dose():
    schedule = schedule_for()
    imaging = [(v.id, v.date) for v in schedule.visits if v.kind == "response_imaging"]
    assert imaging == [
        ("IMG-1", D("2026-04-20")), ("IMG-2", D("2026-06-01")), ("IMG-3", D("2026-07-13")),
        ("IMG-4", D("2026-09-09")), ("IMG-5", D("2026-12-09")), ("IMG-6", D("2027-03-09")),
        ("IMG-7", D("2027-09-09"))]
    assert schedule.visit("IMG-1").window == Window(D("2026-04-13"), D("2026-04-27"))
    assert schedule.visit("IMG-4").window == Window(D("2026-08-26"), D("2026-09-23"))


def test_response_imaging_is_not_moved_by_dose_delays():
    on_time = schedule_for(doses=given("2026-03-09", "2026-03-30"))
    delayed = schedule_for(doses=given("2026-03-09", "2026-04-27"))
    assert delayed.visit("C3D1").date == D("2026-05-18")
    grid = [v.date for v in on_time.visits if v.kind == "response_imaging"]
    assert grid == [v.date for v in delayed.visits if v.kind == "response_imaging"]


# end-of-treatment, safety-follow-up, survival-follow-up


def test_end_of_treatment_and_safety_follow_up_count_from_the_last_dose():
    schedule = schedule_for()
    eot = schedule.visit("EOT")
    assert (eot.date, eot.window) == (D("2026-07-22"), Window(D("2026-07-15"), D("2026-07-29")))
    # Sun 2026-09-20 is a make-up working day, so the safety visit stays there.
    assert schedule.visit("SAFETY-FU").date == D("2026-09-20")


def test_survival_follow_up_every_12_weeks_after_safety_until_completion():
    schedule = schedule_for()
    surv = [(v.id, v.date, v.rule.shifted_from) for v in schedule.visits
            if v.kind == "survival_follow_up"]
    assert surv == [
        ("SURV-1", D("2026-12-14"), D("2026-12-13")),
        ("SURV-2", D("2027-03-08"), D("2027-03-07")),
        ("SURV-3", D("2027-05-31"), D("2027-05-30")),
        ("SURV-4", D("2027-08-23"), D("2027-08-22"))]


# os-landmark, contraception, calendar-months


def test_one_year_survival_landmark_from_cryoablation_by_default():
    landmark = schedule_for().visit("OS-1Y")
    assert (landmark.date, landmark.window) == (
        D("2027-03-02"), Window(D("2027-01-31"), D("2027-04-01")))
    assert landmark.rule.source == "assumed"


def test_one_year_landmark_can_count_from_the_first_dose():
    landmark = schedule_for(protocol=protocol_with("os-landmark", time_zero="first_dose"))
    assert landmark.visit("OS-1Y").date == D("2027-03-09")


def test_contraception_ends_six_calendar_months_after_last_dose_clamped_to_month_end():
    # Last dose 2026-08-31: six months on is 2027-02-28, not 2027-03-03.
    schedule = schedule_for(doses=given("2026-03-09"),
                            discontinuation=Discontinuation(D("2026-03-20")))
    assert schedule.visit("CONTRACEPTION-END").date == D("2026-09-09")
    clamped = schedule_for("2026-07-20", "2026-08-31", doses=given("2026-08-31"),
                           discontinuation=Discontinuation(D("2026-09-01")))
    assert clamped.visit("CONTRACEPTION-END").date == D("2027-02-28")


def test_landmarks_never_move_to_working_days():
    # Cryoablation Fri 2026-05-01 is a holiday; its anniversary Sat 2027-05-01 stays.
    landmark = schedule_for("2026-04-30", "2026-05-07").visit("OS-1Y")
    assert landmark.date == D("2027-04-30")
    assert schedule_for("2026-05-29", "2026-06-05").visit("OS-1Y").date == D("2027-05-29")


# discontinuation


def test_discontinuation_cancels_remaining_cycles_and_follow_up_counts_from_last_dose_given():
    schedule = schedule_for(doses=given("2026-03-09", "2026-03-30"),
                            discontinuation=Discontinuation(D("2026-04-10"), "progression"))
    assert schedule.state == "discontinued"
    cancelled = [(v.id, v.date, v.status) for v in schedule.visits
                 if v.kind == "infusion" and v.status == "cancelled"]
    assert cancelled == [(f"C{n}D1", None, "cancelled") for n in range(3, 7)]
    assert schedule.visit("C3-LABS").status == "cancelled"
    assert schedule.visit("EOT").date == D("2026-04-29")
    safety = schedule.visit("SAFETY-FU")
    assert (safety.date, safety.rule.shifted_from) == (D("2026-06-29"), D("2026-06-28"))
    assert schedule.visit("CONTRACEPTION-END").date == D("2026-09-30")


def test_discontinuation_before_any_dose_counts_follow_up_from_discontinuation():
    schedule = schedule_for(recovered=None, discontinuation=Discontinuation(D("2026-03-05")))
    assert schedule.state == "discontinued"
    assert schedule.first_dose_date is None
    eot = schedule.visit("EOT")
    assert (eot.date, eot.status) == (D("2026-04-03"), "planned")
    assert eot.rule.anchor == "discontinued 2026-03-05 before any dose + 30 days"
    assert "CONTRACEPTION-END" not in {v.id for v in schedule.visits}


# skipped-dose


def test_skipped_dose_counts_and_next_cycle_is_due_21_days_after_it_was_due():
    doses = (DoseRecord(1, "given", D("2026-03-09")),
             DoseRecord(2, "skipped", reason="pneumonitis"))
    schedule = schedule_for(doses=doses)
    c2 = schedule.visit("C2D1")
    assert (c2.status, c2.date, c2.rule.id) == ("skipped", D("2026-03-30"), "skipped-dose")
    assert "pneumonitis" in c2.rule.anchor
    assert schedule.visit("C3D1").date == D("2026-04-20")
    assert schedule.visit("C2-LABS").status == "cancelled"
    assert len([v for v in schedule.visits if v.kind == "infusion"]) == 6


def test_skipped_dose_can_be_made_not_to_count_toward_the_cycle_limit():
    protocol = protocol_with("skipped-dose", counts_toward_max_cycles=False)
    doses = (DoseRecord(1, "given", D("2026-03-09")), DoseRecord(2, "skipped"))
    schedule = schedule_for(protocol=protocol, doses=doses)
    assert [v.id for v in schedule.visits if v.kind == "infusion"][-1] == "C7D1"
    assert schedule.visit("C7D1").date == D("2026-07-13")


def test_all_cycles_recorded_completes_treatment():
    doses = given("2026-03-09", "2026-03-30", "2026-04-20", "2026-05-11", "2026-06-01",
                  "2026-06-22")
    assert schedule_for(doses=doses).state == "completed"


# lookback-*


def test_look_back_conflict_is_warned_and_the_first_dose_is_not_moved():
    schedule = schedule_for(lookbacks=Lookbacks(major_surgery=D("2026-02-20")))
    assert schedule.visit("C1D1").date == D("2026-03-09")
    warning = next(w for w in schedule.warnings if w.code == "lookback-conflict")
    assert warning.visit_id == "C1D1"
    assert "2026-03-20" in warning.message and "lookback-major-surgery" in warning.message


def test_look_back_satisfied_gives_no_warning():
    schedule = schedule_for(lookbacks=Lookbacks(major_surgery=D("2026-02-09"),
                                                radical_radiotherapy=D("2025-12-09"),
                                                myocardial_infarction=D("2025-09-09")))
    assert "lookback-conflict" not in codes(schedule)


def test_radiotherapy_look_back_counts_calendar_months():
    schedule = schedule_for(lookbacks=Lookbacks(radical_radiotherapy=D("2025-12-10")))
    assert "2026-03-10" in next(w.message for w in schedule.warnings
                                if w.code == "lookback-conflict")


def test_live_vaccine_during_the_study_is_a_conflict():
    schedule = schedule_for(lookbacks=Lookbacks(live_vaccine=D("2026-04-01")))
    assert "lookback-conflict" in codes(schedule)


def test_other_trial_look_back_takes_the_longer_of_3_months_and_5_half_lives():
    short = schedule_for(lookbacks=Lookbacks(other_trial_last_dose=D("2025-12-01"),
                                             other_trial_half_life_days=2.0))
    assert "lookback-conflict" not in codes(short)  # 2026-03-01 is before C1D1
    long = schedule_for(lookbacks=Lookbacks(other_trial_last_dose=D("2025-12-01"),
                                            other_trial_half_life_days=20.0))
    assert "2026-03-11" in next(w.message for w in long.warnings if w.code == "lookback-conflict")


# study-period


def test_nothing_is_scheduled_after_study_completion_and_the_cut_is_warned():
    schedule = schedule_for("2027-07-01", "2027-07-08")
    assert all(v.date <= D("2027-09-30") for v in schedule.visits if v.date)
    assert schedule.visit("C5D1").date == D("2027-09-30")
    assert schedule.visit("C5D1").window.latest == D("2027-09-30")
    ids = {v.id for v in schedule.visits}
    assert "C6D1" not in ids and "EOT" not in ids and "CONTRACEPTION-END" not in ids
    cut = next(w.message for w in schedule.warnings if w.code == "cut-at-study-completion")
    assert "C6D1 (due 2027-10-21)" in cut and "EOT" in cut and "CONTRACEPTION-END" in cut


# working-days: the site calendar in the schedule


def test_dates_in_a_year_without_an_official_holiday_notice_are_provisional():
    schedule = schedule_for()
    assert schedule.visit("IMG-5").status == "planned"  # 2026
    assert schedule.visit("IMG-6").status == "provisional"  # 2027
    warning = next(w for w in schedule.warnings if w.code == "holiday-data-provisional")
    assert "2027" in warning.message and "IMG-6" in warning.message


def test_a_window_without_a_working_day_keeps_the_date_and_asks_for_a_decision():
    from scheduler.calendar import parse_site

    closures = [f"2026-03-{day}" for day in range(27, 32)] + ["2026-04-01", "2026-04-02"]
    site = parse_site({"id": "t", "name": "t", "time_zone": "Asia/Shanghai",
                       "holiday_country": "CN", "extra_closures": closures})
    from scheduler import compute_schedule
    from scheduler.model import ParticipantFacts
    from tests.conftest import PROTOCOL
    schedule = compute_schedule(PROTOCOL, ParticipantFacts(
        D("2026-03-02"), Recovery("recovered", D("2026-03-09"))), site)
    assert schedule.visit("C2D1").date == D("2026-03-30")
    warning = next(w for w in schedule.warnings if w.code == "no-working-day-in-window")
    assert warning.visit_id == "C2D1"


def test_visits_are_sorted_by_date_then_id_with_undated_last():
    schedule = schedule_for(doses=given("2026-03-09"), discontinuation=Discontinuation(
        D("2026-03-20")))
    keys = [(v.date is None, v.date, v.id) for v in schedule.visits if v.date]
    assert keys == sorted(keys)
    assert schedule.visits[-1].date is None


def test_calendar_months_count_as_relativedelta_does():
    from dateutil.relativedelta import relativedelta
    from hypothesis import given
    from hypothesis import strategies as st

    from scheduler.engine import add_months

    @given(st.dates(D("1900-01-01"), D("2900-12-31")), st.integers(0, 1200))
    def same(day, months):
        assert add_months(day, months) == day + relativedelta(months=months)

    same()
