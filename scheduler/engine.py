"""The schedule: one pure function of (protocol, participant facts, site calendar).

`compute_schedule` reads no clock and keeps no state: the same inputs give the same schedule,
value for value. Every number it applies comes from a protocol rule, and every visit carries the
rule that placed it, the anchor it was counted from, and any move onto a working day.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from calendar import monthrange
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache

from scheduler.calendar import SiteCalendar
from scheduler.model import (
    DoseRecord,
    ParticipantFacts,
    RuleRef,
    Schedule,
    ScheduleWarning,
    State,
    Visit,
    VisitStatus,
    Window,
)
from scheduler.protocol import Protocol, Rule
from scheduler.validation import infusion_slots, validate_facts
from scheduler.visit_order import in_visit_order, rank


@lru_cache(maxsize=1024)
def days(count: int) -> dt.timedelta:
    return dt.timedelta(days=count)


def add_months(day: dt.date, months: int) -> dt.date:
    """Calendar months, clamped to the month end (rule calendar-months), as
    `dateutil.relativedelta(months=n)` counts them (a property test holds the two equal;
    this is 20 times faster, and the imaging grid calls it often).

    Counting always starts from the anchor, never from the previous result, so a grid from the
    31st keeps landing on month ends instead of drifting to the 28th.

    >>> add_months(dt.date(2026, 1, 31), 1)
    datetime.date(2026, 2, 28)
    >>> add_months(dt.date(2027, 8, 31), 6)
    datetime.date(2028, 2, 29)
    """
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    return dt.date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


@dataclass(frozen=True)
class HeldDose:
    """A dose held past its window with nothing recorded for it (rule held-dose-projection):
    the cycle, the day it was planned, and the site's today the chain after it is projected
    from."""

    visit_id: str
    planned: dt.date
    projected_from: dt.date

    @property
    def why(self) -> str:
        return (f"held since {self.planned.isoformat()}, projected as if given on the site's "
                f"today {self.projected_from.isoformat()}")


@dataclass
class _Planner:
    """Collects visits and warnings while the rules are applied, then sorts them."""

    protocol: Protocol
    site: SiteCalendar
    facts: ParticipantFacts
    provisional: bool
    visits: list[Visit] = field(default_factory=list)
    warnings: list[ScheduleWarning] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)
    no_notice: dict[int, list[str]] = field(default_factory=dict)
    # The dose held past its window, when the protocol projects the chain after it from the
    # site's today (rule held-dose-projection).
    held: HeldDose | None = None

    @property
    def corrected(self) -> bool:
        """Protocol revision 2 or later: the clinical review's corrections apply."""
        return self.protocol.corrected

    @property
    def movable(self) -> frozenset[str]:
        """Visit kinds the working-day policy may move (rule working-days)."""
        return self.protocol.movable_kinds

    def ref(self, rule_id: str, anchor: str) -> RuleRef:
        rule = self.protocol.rule(rule_id)
        return RuleRef(id=rule.id, source=rule.source, text=rule.text, anchor=anchor)

    def title(self, rule_id: str, **values: object) -> str:
        return _title(self.protocol, rule_id, tuple(values.items()))

    def warn(self, code: str, message: str, visit_id: str | None = None) -> None:
        self.warnings.append(ScheduleWarning(code, message, visit_id))

    def planned_status(self) -> VisitStatus:
        return "provisional" if self.provisional else "planned"

    def projected_status(self) -> VisitStatus:
        """The status of a visit counted from the dose chain: provisional while it rests on a
        projected recovery or on a held dose projected from today (rule
        held-dose-projection)."""
        return "provisional" if self.provisional or self.held is not None else "planned"

    def place(self, visit: Visit, fact: bool = False) -> Visit | None:
        """Settle a visit and keep it; None when it was cut at study completion.

        A `fact` (a cryoablation or recovery that happened) is kept as it is.
        """
        settled = visit if fact else self.settle(visit)
        if settled is not None:
            self.visits.append(settled)
        return settled

    def settle(self, visit: Visit) -> Visit | None:
        """Apply study completion and the working-day policy to a dated, open visit.

        Returns None when the visit falls after study completion (rule study-period): it is
        cut, and the schedule's warning lists it.
        """
        if visit.date is None or visit.window is None:
            return visit
        completion = self.protocol.study_completion
        kept = visit.kind in self.protocol.kept_after_completion
        if visit.date > completion and not kept:
            self.cut.append(f"{visit.id} (due {visit.date.isoformat()})")
            return None
        if visit.window.latest > completion and not kept:
            visit = replace(visit, window=Window(visit.window.earliest, completion))
        settled = self._without_notice(self._to_working_day(visit))
        if kept and settled.date is not None and settled.date > completion:
            self.warn("after-estimated-study-completion",
                      f"{settled.id} on {settled.date.isoformat()} falls after the estimated "
                      f"study completion on {completion.isoformat()}; it is kept, because a "
                      "participant's obligations outlast the study's estimate (rule "
                      "study-period)", settled.id)
        return settled

    def _without_notice(self, visit: Visit) -> Visit:
        """A planned clinic date in a year with no official holiday notice is provisional."""
        if visit.date is None or visit.kind not in self.movable or \
                visit.status not in ("planned", "provisional") or \
                self.site.has_official_notice(visit.date.year):
            return visit
        self.no_notice.setdefault(visit.date.year, []).append(visit.id)
        if visit.status == "planned":
            return Visit(visit.id, visit.kind, visit.title, visit.cycle, visit.date, visit.window,
                         "provisional", visit.rule)
        return visit

    def _to_working_day(self, visit: Visit) -> Visit:
        if visit.kind not in self.movable or visit.date is None or visit.window is None:
            return visit
        if self.site.is_working_day(visit.date):
            return self._open_note(visit)
        shift = self.site.nearest_working_day(visit.date, visit.window.earliest,
                                              visit.window.latest, plain=self.corrected)
        if shift.stranded:
            opening = f"{visit.id}: {self.site.reason_closed(visit.date)}, and" \
                if self.corrected else \
                f"{visit.id} falls on {self.site.why_closed(visit.date)} and"
            self.warn("no-working-day-in-window",
                      f"{opening} its window "
                      f"{visit.window.earliest.isoformat()} to {visit.window.latest.isoformat()} "
                      "holds no working day: an investigator must decide (rule working-days)",
                      visit.id)
            return visit
        if shift.shifted_from is None:
            return visit
        ref = visit.rule
        reason = shift.reason
        opened = self.site.reason_open(shift.date) if self.corrected else None
        if opened is not None:
            reason = f"{reason}; {opened}"
        moved = RuleRef(ref.id, ref.source, ref.text, ref.anchor, shift.shifted_from, reason)
        return Visit(visit.id, visit.kind, visit.title, visit.cycle, shift.date, visit.window,
                     visit.status, moved)

    def _open_note(self, visit: Visit) -> Visit:
        """A visit kept on a weekend make-up working day says so (revision 2)."""
        if not self.corrected or visit.date is None:
            return visit
        opened = self.site.reason_open(visit.date)
        if opened is None:
            return visit
        return replace(visit, rule=replace(visit.rule, shift_reason=opened))

    def finish(self, state: State, first_dose_date: dt.date | None) -> Schedule:
        # A visit that will never happen is warned about by nothing: the warnings given while
        # it was still planned are dropped once it is cancelled (a visit cancelled in the
        # engine but recorded keeps them: its outcome is laid over it).
        cancelled = {visit.id for visit in self.visits if visit.status == "cancelled"} \
            - set(self.facts.recorded_visits)
        self.warnings = [w for w in self.warnings if w.visit_id not in cancelled]
        self.no_notice = {year: kept for year, ids in self.no_notice.items()
                          if (kept := [i for i in ids if i not in cancelled])}
        self._warn_years_without_notice()
        if self.cut:
            self.warn("cut-at-study-completion",
                      "Not scheduled because it falls after study completion on "
                      f"{self.protocol.study_completion.isoformat()}: " + ", ".join(self.cut))
        order = self.protocol.visit_order
        return Schedule(self.protocol.id, self.protocol.version, state, first_dose_date,
                        in_visit_order(self.visits, order), tuple(self.warnings), order)

    def _warn_years_without_notice(self) -> None:
        for year, ids in sorted(self.no_notice.items()):
            self.warn("holiday-data-provisional",
                      f"The holiday data has no official notice for {year} (make-up working days "
                      f"are unknown), so these dates are provisional: {', '.join(ids)}")


