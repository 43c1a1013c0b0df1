"""The stateless calculator's use case: a schedule from a participant's facts, nothing stored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from scheduler import Protocol, Schedule, SiteCalendar, compute_schedule
from scheduler.model import ParticipantFacts


@dataclass(eq=False)
class Schedules:
    """Schedules from facts. The computation is pure: the same facts give the same schedule, so
    recent answers are kept (bounded, least recently used first out), each with its encoding
    by `encode` (the caller's wire form), so a repeated question costs one lookup."""

    protocol: Protocol
    site: SiteCalendar
    encode: Callable[[Schedule], bytes]
    _memo: Callable[[ParticipantFacts], tuple[Schedule, bytes]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._memo = lru_cache(maxsize=2048)(self._compute)

    def _compute(self, facts: ParticipantFacts) -> tuple[Schedule, bytes]:
        schedule = compute_schedule(self.protocol, facts, self.site)
        return schedule, self.encode(schedule)

    def schedule(self, facts: ParticipantFacts) -> Schedule:
        return self._memo(facts)[0]

    def encoded(self, facts: ParticipantFacts) -> bytes:
        """The schedule as `encode` renders it."""
        return self._memo(facts)[1]
