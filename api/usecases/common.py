"""What every use case shares: the clocks, digests of secrets, and the two refusals."""

from __future__ import annotations

import datetime as dt
import hashlib
from zoneinfo import ZoneInfo


class NotFound(Exception):
    """No participant with that id."""


class NothingToChange(Exception):
    """A correction whose every field already has the value sent: no history to record."""


class StaleVersion(Exception):
    """The caller's If-Match names a version that is no longer current."""


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
