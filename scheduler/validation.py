"""Impossible facts, found before anything is computed.

Each check names the input field and the protocol rule it breaks. All problems are reported at
once, as one `ScheduleInputError`, so a caller can show every field that needs fixing.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import fields

from scheduler.errors import FactError, ScheduleInputError
from scheduler.model import DoseRecord, ParticipantFacts
from scheduler.protocol import Protocol

# The longest half-life accepted for the other-trial look-back: ten years, far beyond any drug.
MAX_HALF_LIFE_DAYS = 3650.0


def infusion_slots(protocol: Protocol, doses: tuple[DoseRecord, ...]) -> int:
    """How many infusion cycles the schedule holds (rule skipped-dose, rule serplulimab).

    A skipped dose counts toward the cycle limit by default; a protocol that says otherwise
    adds one cycle for each skipped one.
    """
    max_cycles = protocol.rule("serplulimab").number("max_cycles")
    if protocol.rule("skipped-dose").flag("counts_toward_max_cycles"):
        return max_cycles
    return max_cycles + sum(1 for dose in doses if dose.status == "skipped")


def validate_facts(protocol: Protocol, facts: ParticipantFacts,
                   today: dt.date | None = None) -> None:
    """Raise `ScheduleInputError` listing every impossible fact; return quietly otherwise.

    `today` is the site's today, passed in (this module reads no clock): from protocol
    revision 2 a fact dated after it is refused (rule future-facts), except the cryoablation,
    which may be planned ahead of enrolment.
    """
    errors: list[FactError] = []
    errors += _check_study_dates(protocol, facts)
    errors += _check_recovery(facts)
    errors += _check_doses(protocol, facts)
    errors += _check_discontinuation(facts)
    errors += _check_lookbacks(protocol, facts)
    if protocol.corrected:
        errors += _check_reason_codes(protocol, facts)
        errors += _check_off_study(facts)
        if today is not None:
            errors += _check_future(facts, today)
    if errors:
        raise ScheduleInputError(errors)


def _outside(protocol: Protocol, day: dt.date) -> bool:
    return not protocol.study_start <= day <= protocol.study_completion


def _period_error(protocol: Protocol, path: str, day: dt.date) -> FactError:
    return FactError(path, "study-period",
                     f"{day.isoformat()} is outside the study period "
                     f"{protocol.study_start.isoformat()} to "
                     f"{protocol.study_completion.isoformat()}")


def _dated_facts(facts: ParticipantFacts) -> list[tuple[str, dt.date]]:
    """Every dated fact after the cryoablation, by the field it sits in."""
    dated = []
    if facts.recovery.date is not None:
        dated.append(("recovery.date", facts.recovery.date))
    dated += [(f"doses.{i}.date", d.date) for i, d in enumerate(facts.doses) if d.date]
    if facts.discontinuation is not None:
        dated.append(("discontinuation.date", facts.discontinuation.date))
    if facts.off_study is not None:
        dated.append(("off_study.date", facts.off_study.date))
    return dated


def _check_study_dates(protocol: Protocol, facts: ParticipantFacts) -> list[FactError]:
    """Facts lie in the study period (rule study-period). A protocol that keeps the infusion
    cycles after the estimated completion (revision 3) takes the facts that follow the
    cryoablation after that estimate too: it is an estimate, and the obligations outlast it."""
    dated = _dated_facts(facts)
    errors = [_period_error(protocol, "cryoablation_date", facts.cryoablation_date)] \
        if _outside(protocol, facts.cryoablation_date) else []
    if "infusion" in protocol.kept_after_completion:
        return errors + [_period_error(protocol, path, day) for path, day in dated
                         if day < protocol.study_start]
    return errors + [_period_error(protocol, path, day) for path, day in dated
                     if _outside(protocol, day)]


def _check_future(facts: ParticipantFacts, today: dt.date) -> list[FactError]:
    """Rule future-facts: nothing that happened can be dated after the site's today."""
    dated = _dated_facts(facts)
    if facts.baseline_imaging_date is not None:
        dated.append(("baseline_imaging_date", facts.baseline_imaging_date))
    return [FactError(path, "future-facts",
                      f"{day.isoformat()} is after the site's today {today.isoformat()}")
            for path, day in dated if day > today]


def _check_reason_codes(protocol: Protocol, facts: ParticipantFacts) -> list[FactError]:
    errors = []
    stop = facts.discontinuation
    codes = protocol.rule("discontinuation").words("reason_codes")
    if stop is not None and stop.reason_code not in codes:
        errors.append(FactError("discontinuation.reason_code", "discontinuation",
                                f"{stop.reason_code!r} is not one of {', '.join(codes)}"))
    leave = facts.off_study
    reasons = protocol.rule("off-study").words("reasons")
    if leave is not None and leave.reason not in reasons:
        errors.append(FactError("off_study.reason", "off-study",
                                f"{leave.reason!r} is not one of {', '.join(reasons)}"))
    return errors


def _check_off_study(facts: ParticipantFacts) -> list[FactError]:
    leave = facts.off_study
    if leave is None:
        return []
    if leave.date < facts.cryoablation_date:
        return [FactError("off_study.date", "off-study",
                          f"{leave.date.isoformat()} is before the cryoablation on "
                          f"{facts.cryoablation_date.isoformat()}")]
    return [FactError(f"doses.{i}.date", "off-study",
                      f"{dose.date.isoformat()} is after the participant left the study on "
                      f"{leave.date.isoformat()}")
            for i, dose in enumerate(facts.doses) if dose.date and dose.date > leave.date]


