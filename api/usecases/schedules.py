"""The stateless calculator's use case: a schedule from a participant's facts, nothing stored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from scheduler import Protocol, Schedule, SiteCalendar, compute_schedule
from scheduler.model import ParticipantFacts
from scheduler.outcomes import NO_OUTCOMES, Outcomes, check_outcomes, with_outcomes


@dataclass(frozen=True)
class Question:
    """What a caller knows: the facts the engine schedules from, and the visit outcomes."""

    facts: ParticipantFacts
    outcomes: Outcomes = NO_OUTCOMES


def _question(asked: ParticipantFacts | Question) -> Question:
    return asked if isinstance(asked, Question) else Question(asked)


@dataclass(eq=False)
class Schedules:
    """Schedules from facts. The computation is pure: the same facts give the same schedule, so
    recent answers are kept (bounded, least recently used first out), each with its encoding
    by `encode` (the caller's wire form), so a repeated question costs one lookup."""

    protocol: Protocol
    site: SiteCalendar
    encode: Callable[[Schedule], bytes]
    _memo: Callable[[Question], tuple[Schedule, bytes]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._memo = lru_cache(maxsize=2048)(self._compute)

    def _compute(self, question: Question) -> tuple[Schedule, bytes]:
        facts = question.facts
        schedule = compute_schedule(self.protocol, facts, self.site)
        check_outcomes(schedule, question.outcomes, facts.as_of)
        schedule = with_outcomes(schedule, question.outcomes, facts.as_of)
        return schedule, self.encode(schedule)

    def schedule(self, asked: ParticipantFacts | Question) -> Schedule:
        """The schedule, as of `facts.as_of` when given (due and overdue need a day)."""
        return self._memo(_question(asked))[0]

    def encoded(self, asked: ParticipantFacts | Question) -> bytes:
        """The schedule as `encode` renders it."""
        return self._memo(_question(asked))[1]
