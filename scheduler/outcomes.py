"""What happened at each visit, laid over the computed schedule.

The engine places visits; this module says which of them happened. Both steps are pure:

- `facts_with_outcomes` is where the facts meet the recorded outcomes, for a stored history
  and the calculator's body alike: leaving the study, the visits with a recorded outcome and
  the day the pregnancy test was done go into the facts, so the engine alone applies them
  (leaving the study is applied there, once: `scheduler.engine._leave_study`).
- `apply_outcomes` marks what is recorded: `done` only from a recorded fact (a given dose, a
  confirmed recovery, `cryoablation_done`, `visit_done`), `missed` from `visit_missed`, the
  unscheduled visits as `UNS-n`. A visit the engine shows `done` with nothing recorded (a
  screening visit once cycle 1 is given, the cryoablation itself) goes back to `planned`.
  Nothing here depends on the day. The visits keep the protocol's listing order
  (`scheduler.visit_order`).
- `on_day` adds what the site's today makes of the rest: `due` while the window is open,
  `overdue` once it has closed, with one warning per overdue visit.

`day_status` and `counting_ids` are the one statement of the day rule: the worklist applies
them to the stored visit states, so a schedule and the worklist cannot disagree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal, get_args

from scheduler.errors import FactError, ScheduleInputError
from scheduler.model import (
    OffStudy,
    ParticipantFacts,
    RuleRef,
    Schedule,
    ScheduleWarning,
    Visit,
    VisitStatus,
    Window,
)
from scheduler.visit_order import in_visit_order

OffStudyReason = Literal["withdrawal_of_consent", "lost_to_follow_up", "death", "study_closed",
                         "other"]
OFF_STUDY_REASONS: tuple[str, ...] = get_args(OffStudyReason)

# Statuses a visit has while nothing is recorded for it, before the day is applied.
OPEN: tuple[VisitStatus, ...] = ("planned", "provisional")
# Kinds whose later visits chain from the earlier ones: those dated after the first open
# infusion are projections from it, and cannot be due yet.
CHAINED: frozenset[str] = frozenset({"infusion", "predose_labs"})
# Facts that prove the cryoablation happened, when it is not itself recorded: a recovery
# confirmed or a complication observed after it, a dose given.
PROVES_CRYOABLATION: frozenset[str] = frozenset({"recovery_check", "infusion"})
# Kinds that mark a date rather than a visit: never due, never cancelled by leaving the study.
NOT_A_VISIT: frozenset[str] = frozenset({"contraception_end"})
# Kinds whose `done` the engine derives from a recorded fact (a dose, a recovery).
DONE_BY_ENGINE: frozenset[str] = frozenset({"infusion", "recovery_check"})
# The event that records the outcome of these kinds instead of visit_done / visit_missed.
OWN_EVENT: dict[str, tuple[str, str]] = {
    "infusion": ("dose_given", "dose_skipped"),
    "cryoablation": ("cryoablation_done", "off_study"),
    "recovery_check": ("recovery_confirmed", "complication"),
    "unscheduled": ("unscheduled_visit", "correction"),
}

UNSCHEDULED_RULE = RuleRef(
    "unscheduled-visit", "typical",
    "A visit outside the schedule, recorded by the site; it moves no planned visit.", "")


@dataclass(frozen=True)
class VisitDoneOutcome:
    visit_id: str
    date: dt.date


@dataclass(frozen=True)
class VisitMissedOutcome:
    visit_id: str
    reason: str | None = None


@dataclass(frozen=True)
class UnscheduledOutcome:
    """An unscheduled visit; `number` makes its id `UNS-number` and never changes once given."""

    number: int
    date: dt.date
    purpose: str | None = None


@dataclass(frozen=True)
class OffStudyOutcome:
    date: dt.date
    reason: str
    note: str | None = None


@dataclass(frozen=True)
class Outcomes:
    """Everything recorded about visits besides doses and recovery."""

    cryoablation_done: dt.date | None = None
    done: tuple[VisitDoneOutcome, ...] = ()
    missed: tuple[VisitMissedOutcome, ...] = ()
    unscheduled: tuple[UnscheduledOutcome, ...] = ()
    off_study: OffStudyOutcome | None = None


NO_OUTCOMES = Outcomes()


def facts_with_outcomes(facts: ParticipantFacts, outcomes: Outcomes) -> ParticipantFacts:
    """The facts with what the recorded outcomes tell the engine, for a stored history and
    for the calculator's body alike (the one place the two meet):

    - leaving the study (rule off-study): the engine cancels every visit after it, counts the
      follow-up from the last dose given and drops the warnings about what will not happen;
    - the day the pregnancy test was done: its repeat before the first dose counts from it.

    (A stored history also names the visits with a recorded outcome, `fold` does, so they
    stay listed when the rules no longer plan them; the calculator refuses an outcome for a
    visit its schedule does not hold instead.)
    """
    changes: dict[str, object] = {}
    tested = next((done.date for done in reversed(outcomes.done)
                   if done.visit_id == "PREGNANCY"), None)
    if tested is not None and tested != facts.pregnancy_test_date:
        changes["pregnancy_test_date"] = tested
    left = outcomes.off_study
    if left is not None and facts.off_study is None:
        changes["off_study"] = OffStudy(left.date, left.reason)
    return replace(facts, **changes) if changes else facts  # type: ignore[arg-type]


def _iso(day: dt.date) -> str:
    return day.isoformat()


def _window_text(window: Window) -> str:
    return f"{_iso(window.earliest)} to {_iso(window.latest)}"


def _timing(visit: Visit, day: dt.date) -> Literal["in_window", "out_of_window"] | None:
    """Whether a visit done on `day` fell in its window; None when it has none (a visit the
    schedule no longer plans, listed for its recorded outcome)."""
    window = visit.window
    if window is None:
        return None
    if window.earliest <= day <= window.latest:
        return "in_window"
    return "out_of_window"


def apply_outcomes(schedule: Schedule, outcomes: Outcomes) -> Schedule:
    """The schedule with every recorded outcome in it, and no `done` that is not recorded.

    `schedule` is the engine's for `facts_with_outcomes` of the same outcomes: leaving the
    study is already applied there.
    """
    done = {item.visit_id: item.date for item in outcomes.done}
    if outcomes.cryoablation_done is not None:
        done["CRYO"] = outcomes.cryoablation_done
    missed = {item.visit_id for item in outcomes.missed}
    warnings = list(schedule.warnings)
    proof = _cryoablation_proof(schedule)
    visits: list[Visit] = []
    for visit in schedule.visits:
        if visit.id in done:
            visit = _done(visit, done[visit.id], warnings)
        elif visit.id in missed:
            visit = replace(visit, status="missed")
        elif visit.status == "done" and visit.kind in DONE_BY_ENGINE and visit.date is not None:
            visit = replace(visit, actual_date=visit.date, timing=_timing(visit, visit.date))
        elif visit.status == "done":
            # The engine's done without a recorded outcome: nothing says it happened.
            visit = replace(visit, status="planned")
            if visit.kind == "cryoablation" and proof is not None:
                visit = _not_recorded(visit, proof, warnings)
        visits.append(visit)
    visits += [_unscheduled(item) for item in outcomes.unscheduled]
    _warn_dose_without_labs(visits, missed, warnings)
    return replace(schedule, visits=in_visit_order(visits, schedule.order),
                   warnings=tuple(warnings))


def _cryoablation_proof(schedule: Schedule) -> Visit | None:
    """The first later fact that proves the cryoablation happened (a recovery or complication
    recorded, a dose given), if any: rule 4 of the third clinical review infers nothing from
    it, but an unrecorded procedure it proves is not overdue."""
    return next((v for v in schedule.visits if v.kind in PROVES_CRYOABLATION
                 and v.status in ("done", "held") and v.date is not None), None)


def _not_recorded(visit: Visit, proof: Visit, warnings: list[ScheduleWarning]) -> Visit:
    """The cryoablation, not recorded but proved by a later fact: planned (never `done`
    without its record, never `overdue` once it has evidently happened), and the schedule
    asks for the record."""
    assert proof.date is not None
    shown = "recorded" if proof.kind == "recovery_check" else "given"
    warnings.append(ScheduleWarning(
        "procedure-not-recorded",
        f"{visit.id} ({visit.title}) is not recorded as done, but {proof.id} {shown} on "
        f"{_iso(proof.date)} shows it happened: record cryoablation_done", visit.id))
    return replace(visit, rule=replace(
        visit.rule, anchor=f"{visit.rule.anchor}; procedure not recorded ({proof.id} on "
                           f"{_iso(proof.date)} shows it happened)"))


def _warn_dose_without_labs(visits: list[Visit], missed: set[str],
                            warnings: list[ScheduleWarning]) -> None:
    """A dose given while its pre-dose labs are recorded missed (rule predose-labs): a
    monitor must see both named."""
    for visit in visits:
        labs = f"C{visit.cycle}-LABS"
        if visit.kind == "infusion" and visit.status == "done" and labs in missed \
                and visit.date is not None:
            warnings.append(ScheduleWarning(
                "dose-given-labs-missed",
                f"{visit.id} was given on {_iso(visit.date)} while its "
                f"pre-dose labs {labs} are recorded missed (rule predose-labs)", visit.id))


def _done(visit: Visit, day: dt.date, warnings: list[ScheduleWarning]) -> Visit:
    timing = _timing(visit, day)
    if timing == "out_of_window" and visit.window is not None:
        warnings.append(ScheduleWarning(
            "visit-out-of-window",
            f"{visit.id} was done on {_iso(day)}, outside its window "
            f"{_window_text(visit.window)} (rule {visit.rule.id}); recorded as done", visit.id))
    return replace(visit, date=day, status="done", actual_date=day, timing=timing)


def _unscheduled(item: UnscheduledOutcome) -> Visit:
    return Visit(f"UNS-{item.number}", "unscheduled", "Unscheduled visit", None, item.date,
                 Window(item.date, item.date), "done",
                 replace(UNSCHEDULED_RULE, anchor=f"recorded for {_iso(item.date)}"),
                 actual_date=item.date, timing="in_window")


def day_status(status: str, earliest: dt.date, latest: dt.date, today: dt.date) -> str:
    """What an open visit with this window is on `today`: due, overdue, or as it was."""
    if today > latest:
        return "overdue"
    if today >= earliest:
        return "due"
    return status


def counting_ids(visits: Iterable[tuple[str, str, str, dt.date | None]]) -> set[str]:
    """Of (visit id, kind, status, date), the open dated visits the day can make due or
    overdue: not a mere date marker; of a chained kind (infusions, pre-dose labs) those dated
    on or before the first open infusion, since the later ones are projected from it (the
    pre-dose labs of a dose given count, whatever later doses were given); not a cryoablation
    that a later fact (a recovery, a dose) proves happened.

    >>> day = dt.date.fromisoformat
    >>> sorted(counting_ids([
    ...     ("C2D1", "infusion", "done", day("2026-03-30")),
    ...     ("C2-LABS", "predose_labs", "planned", day("2026-03-30")),
    ...     ("C3D1", "infusion", "planned", day("2026-04-20")),
    ...     ("C3-LABS", "predose_labs", "planned", day("2026-04-20")),
    ...     ("C4D1", "infusion", "planned", day("2026-05-11")),
    ...     ("C4-LABS", "predose_labs", "planned", day("2026-05-11"))]))
    ['C2-LABS', 'C3-LABS', 'C3D1']
    """
    rows = list(visits)
    first_infusion = min((date for _, kind, status, date in rows
                          if kind == "infusion" and status in OPEN and date is not None),
                         default=None)
    proved = any(kind in PROVES_CRYOABLATION and status in ("done", "held") and date is not None
                 for _, kind, status, date in rows)
    counting: set[str] = set()
    for visit_id, kind, status, date in rows:
        if status not in OPEN or date is None or kind in NOT_A_VISIT:
            continue
        if kind in CHAINED and first_infusion is not None and date > first_infusion:
            continue
        if kind == "cryoablation" and proved:
            continue
        counting.add(visit_id)
    return counting


def on_day(schedule: Schedule, today: dt.date) -> Schedule:
    """The schedule as of the site's `today`: open visits due or overdue by their window."""
    counting = counting_ids((v.id, v.kind, v.status, v.date) for v in schedule.visits)
    warnings = list(schedule.warnings)
    visits = []
    for visit in schedule.visits:
        window = visit.window
        if visit.id in counting and window is not None:
            status = day_status(visit.status, window.earliest, window.latest, today)
            if status != visit.status:
                visit = replace(visit, status=status)  # type: ignore[arg-type]
            if status == "overdue":
                warnings.append(ScheduleWarning(
                    "visit-overdue",
                    f"{visit.id} ({visit.title}) is overdue: its window "
                    f"{_window_text(window)} closed and nothing is recorded by "
                    f"{_iso(today)} (rule {visit.rule.id})", visit.id))
        visits.append(visit)
    return replace(schedule, visits=tuple(visits), warnings=tuple(warnings))


