"""What the HTTP layer calls: the loaded protocol and site, and the engine."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from scheduler import Protocol, Schedule, SiteCalendar, compute_schedule
from scheduler.model import ParticipantFacts


@dataclass(eq=False)
class Service:
    protocol: Protocol
    site: SiteCalendar
    memo: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # The computation is pure: the same facts give the same schedule, so recent answers
        # are kept (bounded, least recently used first out), with their JSON.
        self.memo = lru_cache(maxsize=2048)(self._compute)

    def _compute(self, facts: ParticipantFacts) -> tuple[Schedule, bytes]:
        schedule = compute_schedule(self.protocol, facts, self.site)
        return schedule, json.dumps(schedule.as_dict(), ensure_ascii=False).encode()

    def schedule(self, facts: ParticipantFacts) -> Schedule:
        schedule: Schedule = self.memo(facts)[0]
        return schedule

    def schedule_json(self, facts: ParticipantFacts) -> bytes:
        """The schedule as the JSON body api-contract.md describes."""
        body: bytes = self.memo(facts)[1]
        return body