@lru_cache(maxsize=4096)
def _title(protocol: Protocol, rule_id: str, values: tuple[tuple[str, object], ...]) -> str:
    template = protocol.rule(rule_id).title or rule_id
    return template.format(criteria=protocol.response_criteria, **dict(values))


def compute_schedule(protocol: Protocol, facts: ParticipantFacts, site: SiteCalendar) -> Schedule:
    """The participant's complete schedule under `protocol` at `site`.

    Raises `ScheduleInputError` for impossible facts; nothing else escapes.
    """
    validate_facts(protocol, facts)
    # Dates rest on a projected recovery only while recovery is pending and treatment goes on.
    provisional = facts.recovery.status == "pending" and facts.discontinuation is None \
        and facts.off_study is None
    planner = _Planner(protocol, site, facts, provisional=provisional)
    cryo = _cryoablation(planner)
    _recovery(planner)
    infusions = _infusions(planner, _first_dose_target(planner))
    first = _first_dose(infusions)
    if first is None or first.date is None:
        _undated_first_dose_lookbacks(planner, infusions)
    if first is not None and first.date is not None:
        _first_dose_lookbacks(planner, first)
        _predose_labs(planner, infusions)
        end = _treatment_end(protocol, infusions)
        if planner.corrected:
            _response_imaging_v2(planner, first, end)
        else:
            _response_imaging(planner, first, end)
    if planner.corrected:
        _baseline_and_pregnancy_before_cryoablation(planner, cryo, first)
        _lookback_conflicts_v2(planner, first)
    else:
        if first is not None and first.date is not None:
            _lookback_conflicts(planner, first)
        _pregnancy_before_cryoablation(planner)
    _after_treatment(planner, infusions)
    _os_landmark(planner, first)
    if planner.corrected:
        _one_trip(planner)
    _leave_study(planner)
    _recorded_but_not_planned(planner)
    return planner.finish(_state(planner, infusions), first.date if first else None)


def _first_dose(infusions: list[Visit]) -> Visit | None:
    """The first infusion given or still to be given (a skipped cycle 1 is no first dose)."""
    for visit in infusions:
        if visit.date is not None and visit.status in ("done", "planned", "provisional"):
            return visit
    return None


def _state(planner: _Planner, infusions: list[Visit]) -> State:
    return schedule_state(planner.protocol, planner.facts,
                          [visit.status for visit in infusions])


def schedule_state(protocol: Protocol, facts: ParticipantFacts,
                   infusion_statuses: Iterable[str]) -> State:
    """Where the participant's treatment stands, from the facts and the statuses of the
    schedule's infusions: off study, discontinued, on hold after a complication,
    provisional while recovery is pending, completed once every cycle is given or skipped,
    else scheduled. The engine states every schedule by it; a list of participants states
    each from the history and the stored visit states by it, without computing a schedule
    (leaving the study reaches the facts from the history's outcomes, `fold` and
    `outcomes.facts_with_outcomes`)."""
    if facts.off_study is not None:
        return "off_study"
    if facts.discontinuation is not None:
        return "discontinued"
    if facts.recovery.status == "complication":
        return "on_hold"
    if facts.recovery.status == "pending":
        return "provisional"
    if all(status in ("done", "skipped") for status in infusion_statuses):
        return "completed"
    return "scheduled"


def _fixed(day: dt.date) -> Window:
    return Window(day, day)


def _cryoablation(planner: _Planner) -> Visit:
    """The anchor; from revision 2 a cryoablation after the site's today is still planned
    (rule future-facts)."""
    day = planner.facts.cryoablation_date
    as_of = planner.facts.as_of
    status: VisitStatus = "done"
    if planner.corrected and as_of is not None and day > as_of:
        status = "planned"
    visit = Visit("CRYO", "cryoablation", planner.title("cryoablation"), None, day, _fixed(day),
                  status, planner.ref("cryoablation", f"cryoablation {day.isoformat()}"))
    planner.place(visit, fact=True)
    return visit


def _recovery(planner: _Planner) -> None:
    facts = planner.facts
    recovery = facts.recovery
    title = planner.title("recovery-gate")
    if recovery.status == "recovered" and recovery.date is not None:
        planner.place(Visit("RECOVERY", "recovery_check", title, None, recovery.date,
                            _fixed(recovery.date), "done",
                            planner.ref("recovery-gate",
                                        f"recovery confirmed {recovery.date.isoformat()}")),
                      fact=True)
    elif recovery.status == "pending":
        projected = _projected_recovery(planner)
        if planner.provisional:
            planner.warn("recovery-pending",
                         "Recovery is not yet confirmed: every date after the cryoablation is "
                         f"projected from a recovery on {projected.isoformat()} and is "
                         "provisional (rule pending-recovery-projection)", "RECOVERY")
        planner.place(Visit("RECOVERY", "recovery_check", title, None, projected,
                            Window(facts.cryoablation_date, projected), "provisional",
                            planner.ref("pending-recovery-projection",
                                        f"cryoablation {facts.cryoablation_date.isoformat()} + "
                                        f"{(projected - facts.cryoablation_date).days} days")))
    else:
        observed = f" observed {recovery.date.isoformat()}" if recovery.date else ""
        held_title = title if planner.corrected else title + " (on hold)"
        planner.place(Visit("RECOVERY", "recovery_check", held_title, None,
                            recovery.date, None, "held",
                            planner.ref("complication-hold", f"complication{observed}")))
        planner.warn("dosing-on-hold",
                     "A major post-procedural complication is open: serplulimab is held and no "
                     "infusion is dated until recovery is confirmed (rule complication-hold)",
                     "RECOVERY")