def with_outcomes(schedule: Schedule, outcomes: Outcomes, today: dt.date | None) -> Schedule:
    """Both steps: what is recorded, then (when the day is known) what the day makes of it."""
    recorded = apply_outcomes(schedule, outcomes)
    return on_day(recorded, today) if today is not None else recorded


def check_outcome(schedule: Schedule, kind: str, visit_id: str | None, day: dt.date | None,
                  today: dt.date | None) -> None:
    """Raise `ScheduleInputError` unless an outcome of this kind may be recorded against
    `schedule` (the schedule before it, recorded outcomes applied).

    `visit_done` and `visit_missed` must name a visit of the schedule that is still open and
    whose outcome has no event of its own; a done date may not fall before the window opens by
    more than the window's length; no date may fall after the site's today.
    """
    errors: list[FactError] = []
    if day is not None and today is not None and day > today:
        errors.append(FactError("date", "history", f"{_iso(day)} is after the site's today "
                                                   f"{_iso(today)}"))
    if kind == "cryoablation_done" and day is not None:
        cryo = _find(schedule, "CRYO")
        if cryo is not None and cryo.date is not None and day != cryo.date:
            errors.append(FactError(
                "date", "cryoablation",
                f"the cryoablation is enrolled for {_iso(cryo.date)}; correct the "
                "enrolment's cryoablation_date first"))
    if kind in ("visit_done", "visit_missed") and visit_id is not None:
        errors += _check_visit(schedule, kind, visit_id, day)
    if kind == "off_study" and day is not None:
        for visit in schedule.visits:
            if visit.actual_date is not None and visit.actual_date > day \
                    and visit.kind != "cryoablation":
                errors.append(FactError(
                    "date", "off-study",
                    f"{visit.id} is recorded done on {_iso(visit.actual_date)}, after "
                    f"{_iso(day)}"))
                break
    if errors:
        raise ScheduleInputError(errors)


