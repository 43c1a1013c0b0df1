"""What every use case shares: the clock, digests of secrets, and the two refusals."""

from __future__ import annotations

import datetime as dt
import hashlib


class NotFound(Exception):
    """No participant with that id."""


class NothingToChange(Exception):
    """A correction whose every field already has the value sent: no history to record."""


class StaleVersion(Exception):
    """The caller's If-Match names a version that is no longer current."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def digest(secret: str) -> str:
    """What is stored of a secret (an API key, a feed token): its SHA-256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()
