"""Every protocol version the service computes under, and what moving a participant from one
version to another changes in its schedule.

A stored participant is pinned to the version it was enrolled under; its schedule is always
recomputed under that version, so shipping a new version moves nobody's dates. Only a
recorded `protocol_version_changed` event moves a participant, and its answer lists every
visit date that moves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from scheduler import Protocol, Schedule
from scheduler.errors import FactError, ProtocolError, ScheduleInputError
from scheduler.protocol import available_versions, protocol_version


@dataclass(frozen=True)
class Protocols:
    """The loaded protocol versions by version string, oldest first; `current` is the one new
    enrolments are pinned to and the stateless calculator computes under."""

    current: Protocol
    by_version: Mapping[str, Protocol]

    @classmethod
    def loaded(cls, configured: Protocol | None = None) -> Protocols:
        """Every packaged version, plus the configured protocol (a site's protocol file), which
        is current and replaces a packaged version of the same version string."""
        packaged = {version: protocol_version(version) for version in available_versions()}
        current = configured or packaged[available_versions()[-1]]
        loaded = {**packaged, current.version: current}
        others = sorted({p.id for p in loaded.values()} - {current.id})
        if others:
            raise ProtocolError(f"the protocol file is for {current.id}; participants are "
                                f"pinned to versions of {', '.join(others)}")
        return cls(current, loaded)

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(self.by_version)

    def __contains__(self, version: object) -> bool:
        return version in self.by_version

    def get(self, version: str) -> Protocol:
        """The protocol of a version a participant is pinned to. A version the service no
        longer loads is a configuration error: nothing is computed under another one."""
        try:
            return self.by_version[version]
        except KeyError:
            raise ProtocolError(f"no protocol version {version!r} is loaded; loaded: "
                                f"{', '.join(self.versions)}") from None

    def target(self, version: str) -> Protocol:
        """The protocol a participant is asked to move to; 422 naming `version` when no such
        version is loaded."""
        if version not in self.by_version:
            raise ScheduleInputError([FactError(
                "version", "protocol-version",
                f"no protocol version {version!r}; available: {', '.join(self.versions)}")])
        return self.by_version[version]

    @property
    def tag(self) -> str:
        """Changes whenever a loaded definition does: part of every feed's ETag. A digest of
        every version's id, version and modification time, so it stays one short column
        however many versions ship (the rendered feeds store it)."""
        loaded = ",".join(f"{p.id}:{p.version}@{p.modified.isoformat()}"
                          for p in self.by_version.values())
        return hashlib.sha256(loaded.encode()).hexdigest()


@dataclass(frozen=True)
class DateChange:
    """A visit in both schedules whose date differs (a held visit has no date)."""

    visit_id: str
    old_date: dt.date | None
    new_date: dt.date | None


@dataclass(frozen=True)
class VisitDate:
    visit_id: str
    date: dt.date | None


@dataclass(frozen=True)
class VersionChange:
    """What moving a participant from one protocol version to another did to its visits."""

    old_version: str
    new_version: str
    moved: tuple[DateChange, ...]
    added: tuple[VisitDate, ...]
    removed: tuple[VisitDate, ...]

    def lines(self) -> tuple[str, ...]:
        """The change as the history keeps it, one line each: `C2D1: 2026-04-03 -> ...`."""
        return (f"protocol: {self.old_version} -> {self.new_version}",
                *(f"{c.visit_id}: {_iso(c.old_date)} -> {_iso(c.new_date)}" for c in self.moved),
                *(f"{v.visit_id}: added on {_iso(v.date)}" for v in self.added),
                *(f"{v.visit_id}: removed from {_iso(v.date)}" for v in self.removed))


def version_change(old: Schedule, new: Schedule) -> VersionChange:
    """Every visit date that differs between two schedules of one participant, in the order
    the visits are listed."""
    before = {visit.id: visit for visit in old.visits}
    after = {visit.id: visit for visit in new.visits}
    moved = tuple(DateChange(visit.id, before[visit.id].date, visit.date)
                  for visit in new.visits
                  if visit.id in before and before[visit.id].date != visit.date)
    added = tuple(VisitDate(visit.id, visit.date) for visit in new.visits
                  if visit.id not in before)
    removed = tuple(VisitDate(visit.id, visit.date) for visit in old.visits
                    if visit.id not in after)
    return VersionChange(old.protocol_version, new.protocol_version, moved, added, removed)


def _iso(day: dt.date | None) -> str:
    return day.isoformat() if day else "no date"