def _projected_recovery(planner: _Planner) -> dt.date:
    rule = planner.protocol.rule("pending-recovery-projection")
    return planner.facts.cryoablation_date + days(
        rule.number("assumed_recovery_days_after_cryoablation"))


@dataclass(frozen=True)
class FirstDoseTarget:
    """The earliest first dose and the rule that binds it."""

    date: dt.date
    ref: RuleRef


def _first_dose_target(planner: _Planner) -> FirstDoseTarget | None:
    """max(recovery confirmation, cryoablation + minimum interval) (rules first-dose and
    first-dose-minimum-interval); while pending, from the projected recovery."""
    facts = planner.facts
    recovery = facts.recovery
    cryo = facts.cryoablation_date
    interval = planner.protocol.rule("first-dose-minimum-interval")
    minimum = cryo + days(interval.number("days_after_cryoablation"))
    if recovery.status == "complication":
        return None
    if recovery.status == "pending":
        gate = _projected_recovery(planner)
        gate_ref = planner.ref("pending-recovery-projection",
                               f"recovery pending, projected {gate.isoformat()}")
    else:
        assert recovery.date is not None  # validated: a recovered status carries its date
        gate = recovery.date
        gate_ref = planner.ref("first-dose", f"recovery confirmed {gate.isoformat()}")
    if gate >= minimum:
        return FirstDoseTarget(gate, gate_ref)
    return FirstDoseTarget(minimum, planner.ref(
        "first-dose-minimum-interval",
        f"cryoablation {cryo.isoformat()} + {interval.number('days_after_cryoablation')} days"))


def _infusions(planner: _Planner, first: FirstDoseTarget | None) -> list[Visit]:
    """Chain the cycles: each is due one cycle length after the previous one's actual date, or
    its planned date while not yet given (rule cycle-chaining). Cycles falling after study
    completion are cut, and so is every cycle after them."""
    records = {dose.cycle: dose for dose in planner.facts.doses}
    slots = infusion_slots(planner.protocol, planner.facts.doses)
    infusions: list[Visit] = []
    chain_from: dt.date | None = None
    for cycle in range(1, slots + 1):
        record = records.get(cycle)
        visit = _infusion(planner, cycle, record, first, chain_from)
        if visit is None:
            planner.cut += [f"C{later}D1" for later in range(cycle + 1, slots + 1)]
            break
        planner.visits.append(visit)
        infusions.append(visit)
        chain_from = visit.date
        if record is None and (held := _held(planner, visit)) is not None:
            planner.held = held
            chain_from = held.projected_from
    return infusions


def _held(planner: _Planner, visit: Visit) -> HeldDose | None:
    """The dose held, when `visit` (a cycle with nothing recorded) is the first whose window
    closed before the site's today and the protocol projects the chain after it from today
    (rule held-dose-projection, revision 3)."""
    as_of = planner.facts.as_of
    if planner.held is not None or as_of is None or visit.date is None \
            or visit.window is None or visit.status not in ("planned", "provisional") \
            or not planner.protocol.has("held-dose-projection") \
            or as_of <= visit.window.latest:
        return None
    return HeldDose(visit.id, visit.date, as_of)


def _infusion(planner: _Planner, cycle: int, record: DoseRecord | None,
              first: FirstDoseTarget | None, chain_from: dt.date | None) -> Visit | None:
    drug = planner.protocol.rule("serplulimab")
    visit_id = f"C{cycle}D1"
    title = planner.title("serplulimab", dose=drug.word("dose"), cycle=cycle)
    stop = planner.facts.discontinuation
    if record is None and stop is not None:
        return Visit(visit_id, "infusion", title, cycle, None, None, "cancelled",
                     planner.ref("discontinuation", f"discontinued {stop.date.isoformat()}"))
    if record is None and planner.facts.off_study is not None:
        return Visit(visit_id, "infusion", title, cycle, None, None, "cancelled",
                     _off_study_ref(planner))
    if first is None or (cycle > 1 and chain_from is None):
        if cycle == 1:
            _warn_overdue(planner, visit_id, _earliest_possible_first_dose(planner),
                          before_first_dose=True)
        held_title = title if planner.corrected else title + " (held)"
        return Visit(visit_id, "infusion", held_title, cycle, None, None, "held",
                     planner.ref("complication-hold", "recovery not confirmed"))
    target, window, ref = _cycle_target(planner, cycle, first, chain_from)
    due = Visit(visit_id, "infusion", title, cycle, target, window, planner.projected_status(),
                ref)
    if record is not None and record.status == "given":
        return _given_infusion(planner, due, record)
    planned = planner.settle(due)
    if planned is None or record is None:
        if planned is not None and _first_open_cycle(planner, cycle):
            # Revision 2 names the planned (moved) date the visit list shows.
            shown = planned.date if planner.corrected and planned.date else target
            _warn_overdue(planner, visit_id, shown)
        return planned
    if record.status == "skipped":
        # The skipped-dose rule explains it; any move onto a working day still holds.
        skipped = planner.ref("skipped-dose",
                              f"{ref.anchor}; skipped: {record.reason or 'no reason given'}")
        return replace(planned, status="skipped",
                       rule=replace(skipped, shifted_from=planned.rule.shifted_from,
                                    shift_reason=planned.rule.shift_reason))
    return planned


def _cycle_target(planner: _Planner, cycle: int, first: FirstDoseTarget,
                  chain_from: dt.date | None) -> tuple[dt.date, Window, RuleRef]:
    window_rule = planner.protocol.rule("dose-window")
    after = days(window_rule.number("days_after"))
    if cycle == 1 or chain_from is None:
        # The window cannot open before the earliest first dose (rules first-dose, dose-window).
        return first.date, Window(first.date, first.date + after), first.ref
    length = planner.protocol.rule("serplulimab").number("cycle_length_days")
    ref = planner.ref("cycle-chaining",
                      f"cycle {cycle - 1} {_chain_anchor(planner, cycle - 1, chain_from)} "
                      f"+ {length} days")
    target = chain_from + days(length)
    return target, Window(target - days(window_rule.number("days_before")), target + after), ref


def _chain_anchor(planner: _Planner, cycle: int, chain_from: dt.date) -> str:
    when = chain_from.isoformat()
    held = planner.held
    if held is not None and held.visit_id == f"C{cycle}D1":
        return f"{held.why},"
    for dose in planner.facts.doses:
        if dose.cycle == cycle:
            return f"given {when}" if dose.status == "given" else f"skipped, due {when}"
    return f"planned {when}"


