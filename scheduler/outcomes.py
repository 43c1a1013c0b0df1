"""What happened at each visit, laid over the computed schedule.

The engine places visits; this module says which of them happened. Both steps are pure:

- `apply_outcomes` marks what is recorded: `done` only from a recorded fact (a given dose, a
  confirmed recovery, `cryoablation_done`, `visit_done`), `missed` from `visit_missed`, the
  unscheduled visits as `UNS-n`, and every visit after leaving the study `cancelled`. A visit
  the engine shows `done` with nothing recorded (a screening visit once cycle 1 is given, the
  cryoablation itself) goes back to `planned`. Nothing here depends on the day.
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
    ParticipantFacts,
    RuleRef,
    Schedule,
    ScheduleWarning,
    Visit,
    VisitStatus,
    Window,
)

OffStudyReason = Literal["withdrawal_of_consent", "lost_to_follow_up", "death", "study_closed",
                         "other"]
OFF_STUDY_REASONS: tuple[str, ...] = get_args(OffStudyReason)

# Statuses a visit has while nothing is recorded for it, before the day is applied.
OPEN: tuple[VisitStatus, ...] = ("planned", "provisional")
# Kinds whose later visits chain from the earlier ones: only the first open one can be due.
CHAINED: frozenset[str] = frozenset({"infusion", "predose_labs"})
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
OFF_STUDY_RULE = RuleRef(
    "off-study", "typical",
    "off_study ends participation: every visit after its date is cancelled (a contraception "
    "end after withdrawal stays as information, not a visit).", "")


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


def with_pregnancy_test(facts: ParticipantFacts, outcomes: Outcomes) -> ParticipantFacts:
    """The facts with the day the pregnancy test was done, when an outcome records it: the
    engine counts the test's repeat before the first dose from that day. For a stored history
    and for the calculator's body alike, where the facts meet the recorded outcomes."""
    tested = next((done.date for done in reversed(outcomes.done)
                   if done.visit_id == "PREGNANCY"), None)
    if tested is None or tested == facts.pregnancy_test_date:
        return facts
    return replace(facts, pregnancy_test_date=tested)


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


def visit_order(visit_id: str, date: dt.date | None) -> tuple[bool, dt.date, str]:
    """The order of a schedule's visits once the outcomes are in it: by date, undated last,
    then by id. Visits read back from their stored states are ordered by it too."""
    return (date is None, date or dt.date.min, visit_id)


def _order(visit: Visit) -> tuple[bool, dt.date, str]:
    return visit_order(visit.id, visit.date)


def apply_outcomes(schedule: Schedule, outcomes: Outcomes) -> Schedule:
    """The schedule with every recorded outcome in it, and no `done` that is not recorded."""
    done = {item.visit_id: item.date for item in outcomes.done}
    if outcomes.cryoablation_done is not None:
        done["CRYO"] = outcomes.cryoablation_done
    missed = {item.visit_id for item in outcomes.missed}
    warnings = list(schedule.warnings)
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
        visits.append(visit)
    visits += [_unscheduled(item) for item in outcomes.unscheduled]
    state = schedule.state
    if outcomes.off_study is not None:
        visits = [_after_leaving(visit, outcomes.off_study) for visit in visits]
        state = "off_study"
    return replace(schedule, state=state, visits=tuple(sorted(visits, key=_order)),
                   warnings=tuple(warnings))


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


def _after_leaving(visit: Visit, left: OffStudyOutcome) -> Visit:
    if visit.kind in NOT_A_VISIT or visit.status in ("done", "missed", "skipped"):
        return visit
    if visit.date is not None and visit.date <= left.date:
        return visit
    if visit.status == "cancelled" and visit.date is None:
        return visit
    return replace(visit, date=None, window=None, status="cancelled",
                   rule=replace(OFF_STUDY_RULE,
                                anchor=f"off study {_iso(left.date)} ({left.reason})"))


def day_status(status: str, earliest: dt.date, latest: dt.date, today: dt.date) -> str:
    """What an open visit with this window is on `today`: due, overdue, or as it was."""
    if today > latest:
        return "overdue"
    if today >= earliest:
        return "due"
    return status


def counting_ids(visits: Iterable[tuple[str, str, str, dt.date | None]]) -> set[str]:
    """Of (visit id, kind, status, date), the open dated visits the day can make due or
    overdue: not a mere date marker, and of a chained kind (infusions, pre-dose labs) only the
    first open one, since the later ones chain from it."""
    counting: set[str] = set()
    first_open: dict[str, tuple[dt.date, str]] = {}
    for visit_id, kind, status, date in visits:
        if status not in OPEN or date is None or kind in NOT_A_VISIT:
            continue
        if kind in CHAINED:
            if kind not in first_open or (date, visit_id) < first_open[kind]:
                first_open[kind] = (date, visit_id)
            continue
        counting.add(visit_id)
    return counting | {visit_id for _, visit_id in first_open.values()}


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