def _find(schedule: Schedule, visit_id: str) -> Visit | None:
    return next((v for v in schedule.visits if v.id == visit_id), None)


def _check_visit(schedule: Schedule, kind: str, visit_id: str, day: dt.date | None) \
        -> list[FactError]:
    visit = _find(schedule, visit_id)
    if visit is None:
        return [FactError("visit_id", "schedule",
                          f"{visit_id} is not a visit of this participant's schedule")]
    if visit.kind in OWN_EVENT:
        done_event, missed_event = OWN_EVENT[visit.kind]
        own = done_event if kind == "visit_done" else missed_event
        return [FactError("visit_id", visit.rule.id,
                          f"{visit_id} is a {visit.kind} visit: record {own} instead")]
    if visit.kind in NOT_A_VISIT:
        return [FactError("visit_id", visit.rule.id, f"{visit_id} marks a date, not a visit")]
    if visit.window is None or visit.status in ("cancelled", "held", "skipped"):
        return [FactError("visit_id", visit.rule.id,
                          f"{visit_id} is {visit.status}: nothing can be recorded for it")]
    if kind == "visit_done" and day is not None:
        window = visit.window
        if day < window.earliest - (window.latest - window.earliest):
            return [FactError("date", visit.rule.id,
                              f"{_iso(day)} is before {visit_id}'s window "
                              f"{_window_text(window)} opens, by more than the window's "
                              "length")]
    return []


