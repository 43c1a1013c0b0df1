"""What the HTTP layer calls: the loaded protocol and site, and the engine."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler import Protocol, Schedule, SiteCalendar, compute_schedule
from scheduler.model import ParticipantFacts


@dataclass
class Service:
    protocol: Protocol
    site: SiteCalendar

    def schedule(self, facts: ParticipantFacts) -> Schedule:
        return compute_schedule(self.protocol, facts, self.site)
