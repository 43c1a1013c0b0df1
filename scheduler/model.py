"""Plain values: the participant's facts going in, the explained schedule coming out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

RecoveryStatus = Literal["pending", "recovered", "complication"]
DoseStatus = Literal["given", "skipped"]
State = Literal["provisional", "on_hold", "scheduled", "discontinued", "completed",
                "off_study"]
VisitStatus = Literal["planned", "provisional", "done", "skipped", "held", "cancelled",
                      "due", "overdue", "missed"]
Timing = Literal["in_window", "out_of_window"]


@dataclass(frozen=True)
class Recovery:
    """Recovery after cryoablation: the gate before the first dose (protocol rule recovery-gate)."""

    status: RecoveryStatus
    date: dt.date | None = None


@dataclass(frozen=True)
class DoseRecord:
    """What happened to one cycle: given on a date, or skipped for a reason."""

    cycle: int
    status: DoseStatus
    date: dt.date | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Discontinuation:
    """Permanent end of study treatment: the date, a free-text reason, and (from protocol
    revision 2) a reason code the protocol lists; `other` when none is given."""

    date: dt.date
    reason: str | None = None
    reason_code: str = "other"


@dataclass(frozen=True)
class OffStudy:
    """The participant leaves the study (rule off-study): every later visit is cancelled."""

    date: dt.date
    reason: str = "other"


@dataclass(frozen=True)
class Lookbacks:
    """Dates of past events that exclusion criteria bound in time (see the lookback-* rules)."""

    live_vaccine: dt.date | None = None
    major_surgery: dt.date | None = None
    systemic_antimicrobials_end: dt.date | None = None
    radical_radiotherapy: dt.date | None = None
    myocardial_infarction: dt.date | None = None
    other_trial_last_dose: dt.date | None = None
    other_trial_half_life_days: float | None = None
    prior_malignancy: dt.date | None = None


@dataclass(frozen=True)
class ParticipantFacts:
    """Everything known about one participant that the schedule depends on.

    `as_of` is the date the schedule is computed for (the site's today, passed in, never read
    from a clock); it only decides whether an unrecorded dose is overdue beyond the hold limit
    and whether a cryoablation has happened yet. `screening_date` is the date of consent and
    screening, which the other-trial and prior-malignancy look-backs count to;
    `baseline_imaging_date` the day a baseline scan was done, when one is recorded;
    `recorded_visits` the ids of visits whose outcome is recorded; `pregnancy_test_date` the
    day the pregnancy test was done, when one is recorded.
    """

    cryoablation_date: dt.date
    recovery: Recovery = Recovery("pending")
    childbearing_potential: bool = False
    doses: tuple[DoseRecord, ...] = ()
    discontinuation: Discontinuation | None = None
    lookbacks: Lookbacks = Lookbacks()
    as_of: dt.date | None = None
    screening_date: dt.date | None = None
    off_study: OffStudy | None = None
    baseline_imaging_date: dt.date | None = None
    # Visits with a recorded outcome (visit_done, visit_missed): the schedule lists each of them
    # even when its rules no longer plan it, so a recorded outcome never vanishes.
    recorded_visits: tuple[str, ...] = ()
    # Revision 2 repeats the pregnancy test before C1D1 when the first dose is more than 14
    # days after the test: after the test as done, when it is recorded, not as planned.
    pregnancy_test_date: dt.date | None = None


@dataclass(frozen=True)
class Window:
    earliest: dt.date
    latest: dt.date


@dataclass(frozen=True)
class RuleRef:
    """Why a visit falls where it does: the rule, its provenance, its anchor, and any shift."""

    id: str
    source: str
    text: str
    anchor: str
    shifted_from: dt.date | None = None
    shift_reason: str | None = None


@dataclass(frozen=True)
class Visit:
    id: str
    kind: str
    title: str
    cycle: int | None
    date: dt.date | None
    window: Window | None
    status: VisitStatus
    rule: RuleRef
    # Only on a done visit: the date it was done, and whether that fell in its window.
    actual_date: dt.date | None = None
    timing: Timing | None = None


@dataclass(frozen=True)
class ScheduleWarning:
    code: str
    message: str
    visit_id: str | None = None


@dataclass(frozen=True)
class Schedule:
    protocol_id: str
    protocol_version: str
    state: State
    first_dose_date: dt.date | None
    visits: tuple[Visit, ...]
    warnings: tuple[ScheduleWarning, ...] = field(default=())
    # The kinds' clinical order on one day under the protocol it was computed with (rule
    # same-day-order; empty under revision 1): whatever re-lists the visits keeps to it
    # (scheduler.visit_order).
    order: tuple[str, ...] = ()

    def visit(self, visit_id: str) -> Visit:
        """The visit with this id; KeyError when the schedule has none."""
        for visit in self.visits:
            if visit.id == visit_id:
                return visit
        raise KeyError(visit_id)