def check_outcomes(schedule: Schedule, outcomes: Outcomes, today: dt.date | None) -> None:
    """Raise `ScheduleInputError` unless every outcome in `outcomes` may stand together on
    `schedule` (the engine's, nothing recorded yet): each checked as `check_outcome` checks a
    recorded one, a visit's outcome given only once. Fields are named as the stateless
    calculator's body names them (`visits_done.0.visit_id`)."""
    base = apply_outcomes(schedule, NO_OUTCOMES)
    errors: list[FactError] = []

    def collect(path: str, kind: str, visit_id: str | None, day: dt.date | None,
                against: Schedule = base) -> None:
        try:
            check_outcome(against, kind, visit_id, day, today)
        except ScheduleInputError as error:
            errors.extend(replace(item, field=f"{path}.{item.field}") for item in error.errors)

    if outcomes.cryoablation_done is not None:
        collect("cryoablation_done", "cryoablation_done", None, outcomes.cryoablation_done)
    seen: set[str] = set()
    named: list[tuple[str, str, str, dt.date | None]] = [
        (f"visits_done.{index}", "visit_done", item.visit_id, item.date)
        for index, item in enumerate(outcomes.done)]
    named += [(f"visits_missed.{index}", "visit_missed", item.visit_id, None)
              for index, item in enumerate(outcomes.missed)]
    for path, kind, visit_id, day in named:
        if visit_id in seen:
            errors.append(FactError(f"{path}.visit_id", "history",
                                    f"{visit_id} has an outcome already"))
        seen.add(visit_id)
        collect(path, kind, visit_id, day)
    for index, unscheduled in enumerate(outcomes.unscheduled):
        collect(f"unscheduled_visits.{index}", "unscheduled_visit", None, unscheduled.date)
    if outcomes.off_study is not None:
        recorded = apply_outcomes(schedule, replace(outcomes, off_study=None))
        collect("off_study", "off_study", None, outcomes.off_study.date, recorded)
    if errors:
        raise ScheduleInputError(errors)