def _given_infusion(planner: _Planner, planned: Visit, record: DoseRecord) -> Visit:
    """A recorded dose is a fact: kept as given, and warned about when outside its window."""
    assert record.date is not None and planned.window is not None and planned.date is not None
    window = planned.window
    if not window.earliest <= record.date <= window.latest:
        planner.warn("dose-out-of-window",
                     f"{planned.id} was given on {record.date.isoformat()}, outside its window "
                     f"{window.earliest.isoformat()} to {window.latest.isoformat()} "
                     "(rule dose-window); recorded as given", planned.id)
    due = planned.date
    if planner.corrected and planned.kind in planner.movable:
        due = planner.site.nearest_working_day(due, window.earliest, window.latest, True).date
    _warn_hold_limit(planner, planned.id, due, record.date)
    return replace(planned, date=record.date, status="done")


def _first_open_cycle(planner: _Planner, cycle: int) -> bool:
    """Only the first cycle not yet recorded can be overdue: later ones chain from it.
    (Recorded cycles run 1, 2, 3 … without gaps; validation sees to it.)"""
    return cycle == len(planner.facts.doses) + 1


def _earliest_possible_first_dose(planner: _Planner) -> dt.date:
    interval = planner.protocol.rule("first-dose-minimum-interval")
    return planner.facts.cryoablation_date + days(interval.number("days_after_cryoablation"))


def _hold_limit(planner: _Planner) -> dt.timedelta:
    return dt.timedelta(weeks=planner.protocol.rule("hold-limit").number("weeks"))


def _warn_hold_limit(planner: _Planner, visit_id: str, due: dt.date, given: dt.date) -> None:
    if given - due > _hold_limit(planner):
        planner.warn("hold-limit-exceeded",
                     f"{visit_id} was due {due.isoformat()} and given {given.isoformat()}, more "
                     "than the hold limit later: the protocol requires permanent "
                     "discontinuation (rule hold-limit)", visit_id)


def _warn_overdue(planner: _Planner, visit_id: str, due: dt.date,
                  before_first_dose: bool = False) -> None:
    as_of = planner.facts.as_of
    if as_of is None or as_of - due <= _hold_limit(planner):
        return
    if before_first_dose and planner.corrected:
        weeks = planner.protocol.rule("hold-limit").number("weeks")
        planner.warn("eligibility-question",
                     f"{visit_id} could be given from {due.isoformat()} and is still held on "
                     f"{as_of.isoformat()}, more than {weeks} weeks later: whether the "
                     "participant is still eligible is a question for the investigator (rule "
                     "hold-limit)", visit_id)
        return
    planner.warn("hold-limit-exceeded",
                 f"{visit_id} was due {due.isoformat()} and is not recorded by "
                 f"{as_of.isoformat()}, beyond the hold limit: the protocol requires "
                 "permanent discontinuation (rule hold-limit)", visit_id)


def _status_like(dose: Visit) -> VisitStatus:
    """A pre-dose assessment takes the status of the dose it qualifies; a skipped dose needs
    none, so its assessment is cancelled."""
    return "cancelled" if dose.status == "skipped" else dose.status


def _lookback_visit(planner: _Planner, visit_id: str, kind: str, rule: Rule, anchor_name: str,
                    anchor: dt.date, before: int, status: VisitStatus) -> None:
    """A look-back window [anchor - before, anchor]; its date is the last day that qualifies."""
    planner.place(Visit(visit_id, kind, planner.title(rule.id), None, anchor,
                        Window(anchor - days(before), anchor), status,
                        planner.ref(rule.id, f"{anchor_name} {anchor.isoformat()} - {before} "
                                             f"days to {anchor_name}")))


def _first_dose_lookbacks(planner: _Planner, first: Visit) -> None:
    """Screening labs (14 d), pregnancy test (14 d) and baseline imaging (28 d) before the first
    dose (rules screening-labs, pregnancy-test, baseline-imaging)."""
    assert first.date is not None
    protocol = planner.protocol
    status = _status_like(first)
    labs = protocol.rule("screening-labs")
    _lookback_visit(planner, "SCREEN-LABS", "screening_labs", labs, first.id, first.date,
                    labs.number("days_before_first_dose"), status)
    if planner.corrected:
        return  # revision 2 places the baseline scan and pregnancy test before cryoablation
    imaging = protocol.rule("baseline-imaging")
    _lookback_visit(planner, "BASELINE-IMAGING", "baseline_imaging", imaging, first.id,
                    first.date, imaging.number("days_before_first_dose"), status)
    pregnancy = protocol.rule("pregnancy-test")
    if planner.facts.childbearing_potential and pregnancy.word("anchor") == "first_dose":
        _lookback_visit(planner, "PREGNANCY", "pregnancy_test", pregnancy, first.id, first.date,
                        pregnancy.number("days_before"), status)


def _undated_first_dose_lookbacks(planner: _Planner, infusions: list[Visit]) -> None:
    """When a discontinuation or leaving the study cancels every dose before the first one was
    given, the screening visits counted back from the first dose are still listed, undated and
    cancelled with it: an obligation never met is shown cancelled, never dropped. A baseline
    scan already recorded stays as it was done. While dosing is held after a complication
    (from revision 2) they are listed undated and `held`, with the reason, until recovery
    dates the first dose again: never silently absent."""
    first = next((visit for visit in infusions if visit.status != "skipped"), None)
    if first is None or first.status not in ("cancelled", "held"):
        return
    if first.status == "held" and not planner.corrected:
        return  # revision 1 leaves them out while dosing is held
    status: VisitStatus = first.status
    why = f"{first.id} {first.status}: {first.rule.anchor}"
    if first.status == "held":
        why = (f"{first.id} is held until recovery from the complication is confirmed; dated "
               "from the first dose then")
    protocol = planner.protocol

    def undated(visit_id: str, kind: str, rule_id: str) -> None:
        planner.visits.append(Visit(visit_id, kind, planner.title(rule_id), None, None, None,
                                    status, planner.ref(rule_id, why)))

    undated("SCREEN-LABS", "screening_labs", "screening-labs")
    recorded = planner.facts.baseline_imaging_date
    if planner.corrected and recorded is not None:
        planner.place(Visit("BASELINE-IMAGING", "baseline_imaging",
                            planner.title("baseline-imaging"), None, recorded, _fixed(recorded),
                            "done", planner.ref("baseline-imaging",
                                                f"recorded {recorded.isoformat()}")), fact=True)
    else:
        undated("BASELINE-IMAGING", "baseline_imaging", "baseline-imaging")
    if not planner.corrected and planner.facts.childbearing_potential \
            and protocol.rule("pregnancy-test").word("anchor") == "first_dose":
        undated("PREGNANCY", "pregnancy_test", "pregnancy-test")