def _check_recovery(facts: ParticipantFacts) -> list[FactError]:
    recovery = facts.recovery
    if recovery.status == "recovered" and recovery.date is None:
        return [FactError("recovery.date", "recovery-gate",
                          "required when recovery.status is 'recovered'")]
    if recovery.status == "pending" and recovery.date is not None:
        return [FactError("recovery.date", "recovery-gate",
                          "must be omitted while recovery is pending")]
    if recovery.date is not None and recovery.date < facts.cryoablation_date:
        return [FactError("recovery.date", "recovery-gate",
                          f"{recovery.date.isoformat()} is before the cryoablation on "
                          f"{facts.cryoablation_date.isoformat()}")]
    return []


def _check_doses(protocol: Protocol, facts: ParticipantFacts) -> list[FactError]:
    errors: list[FactError] = []
    slots = infusion_slots(protocol, facts.doses)
    seen: set[int] = set()
    for index, dose in enumerate(facts.doses):
        path = f"doses.{index}"
        if not 1 <= dose.cycle <= slots:
            errors.append(FactError(f"{path}.cycle", "serplulimab",
                                    f"cycle {dose.cycle} is not one of cycles 1 to {slots}"))
        elif dose.cycle in seen:
            errors.append(FactError(f"{path}.cycle", "serplulimab",
                                    f"cycle {dose.cycle} is recorded more than once"))
        seen.add(dose.cycle)
        errors += _check_dose_date(facts, dose, path)
    if not errors:
        errors += _check_dose_order(facts)
    return errors


def _check_dose_date(facts: ParticipantFacts, dose: DoseRecord, path: str) -> list[FactError]:
    if dose.status == "skipped":
        if dose.date is not None:
            return [FactError(f"{path}.date", "skipped-dose",
                              "a skipped dose has no date: it stays on the date it was due")]
        return []
    if dose.date is None:
        return [FactError(f"{path}.date", "serplulimab", "required for a dose that was given")]
    recovery = facts.recovery
    if recovery.status != "recovered" or recovery.date is None:
        return [FactError(f"{path}.date", "recovery-gate",
                          "a dose cannot be given before recovery is confirmed "
                          f"(recovery is {recovery.status})")]
    if dose.date < recovery.date:
        return [FactError(f"{path}.date", "recovery-gate",
                          f"{dose.date.isoformat()} is before recovery was confirmed on "
                          f"{recovery.date.isoformat()}")]
    stop = facts.discontinuation
    if stop is not None and dose.date > stop.date:
        return [FactError(f"{path}.date", "discontinuation",
                          f"{dose.date.isoformat()} is after discontinuation on "
                          f"{stop.date.isoformat()}")]
    return []


def _check_dose_order(facts: ParticipantFacts) -> list[FactError]:
    """Cycles are recorded in order (rule cycle-chaining): 1, 2, 3 … with later dates."""
    errors: list[FactError] = []
    by_cycle = {dose.cycle: (index, dose) for index, dose in enumerate(facts.doses)}
    previous: DoseRecord | None = None
    for cycle in sorted(by_cycle):
        index, dose = by_cycle[cycle]
        if cycle - 1 >= 1 and cycle - 1 not in by_cycle:
            errors.append(FactError(f"doses.{index}.cycle", "cycle-chaining",
                                    f"cycle {cycle} is recorded but cycle {cycle - 1} is not"))
        if dose.date is not None and previous is not None and previous.date is not None \
                and dose.date <= previous.date:
            errors.append(FactError(f"doses.{index}.date", "cycle-chaining",
                                    f"cycle {cycle} on {dose.date.isoformat()} is not after "
                                    f"cycle {previous.cycle} on {previous.date.isoformat()}"))
        if dose.date is not None:
            previous = dose
    return errors


def _check_discontinuation(facts: ParticipantFacts) -> list[FactError]:
    stop = facts.discontinuation
    if stop is None or stop.date >= facts.cryoablation_date:
        return []
    return [FactError("discontinuation.date", "discontinuation",
                      f"{stop.date.isoformat()} is before the cryoablation on "
                      f"{facts.cryoablation_date.isoformat()}")]


def _check_lookbacks(protocol: Protocol, facts: ParticipantFacts) -> list[FactError]:
    errors: list[FactError] = []
    lookbacks = facts.lookbacks
    rule_for = {rule.word("field"): rule.id for rule in protocol.lookbacks}
    for item in fields(lookbacks):
        value = getattr(lookbacks, item.name)
        # A look-back this protocol version does not have is not checked (prior_malignancy
        # before revision 2).
        if isinstance(value, dt.date) and item.name in rule_for \
                and value > protocol.study_completion:
            errors.append(FactError(f"lookbacks.{item.name}", rule_for[item.name],
                                    f"{value.isoformat()} is after study completion"))
    half_life = lookbacks.other_trial_half_life_days
    if half_life is not None:
        path = "lookbacks.other_trial_half_life_days"
        if lookbacks.other_trial_last_dose is None:
            errors.append(FactError(path, "lookback-other-trial",
                                    "given without lookbacks.other_trial_last_dose"))
        if not (math.isfinite(half_life) and 0 < half_life <= MAX_HALF_LIFE_DAYS):
            errors.append(FactError(path, "lookback-other-trial",
                                    f"must be more than 0 and at most {MAX_HALF_LIFE_DAYS:g} days"))
    return errors
