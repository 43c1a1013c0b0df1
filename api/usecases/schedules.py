"""The stateless calculator's use case: a schedule from a participant's facts, nothing stored."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from scheduler import Protocol, Schedule, SiteCalendar, compute_schedule
from scheduler.model import ParticipantFacts
from scheduler.validation import validate_facts


@dataclass(eq=False)
class Schedules:
    """Schedules from facts. The computation is pure: the same facts give the same schedule, so
    recent answers are kept (bounded, least recently used first out), each with its encoding
    by `encode` (the caller's wire form), so a repeated question costs one lookup.

    `today` is the site's today: a fact dated after it is refused (rule future-facts); it is
    part of the key, so an answer kept from yesterday is not given today."""

    protocol: Protocol
    site: SiteCalendar
    encode: Callable[[Schedule], bytes]
    _memo: Callable[[ParticipantFacts, dt.date | None], tuple[Schedule, bytes]] = field(
        init=False, repr=False)

    def __post_init__(self) -> None:
        self._memo = lru_cache(maxsize=2048)(self._compute)

    def _compute(self, facts: ParticipantFacts, today: dt.date | None) \
            -> tuple[Schedule, bytes]:
        if today is not None:
            validate_facts(self.protocol, facts, today)
        schedule = compute_schedule(self.protocol, facts, self.site)
        return schedule, self.encode(schedule)

    def schedule(self, facts: ParticipantFacts, today: dt.date | None = None) -> Schedule:
        return self._memo(facts, today)[0]

    def encoded(self, facts: ParticipantFacts, today: dt.date | None = None) -> bytes:
        """The schedule as `encode` renders it."""
        return self._memo(facts, today)[1]