# The visits an outcome can be recorded for with visit_done / visit_missed, by their ids: the
# kind, the rule that places them and the title's values (rule ids as the engine places them).
_FIXED_IDS: dict[str, tuple[str, str]] = {
    "SCREEN-LABS": ("screening_labs", "screening-labs"),
    "BASELINE-IMAGING": ("baseline_imaging", "baseline-imaging"),
    "PREGNANCY": ("pregnancy_test", "pregnancy-test"),
    "PREGNANCY-C1": ("pregnancy_test", "pregnancy-test"),
    "EOT": ("end_of_treatment", "end-of-treatment"),
    "SAFETY-FU": ("safety_follow_up", "safety-follow-up"),
    "OS-1Y": ("os_landmark", "os-landmark"),
}
_NUMBERED_IDS: tuple[tuple[re.Pattern[str], str, str, str], ...] = (
    (re.compile(r"C(\d+)-LABS"), "predose_labs", "predose-labs", "cycle"),
    (re.compile(r"IMG-(\d+)"), "response_imaging", "response-imaging", "number"),
    (re.compile(r"SURV-(\d+)"), "survival_follow_up", "survival-follow-up", "number"),
)
RECORDED_RULE = RuleRef(
    "recorded-outcome", "typical",
    "A visit whose outcome is recorded stays listed with it, even when the schedule no longer "
    "plans it.", "")


def _recorded_but_not_planned(planner: _Planner) -> None:
    """A visit with a recorded outcome that the rules no longer plan (a protocol version
    without it, a discontinuation, leaving the study, a first dose moved) is still listed,
    undated and cancelled here, with a warning; the recorded outcome is then laid over it
    (scheduler.outcomes), so what was done stays done and what was missed stays missed."""
    listed = {visit.id for visit in planner.visits}
    missing = [visit_id for visit_id in dict.fromkeys(planner.facts.recorded_visits)
               if visit_id not in listed]
    if not missing:
        return
    why = _why_not_planned(planner)
    for visit_id in missing:
        kind, title, cycle, ref = _stand_in(planner, visit_id)
        anchor = f"no longer planned: {why}; its outcome is recorded"
        planner.visits.append(Visit(visit_id, kind, title, cycle, None, None, "cancelled",
                                    replace(ref, anchor=anchor)))
        planner.warn("recorded-visit-not-planned",
                     f"{visit_id} ({title}) is no longer planned ({why}), but its outcome is "
                     f"recorded: it stays listed with that outcome (rule {ref.id})", visit_id)


def _why_not_planned(planner: _Planner) -> str:
    facts = planner.facts
    why = f"the schedule under protocol version {planner.protocol.version} has no such visit"
    if facts.off_study is not None:
        return f"{why}; left the study {facts.off_study.date.isoformat()}"
    if facts.discontinuation is not None:
        return f"{why}; treatment discontinued {facts.discontinuation.date.isoformat()}"
    if facts.recovery.status == "complication":
        return f"{why}; dosing is held after a complication"
    return why


def _stand_in(planner: _Planner, visit_id: str) -> tuple[str, str, int | None, RuleRef]:
    """The kind, title, cycle and rule of a visit the schedule no longer plans, from its id."""
    protocol = planner.protocol
    if visit_id in _FIXED_IDS:
        kind, rule_id = _FIXED_IDS[visit_id]
        if protocol.has(rule_id):
            title = planner.title(rule_id)
            if visit_id == "PREGNANCY-C1":
                title += " (repeat before C1D1)"
            return kind, title, None, planner.ref(rule_id, "")
    for pattern, kind, rule_id, value in _NUMBERED_IDS:
        match = pattern.fullmatch(visit_id)
        if match and protocol.has(rule_id):
            number = int(match.group(1))
            return kind, planner.title(rule_id, **{value: number}), \
                number if value == "cycle" else None, planner.ref(rule_id, "")
    return "unscheduled", visit_id, None, RECORDED_RULE


def _pregnancy_before_cryoablation(planner: _Planner) -> None:
    """When the protocol counts the pregnancy test back from cryoablation instead."""
    pregnancy = planner.protocol.rule("pregnancy-test")
    if not planner.facts.childbearing_potential or pregnancy.word("anchor") != "cryoablation":
        return
    _lookback_visit(planner, "PREGNANCY", "pregnancy_test", pregnancy, "cryoablation",
                    planner.facts.cryoablation_date, pregnancy.number("days_before"), "done")


def _baseline_and_pregnancy_before_cryoablation(planner: _Planner, cryo: Visit,
                                                first: Visit | None) -> None:
    """Revision 2 (rules baseline-imaging, pregnancy-test): both come before the CT-guided
    cryoablation, the first component of study treatment."""
    day = planner.facts.cryoablation_date
    status = _status_like(cryo)
    if first is not None and first.date is not None:
        _baseline_imaging_v2(planner, day, first, status)
    if not planner.facts.childbearing_potential:
        return
    rule = planner.protocol.rule("pregnancy-test")
    before, last = rule.number("days_before"), rule.number("last_day_before_anchor")
    latest = day - days(last)
    test = planner.place(Visit(
        "PREGNANCY", "pregnancy_test", planner.title(rule.id), None, latest,
        Window(day - days(before), latest), status,
        planner.ref(rule.id, f"cryoablation {day.isoformat()} - {last} day, within {before} "
                             "days before study treatment")))
    repeat = rule.number("repeat_days_before_first_dose")
    if first is None or first.date is None or test is None or test.date is None:
        return
    # Counted from the test as done when it is recorded: done earlier than planned, it may
    # need repeating where the planned day would not.
    done = planner.facts.pregnancy_test_date
    tested, how = (done, "done") if done is not None else (test.date, "planned")
    if (first.date - tested).days <= repeat:
        return
    planner.place(Visit(
        "PREGNANCY-C1", "pregnancy_test", planner.title(rule.id) + " (repeat before C1D1)",
        None, first.date, Window(first.date - days(repeat), first.date), _status_like(first),
        planner.ref(rule.id, f"{first.id} {first.date.isoformat()} is more than {repeat} days "
                             f"after the test {how} on {tested.isoformat()}: repeated within "
                             f"{repeat} days before {first.id}")))


def _baseline_imaging_v2(planner: _Planner, cryo: dt.date, first: Visit,
                         status: VisitStatus) -> None:
    """Window [C1D1 - 28, cryoablation - 1], target cryoablation - 7; when no day is in both,
    the target stays and an investigator is asked."""
    assert first.date is not None
    rule = planner.protocol.rule("baseline-imaging")
    within = rule.number("days_before_first_dose")
    earliest = first.date - days(within)
    latest = cryo - days(rule.number("last_day_before_cryoablation"))
    target = cryo - days(rule.number("target_days_before_cryoablation"))
    title = planner.title(rule.id)
    anchor = (f"cryoablation {cryo.isoformat()} - "
              f"{rule.number('target_days_before_cryoablation')} days, within {within} days "
              f"before {first.id} {first.date.isoformat()}")
    recorded = planner.facts.baseline_imaging_date
    if earliest > latest:
        planner.warn("baseline-imaging-window-empty",
                     f"No day is both before the cryoablation on {cryo.isoformat()} and within "
                     f"{within} days before {first.id} on {first.date.isoformat()}: the "
                     f"baseline scan is planned in the week before the cryoablation and an "
                     "investigator must decide whether it still serves as baseline (rule "
                     "baseline-imaging)", "BASELINE-IMAGING")
        if recorded is None:
            planner.place(Visit("BASELINE-IMAGING", "baseline_imaging", title, None, target,
                                Window(target, latest), status, planner.ref(rule.id, anchor)))
            return
    if recorded is not None:
        if earliest <= latest and not earliest <= recorded <= latest:
            planner.warn("baseline-imaging-outside-window",
                         f"The baseline scan recorded on {recorded.isoformat()} is outside its "
                         f"window {earliest.isoformat()} to {latest.isoformat()} (before the "
                         f"cryoablation and within {within} days before {first.id}): an "
                         "investigator must decide whether it serves as baseline (rule "
                         "baseline-imaging)", "BASELINE-IMAGING")
        planner.place(Visit("BASELINE-IMAGING", "baseline_imaging", title, None, recorded,
                            _fixed(recorded), "done",
                            planner.ref(rule.id, f"recorded {recorded.isoformat()}")),
                      fact=True)
        return
    day = min(max(target, earliest), latest)
    planner.place(Visit("BASELINE-IMAGING", "baseline_imaging", title, None, day,
                        Window(earliest, latest), status, planner.ref(rule.id, anchor)))


