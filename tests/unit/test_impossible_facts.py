"""Impossible facts raise one domain error naming the field and the rule; nothing else escapes."""

from __future__ import annotations

import pytest

from scheduler import ScheduleInputError
from scheduler.model import Discontinuation, DoseRecord, Lookbacks, OffStudy, Recovery
from tests.conftest import PROTOCOL_V2, D, schedule_for


def problems(**kwargs):
    with pytest.raises(ScheduleInputError) as caught:
        schedule_for(**kwargs)
    return [(e.field, e.rule) for e in caught.value.errors]


def test_cryoablation_before_study_start():
    assert problems(cryoablation="2025-10-30", recovered=None) == [
        ("cryoablation_date", "study-period")]


def test_cryoablation_after_study_completion():
    assert problems(cryoablation="2027-10-01", recovered=None) == [
        ("cryoablation_date", "study-period")]


def test_recovery_before_cryoablation():
    assert problems(recovered="2026-03-01") == [("recovery.date", "recovery-gate")]


def test_recovered_without_a_date():
    assert problems(recovery=Recovery("recovered"), recovered=None) == [
        ("recovery.date", "recovery-gate")]


def test_pending_recovery_with_a_date():
    assert problems(recovery=Recovery("pending", D("2026-03-09")), recovered=None) == [
        ("recovery.date", "recovery-gate")]


def test_dose_before_recovery():
    assert problems(doses=(DoseRecord(1, "given", D("2026-03-08")),)) == [
        ("doses.0.date", "recovery-gate")]


def test_dose_while_recovery_pending():
    assert problems(recovered=None, doses=(DoseRecord(1, "given", D("2026-03-09")),)) == [
        ("doses.0.date", "recovery-gate")]


@pytest.mark.parametrize("cycle", [0, 7, -1, 10**6])
def test_cycle_outside_1_to_6(cycle):
    assert problems(doses=(DoseRecord(cycle, "given", D("2026-03-09")),)) == [
        ("doses.0.cycle", "serplulimab")]


def test_cycle_recorded_twice():
    doses = (DoseRecord(1, "given", D("2026-03-09")), DoseRecord(1, "given", D("2026-03-10")))
    assert problems(doses=doses) == [("doses.1.cycle", "serplulimab")]


def test_cycle_recorded_before_the_previous_one():
    assert problems(doses=(DoseRecord(2, "given", D("2026-03-30")),)) == [
        ("doses.0.cycle", "cycle-chaining")]


def test_later_cycle_dated_before_the_earlier_one():
    doses = (DoseRecord(1, "given", D("2026-03-30")), DoseRecord(2, "given", D("2026-03-09")))
    assert problems(doses=doses) == [("doses.1.date", "cycle-chaining")]


def test_given_dose_without_date_and_skipped_dose_with_date():
    doses = (DoseRecord(1, "given"), DoseRecord(2, "skipped", D("2026-03-30")))
    assert problems(doses=doses) == [("doses.0.date", "serplulimab"),
                                     ("doses.1.date", "skipped-dose")]


def test_dose_after_discontinuation():
    assert problems(doses=(DoseRecord(1, "given", D("2026-03-20")),),
                    discontinuation=Discontinuation(D("2026-03-15"))) == [
        ("doses.0.date", "discontinuation")]


def test_dose_outside_study_period_under_revision_2():
    assert ("doses.0.date", "study-period") in problems(
        cryoablation="2027-09-20", recovered="2027-09-27", protocol=PROTOCOL_V2,
        doses=(DoseRecord(1, "given", D("2027-10-02")),))


def test_revision_3_takes_a_dose_after_the_estimated_completion():
    """Cycles outlast the estimated completion (rule study-period, revision 3), so a dose
    given after it is a fact like any other; the cryoablation still must lie in the period."""
    schedule = schedule_for(cryoablation="2027-09-20", recovered="2027-09-27",
                            doses=(DoseRecord(1, "given", D("2027-10-08")),))
    assert (schedule.visit("C1D1").status, schedule.visit("C1D1").date) == (
        "done", D("2027-10-08"))
    assert problems(cryoablation="2027-10-01", recovered=None) == [
        ("cryoablation_date", "study-period")]


def test_discontinuation_before_cryoablation():
    assert problems(discontinuation=Discontinuation(D("2026-03-01"))) == [
        ("discontinuation.date", "discontinuation")]


def test_look_back_after_study_completion():
    assert problems(lookbacks=Lookbacks(live_vaccine=D("2027-10-01"))) == [
        ("lookbacks.live_vaccine", "lookback-live-vaccine")]


@pytest.mark.parametrize("half_life", [0.0, -1.0, float("nan"), float("inf"), 1e308])
def test_half_life_must_be_a_sensible_number(half_life):
    assert problems(lookbacks=Lookbacks(other_trial_last_dose=D("2026-01-01"),
                                        other_trial_half_life_days=half_life)) == [
        ("lookbacks.other_trial_half_life_days", "lookback-other-trial")]


def test_half_life_without_the_other_trial_dose():
    assert problems(lookbacks=Lookbacks(other_trial_half_life_days=5.0)) == [
        ("lookbacks.other_trial_half_life_days", "lookback-other-trial")]


def test_every_problem_is_reported_at_once():
    found = problems(recovered="2026-03-01", discontinuation=Discontinuation(D("2026-02-01")))
    assert found == [("recovery.date", "recovery-gate"),
                     ("discontinuation.date", "discontinuation")]


def test_extreme_look_back_dates_do_not_overflow():
    schedule = schedule_for(lookbacks=Lookbacks(
        live_vaccine=D("0001-01-01"), radical_radiotherapy=D("0001-01-31"),
        other_trial_last_dose=D("0001-01-01"), other_trial_half_life_days=3650.0))
    assert schedule.state == "scheduled"


def test_message_names_field_rule_and_dates():
    with pytest.raises(ScheduleInputError) as caught:
        schedule_for(recovered="2026-03-01")
    assert str(caught.value) == ("recovery.date: 2026-03-01 is before the cryoablation on "
                                 "2026-03-02 (rule recovery-gate)")


def test_leaving_the_study_before_the_cryoablation_or_with_an_unknown_reason():
    assert problems(off_study=OffStudy(D("2026-03-01"), "moved away")) == [
        ("off_study.reason", "off-study"), ("off_study.date", "off-study")]


def test_dose_after_leaving_the_study():
    assert problems(doses=(DoseRecord(1, "given", D("2026-03-09")),),
                    off_study=OffStudy(D("2026-03-08"), "death")) == [
        ("doses.0.date", "off-study")]


def test_the_first_version_ignores_a_prior_malignancy_it_has_no_rule_for():
    from tests.conftest import PROTOCOL_V1

    schedule = schedule_for(protocol=PROTOCOL_V1,
                            lookbacks=Lookbacks(prior_malignancy=D("2030-01-01")))
    assert "lookback-conflict" not in [w.code for w in schedule.warnings]
    assert problems(lookbacks=Lookbacks(prior_malignancy=D("2030-01-01"))) == [
        ("lookbacks.prior_malignancy", "lookback-prior-malignancy")]
