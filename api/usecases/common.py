"""What every use case shares: the clocks, digests of secrets, the refusals, and one bounded
cache."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from scheduler.history import HistoryConflict

K = TypeVar("K")
V = TypeVar("V")


def _one(_key: object, _value: object) -> int:
    return 1


class Lru(Generic[K, V]):
    """A bounded map shared by a worker's threads, least recently used first out. Each entry
    costs `cost(key, value)` (one, by default: `limit` counts entries; or its bytes) and the
    entries together at most `limit`; an entry costing more than that is not kept.

    Every cache here is keyed by what changes with each write (a participant's version, the
    exact bytes of a request), so an entry is never stale, only old.

    >>> cache = Lru[str, bytes](5, cost=lambda key, value: len(value))
    >>> cache.put("a", b"xx"); cache.put("b", b"yyy"); cache.get("a")
    b'xx'
    >>> cache.put("c", b"z"); cache.get("b") is None, cache.get("a"), cache.get("c")
    (True, b'xx', b'z')
    """

    def __init__(self, limit: int, cost: Callable[[K, V], int] = _one) -> None:
        self.limit = limit
        self.cost = cost
        self.entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self.lock:
            found = self.entries.get(key)
            if found is None:
                return None
            self.entries.move_to_end(key)
            return found[0]

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.size = 0

    def put(self, key: K, value: V) -> None:
        cost = self.cost(key, value)
        if cost > self.limit:
            return
        with self.lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.size -= old[1]
            self.entries[key] = value, cost
            self.size += cost
            while self.size > self.limit:
                _, (_, dropped) = self.entries.popitem(last=False)
                self.size -= dropped


class NotFound(Exception):
    """No participant with that id."""


class NothingToChange(Exception):
    """A correction whose every field already has the value sent: no history to record."""


class StaleVersion(Exception):
    """The caller's If-Match names a version that is no longer current."""


class AlreadyEnrolled(HistoryConflict):
    """A second enrolment of one subject code; names the participant already enrolled."""

    def __init__(self, existing_id: str) -> None:
        super().__init__("subject_code", "enrolment",
                         f"a participant with this subject code is enrolled: {existing_id}")
        self.existing_id = existing_id


class SiteClock:
    """Today at the site, in its time zone. Tests freeze it on a day of their choosing."""

    def __init__(self, time_zone: str, frozen: dt.date | None = None) -> None:
        self.zone = ZoneInfo(time_zone)
        self.frozen = frozen

    def today(self) -> dt.date:
        if self.frozen is not None:
            return self.frozen
        return dt.datetime.now(self.zone).date()

    def freeze(self, day: dt.date | None) -> None:
        """Stop the clock on `day`; None lets it run again."""
        self.frozen = day


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def digest(secret: str) -> str:
    """What is stored of a secret (an API key, a feed token): its SHA-256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()