def _predose_labs(planner: _Planner, infusions: list[Visit]) -> None:
    rule = planner.protocol.rule("predose-labs")
    before = rule.number("days_before_dose")
    for dose in infusions[rule.number("from_cycle") - 1:]:
        visit_id = f"C{dose.cycle}-LABS"
        title = planner.title(rule.id, cycle=dose.cycle)
        status = _status_like(dose)
        if dose.date is None or status == "cancelled":
            planner.visits.append(Visit(visit_id, "predose_labs", title, dose.cycle, None, None,
                                        status, planner.ref(rule.id, f"{dose.id} {dose.status}")))
            continue
        planner.place(Visit(visit_id, "predose_labs", title, dose.cycle, dose.date,
                            Window(dose.date - days(before), dose.date), status,
                            planner.ref(rule.id, f"{dose.id} {dose.date.isoformat()} - {before} "
                                                 f"days to {dose.id}")))


def _treatment_end(protocol: Protocol, infusions: list[Visit]) -> dt.date:
    """The end of the last cycle given or planned: its date plus one cycle length."""
    last = max(visit.date for visit in infusions if visit.date is not None)
    return last + days(protocol.rule("serplulimab").number("cycle_length_days"))


def _response_imaging(planner: _Planner, first: Visit, treatment_end: dt.date) -> None:
    """A fixed grid from C1D1, never moved by dose delays (rule response-imaging): every few
    weeks while on treatment, then every few months to a month limit, then less often."""
    assert first.date is not None
    c1d1 = first.date
    rule = planner.protocol.rule("response-imaging")
    completion = planner.protocol.study_completion
    grid: list[tuple[dt.date, int, str]] = []
    weeks = rule.number("on_treatment_every_weeks")
    step = 1
    while (scan := c1d1 + dt.timedelta(weeks=weeks * step)) <= treatment_end:
        grid.append((scan, rule.number("on_treatment_window_days"), f"+ {weeks} weeks x {step}"))
        step += 1
    for months, window, month in _imaging_months(planner.protocol):
        scan = add_months(c1d1, month)
        if scan > completion:
            break
        if scan > treatment_end:
            grid.append((scan, window, f"+ {month} months ({months}-monthly)"))
    for number, (scan, window, how) in enumerate(grid, start=1):
        planner.place(Visit(f"IMG-{number}", "response_imaging",
                            planner.title(rule.id, number=number), None, scan,
                            Window(scan - days(window), scan + days(window)),
                            planner.planned_status(),
                            planner.ref(rule.id, f"{first.id} {c1d1.isoformat()} {how}")))


def _response_imaging_v2(planner: _Planner, first: Visit, treatment_end: dt.date) -> None:
    """Revision 2 (rule response-imaging): the 6-weekly phase includes the first grid point on
    or after the end of the last cycle; a grid point less than the minimum spacing after the
    previous scan is left out; imaging stops after a discontinuation for progression."""
    assert first.date is not None
    c1d1 = first.date
    rule = planner.protocol.rule("response-imaging")
    completion = planner.protocol.study_completion
    weeks = rule.number("on_treatment_every_weeks")
    grid: list[tuple[dt.date, int, str]] = []
    step = 1
    while (scan := c1d1 + dt.timedelta(weeks=weeks * step)) <= completion:
        grid.append((scan, rule.number("on_treatment_window_days"), f"+ {weeks} weeks x {step}"))
        if scan >= treatment_end:
            break
        step += 1
    six_weekly_end = grid[-1][0] if grid else c1d1
    for months, window, month in _imaging_months(planner.protocol):
        scan = add_months(c1d1, month)
        if scan > completion:
            break
        if scan > six_weekly_end:
            grid.append((scan, window, f"+ {month} months ({months}-monthly)"))
    spacing = dt.timedelta(weeks=rule.number("minimum_spacing_weeks"))
    kept: list[tuple[dt.date, int, str]] = []
    for point in grid:
        if not kept or point[0] - kept[-1][0] >= spacing:
            kept.append(point)
    stop = planner.facts.discontinuation
    stops = planner.protocol.rule("discontinuation").words("stops_response_imaging")
    stopped = stop if stop is not None and stop.reason_code in stops else None
    for number, (scan, window, how) in enumerate(kept, start=1):
        visit_id = f"IMG-{number}"
        title = planner.title(rule.id, number=number)
        if stopped is not None and scan > stopped.date:
            planner.visits.append(Visit(
                visit_id, "response_imaging", title, None, None, None, "cancelled",
                planner.ref("discontinuation", f"discontinued {stopped.date.isoformat()} for "
                                               f"{stopped.reason_code}")))
            continue
        planner.place(Visit(visit_id, "response_imaging", title, None, scan,
                            Window(scan - days(window), scan + days(window)),
                            planner.planned_status(),
                            planner.ref(rule.id, f"{first.id} {c1d1.isoformat()} {how}")))


@lru_cache(maxsize=16)
def _imaging_months(protocol: Protocol) -> tuple[tuple[int, int, int], ...]:
    """(interval in months, window in days, month from C1D1) for the grid after treatment,
    up to ten years out; study completion stops it long before."""
    rule = protocol.rule("response-imaging")
    follow_every = rule.number("follow_up_every_months")
    follow_until = rule.number("follow_up_until_month")
    long_every = rule.number("long_term_every_months")
    points = [(follow_every, rule.number("follow_up_window_days"), month)
              for month in range(follow_every, follow_until + 1, follow_every)]
    points += [(long_every, rule.number("long_term_window_days"), month)
               for month in range(follow_until + long_every, 121, long_every)]
    return tuple(points)


def _last_dose(infusions: list[Visit]) -> Visit | None:
    """The last dose given, or the last one planned while treatment goes on."""
    dosed = [v for v in infusions if v.date and v.status in ("done", "planned", "provisional")]
    return dosed[-1] if dosed else None


def _after_treatment(planner: _Planner, infusions: list[Visit]) -> None:
    """End of treatment, safety and survival follow-up and the contraception end, counted from
    the last dose (rules end-of-treatment, safety-follow-up, survival-follow-up, contraception),
    or from the discontinuation date when no dose was ever given (rule discontinuation)."""
    last = _last_dose(infusions)
    stop = planner.facts.discontinuation
    held = planner.held
    if held is not None and last is not None and last.id == held.visit_id:
        # The last cycle is the one held: what counts from it counts from today.
        anchor_day = held.projected_from
        anchor = f"last dose {held.visit_id} {held.why}"
    elif last is not None and last.date is not None:
        anchor_day = last.date
        anchor = _last_dose_anchor(planner, last)
    elif stop is not None:
        anchor_day = stop.date
        anchor = f"discontinued {stop.date.isoformat()} before any dose"
    else:
        return
    eot = planner.protocol.rule("end-of-treatment")
    if planner.corrected and stop is not None:
        _end_of_treatment_v2(planner, eot, anchor_day, anchor, stop.date)
    else:
        _follow_up_visit(planner, "EOT", "end_of_treatment", eot, anchor_day, anchor)
    safety = planner.protocol.rule("safety-follow-up")
    _follow_up_visit(planner, "SAFETY-FU", "safety_follow_up", safety, anchor_day, anchor)
    _survival_follow_up(planner, anchor_day + days(safety.number("days_after_last_dose")))
    if last is not None and last.date is not None:
        _contraception_end(planner, anchor_day, anchor)


def _last_dose_anchor(planner: _Planner, last: Visit) -> str:
    """How the last dose is named where later dates count from it (rule contraception and the
    follow-up rules): given, and why no dose comes after it; or planned, and what it rests on."""
    assert last.date is not None
    state = "given" if last.status == "done" else "planned"
    named = f"last dose {last.date.isoformat()} ({last.id}, {state}"
    facts = planner.facts
    if not planner.corrected:
        return named + ")"
    if last.status == "done" and facts.off_study is not None:
        return f"{named}; left the study {facts.off_study.date.isoformat()})"
    if last.status == "done" and facts.discontinuation is not None:
        return f"{named}; treatment discontinued {facts.discontinuation.date.isoformat()})"
    if last.status != "done" and planner.held is not None:
        return f"{named}; {planner.held.visit_id} {planner.held.why})"
    return named + ")"


def _follow_up_visit(planner: _Planner, visit_id: str, kind: str, rule: Rule,
                     anchor_day: dt.date, anchor: str) -> None:
    offset = rule.number("days_after_last_dose")
    window = days(rule.number("window_days"))
    target = anchor_day + days(offset)
    planner.place(Visit(visit_id, kind, planner.title(rule.id), None, target,
                        Window(target - window, target + window), planner.projected_status(),
                        planner.ref(rule.id, f"{anchor} + {offset} days")))


def _end_of_treatment_v2(planner: _Planner, rule: Rule, anchor_day: dt.date, anchor: str,
                         stopped: dt.date) -> None:
    """Revision 2: 30 days after the last dose, or 7 days after the discontinuation when that
    is later; never before the discontinuation date."""
    offset = rule.number("days_after_last_dose")
    after_stop = rule.number("days_after_discontinuation")
    window = days(rule.number("window_days"))
    target = anchor_day + days(offset)
    why = f"{anchor} + {offset} days"
    if stopped + days(after_stop) > target:
        target = stopped + days(after_stop)
        why = (f"discontinued {stopped.isoformat()} + {after_stop} days, later than {anchor} + "
               f"{offset} days")
    planner.place(Visit("EOT", "end_of_treatment", planner.title(rule.id), None, target,
                        Window(max(target - window, stopped), target + window),
                        planner.projected_status(), planner.ref(rule.id, why)))


def _survival_follow_up(planner: _Planner, safety_day: dt.date) -> None:
    """Every few weeks after the safety follow-up's due date, until study completion."""
    rule = planner.protocol.rule("survival-follow-up")
    every = rule.number("every_weeks")
    window = days(rule.number("window_days"))
    number = 1
    while (target := safety_day + dt.timedelta(weeks=every * number)) \
            <= planner.protocol.study_completion:
        planner.place(Visit(f"SURV-{number}", "survival_follow_up",
                            planner.title(rule.id, number=number), None, target,
                            Window(target - window, target + window),
                            planner.projected_status(),
                            planner.ref(rule.id, f"safety follow-up due {safety_day.isoformat()} "
                                                 f"+ {every} weeks x {number}")))
        number += 1


def _contraception_end(planner: _Planner, last_dose: dt.date, anchor: str) -> None:
    rule = planner.protocol.rule("contraception")
    months = rule.number("months_after_last_dose")
    end = add_months(last_dose, months)
    planner.place(Visit("CONTRACEPTION-END", "contraception_end", planner.title(rule.id), None,
                        end, _fixed(end), planner.projected_status(),
                        planner.ref(rule.id, f"{anchor} + {months} months")))


def _os_landmark(planner: _Planner, first: Visit | None) -> None:
    """12 calendar months after time zero, cryoablation unless the protocol says first dose."""
    rule = planner.protocol.rule("os-landmark")
    status = planner.planned_status()
    if rule.word("time_zero") == "cryoablation":
        # Counted from a date that has happened, so not provisional on a pending recovery.
        zero, name, status = planner.facts.cryoablation_date, "cryoablation", "planned"
    elif first is not None and first.date is not None:
        zero, name = first.date, first.id
    else:
        return
    months = rule.number("months")
    target = add_months(zero, months)
    window = days(rule.number("window_days"))
    planner.place(Visit("OS-1Y", "os_landmark", planner.title(rule.id), None, target,
                        Window(target - window, target + window), status,
                        planner.ref(rule.id, f"{name} {zero.isoformat()} + {months} months")))


def earliest_first_dose_after(rule: Rule, event: dt.date, half_life_days: float | None) -> dt.date:
    """The earliest permissible first dose after a past event, for one look-back rule.

    The other-trial rule takes whichever is longer of its months and its half-lives
    ("3 months or 5 half-lives (whichever is longer)"). From revision 2 the boundary is
    inclusive ("within 28 days" includes day -28), so the earliest day is one later.

    >>> from scheduler.protocol import load_protocol
    >>> first = load_protocol(version="2025-09-15.1").rule("lookback-other-trial")
    >>> earliest_first_dose_after(first, dt.date(2026, 1, 10), 30.0)
    datetime.date(2026, 6, 9)
    >>> earliest_first_dose_after(load_protocol().rule("lookback-other-trial"),
    ...                           dt.date(2026, 1, 10), 30.0)
    datetime.date(2026, 6, 10)
    """
    earliest = add_months(event, rule.number("months_after_event")) + days(
        rule.number("days_after_event"))
    if "half_lives" in rule.params and half_life_days is not None:
        by_half_life = event + days(math.ceil(rule.number("half_lives") * half_life_days))
        earliest = max(earliest, by_half_life)
    if rule.params.get("inclusive"):
        earliest += days(1)
    return earliest


def _lookback_conflicts(planner: _Planner, first: Visit) -> None:
    """A first dose before a look-back allows is reported, never moved or hidden."""
    assert first.date is not None
    c1d1 = first.date
    lookbacks = planner.facts.lookbacks
    for rule in planner.protocol.lookbacks:
        event = getattr(lookbacks, rule.word("field"))
        if event is None:
            continue
        if rule.flag("forbidden_during_study") and event >= c1d1:
            planner.warn("lookback-conflict",
                         f"{rule.word('field')} on {event.isoformat()} falls during the study "
                         f"({first.id} {c1d1.isoformat()}), which rule {rule.id} forbids: "
                         f"\"{rule.text}\"", first.id)
            continue
        earliest = earliest_first_dose_after(rule, event, lookbacks.other_trial_half_life_days)
        if c1d1 < earliest:
            planner.warn("lookback-conflict",
                         f"{first.id} {c1d1.isoformat()} is before {earliest.isoformat()}, "
                         "the earliest "
                         f"first dose after {rule.word('field')} on {event.isoformat()} "
                         f"(rule {rule.id}: \"{rule.text}\")", first.id)


def _lookback_conflicts_v2(planner: _Planner, first: Visit | None) -> None:
    """Revision 2: inclusive boundaries; the other-trial and prior-malignancy look-backs count
    to the screening date (the cryoablation date, with a warning, when it is not known)."""
    facts = planner.facts
    lookbacks = facts.lookbacks
    asked = False
    for rule in planner.protocol.lookbacks:
        name = rule.word("field")
        event = getattr(lookbacks, name)
        if event is None:
            continue
        if rule.word("before") == "screening":
            anchor_name, anchor_day = "screening", facts.screening_date
            if anchor_day is None:
                anchor_name, anchor_day = "cryoablation", facts.cryoablation_date
                if not asked:
                    planner.warn("screening-date-missing",
                                 "The screening date is not recorded: the look-backs counted "
                                 "to screening are checked against the cryoablation on "
                                 f"{anchor_day.isoformat()} instead; please record it")
                    asked = True
            visit_id = None
        elif first is not None and first.date is not None:
            anchor_name, anchor_day, visit_id = first.id, first.date, first.id
        else:
            continue
        if rule.flag("forbidden_during_study") and first is not None and first.date \
                and event >= first.date:
            planner.warn("lookback-conflict",
                         f"{name} on {event.isoformat()} falls during the study ({first.id} "
                         f"{first.date.isoformat()}), which rule {rule.id} forbids: "
                         f"\"{rule.text}\"", first.id)
            continue
        earliest = earliest_first_dose_after(rule, event, lookbacks.other_trial_half_life_days)
        if anchor_day >= earliest:
            continue
        message = (f"{anchor_name} {anchor_day.isoformat()} is before {earliest.isoformat()}, "
                   f"the earliest allowed after {name} on {event.isoformat()} (rule {rule.id}: "
                   f"\"{rule.text}\")")
        if "exceptions" in rule.params:
            message += (": a conflict for the investigator to judge; the record excepts "
                        f"{rule.word('exceptions')}")
        planner.warn("lookback-conflict", message, visit_id)


def _one_trip(planner: _Planner) -> None:
    """Revision 2 (rule one-trip): a planned scan or follow-up visit with another clinic visit
    within a few days and inside its window is planned on that visit's day. Infusions, labs
    and done visits never move; a visit that moved to join another is not joined in turn."""
    rule = planner.protocol.rule("one-trip")
    within = rule.number("within_days")
    joining = frozenset(rule.words("joining_kinds"))
    clinic = planner.movable
    fixed = [v for v in planner.visits if v.kind in clinic and v.kind not in joining
             and v.date is not None and v.status in ("planned", "provisional", "done")]
    order = planner.protocol.visit_order

    def clinical(visit: Visit) -> tuple[int, str]:
        return rank(order, visit.kind), visit.id

    result: dict[str, Visit] = {}
    for visit in sorted(planner.visits, key=lambda v: (v.date or dt.date.max, v.id)):
        if visit.kind not in joining or visit.date is None or visit.window is None \
                or visit.status not in ("planned", "provisional"):
            continue
        day = visit.date
        others = [v for v in fixed if v.date is not None and v.id != visit.id
                  and abs((v.date - day).days) <= within
                  and visit.window.earliest <= v.date <= visit.window.latest]
        if not others or any(v.date == day for v in others):
            fixed.append(visit)
            continue
        best = min(others, key=lambda v: (abs(((v.date or day) - day).days), v.date, clinical(v)))
        assert best.date is not None
        if not planner.site.is_working_day(best.date):
            fixed.append(visit)
            continue
        same_day = sorted((v for v in others if v.date == best.date), key=clinical)
        named = [v.id for v in same_day if v.kind != "predose_labs"] or [same_day[0].id]
        joined = f"with {' and '.join(named)} (rule one-trip)"
        ref = visit.rule
        reason = f"{ref.shift_reason}; {joined}" if ref.shifted_from else joined
        moved = replace(visit, date=best.date,
                        rule=replace(ref, shifted_from=ref.shifted_from or day,
                                     shift_reason=reason))
        result[visit.id] = moved
        fixed.append(moved)
    if result:
        planner.visits = [result.get(v.id, v) for v in planner.visits]


# Leaving the study under a protocol that has no off-study rule (revision 1).
OFF_STUDY_RULE = RuleRef(
    "off-study", "typical",
    "off_study ends participation: every visit after its date is cancelled (a contraception "
    "end after withdrawal stays as information, not a visit).", "")


def _off_study_ref(planner: _Planner) -> RuleRef:
    leave = planner.facts.off_study
    assert leave is not None
    anchor = f"left the study {leave.date.isoformat()} ({leave.reason})"
    if planner.protocol.has("off-study"):
        return planner.ref("off-study", anchor)
    return replace(OFF_STUDY_RULE, anchor=anchor)


def _leave_study(planner: _Planner) -> None:
    """Leaving the study (rule off-study), the one place it is applied, for stored histories
    and the calculator alike: every visit after the day the participant left is cancelled,
    the 1-year survival landmark included; a visit whose outcome is recorded keeps it. The
    contraception end stays as a date, not a visit, except after death, when it no longer
    applies."""
    leave = planner.facts.off_study
    if leave is None:
        return
    ref = _off_study_ref(planner)
    recorded = set(planner.facts.recorded_visits)
    kept = []
    for visit in planner.visits:
        if visit.kind == "contraception_end" and visit.status in ("planned", "provisional"):
            if leave.reason == "death":
                visit = Visit(visit.id, visit.kind, visit.title, visit.cycle, None, None,
                              "cancelled", replace(ref, anchor=(
                                  f"the participant died {leave.date.isoformat()}: the "
                                  "contraception end no longer applies")))
        elif visit.status in ("planned", "provisional", "held") and visit.id not in recorded \
                and (visit.date is None or visit.date > leave.date):
            visit = Visit(visit.id, visit.kind, visit.title, visit.cycle, None, None,
                          "cancelled", ref)
        kept.append(visit)
    planner.visits = kept
