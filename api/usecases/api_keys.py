"""API keys: shown once when created, stored only as a SHA-256 digest."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

from api.persistence.records import ApiKey
from api.persistence.unit_of_work import UnitOfWorkFactory
from api.usecases.common import digest, now

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)  # each includes the ones before it
KEY_PREFIX = "ts"


def covers(held: str, needed: Scope) -> bool:
    """Whether a key of scope `held` may do what needs `needed`.

    >>> covers("admin", "write"), covers("read", "write")
    (True, False)
    """
    return SCOPES.index(held) >= SCOPES.index(needed)


@dataclass(frozen=True)
class ApiKeys:
    units: UnitOfWorkFactory
    # Reads one key by id on the hot path (api/persistence/feed_reads.py); else a unit of work.
    lookup: Callable[[str], ApiKey | None] | None = None
    # Reads one key by id with a participant's version in one statement (the cached schedule's
    # path); else the two reads one after the other.
    lookup_with_version: Callable[[str, str], tuple[ApiKey, int | None] | None] | None = None

    def create(self, name: str, scope: str) -> str:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        key_id = secrets.token_hex(8)
        secret = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        with self.units() as uow:
            if uow.api_keys.by_name(name) is not None:
                raise ValueError(f"an API key named {name!r} exists")
            uow.api_keys.add(ApiKey(key_id, name, scope, digest(secret), now()))
            uow.commit()
        return secret

    def revoke(self, name: str) -> bool:
        with self.units() as uow:
            key = uow.api_keys.by_name(name)
            if key is None or key.revoked_at is not None:
                return False
            uow.api_keys.revoke(key, now())
            uow.commit()
        return True

    def listing(self) -> list[ApiKey]:
        """Every key with its name, scope and times; a key's digest never leaves here."""
        with self.units(readonly=True) as uow:
            return uow.api_keys.listing()

    def count(self) -> int:
        with self.units(readonly=True) as uow:
            return uow.api_keys.count()

    def authenticate(self, presented: str) -> ApiKey | None:
        """The live key behind a presented secret, compared in constant time."""
        key_id = _key_id(presented)
        if key_id is None:
            return None
        if self.lookup is not None:
            key = self.lookup(key_id)
        else:
            with self.units(readonly=True) as uow:
                key = uow.api_keys.get(key_id)
        return _live(presented, key)

    def authenticate_with_version(self, presented: str, participant_id: str) \
            -> tuple[ApiKey | None, int | None]:
        """The live key behind a presented secret, as `authenticate` finds it, and the
        participant's current version (None when there is no such participant, or no key):
        one round trip where the store allows it. The version is given only with a live key."""
        key_id = _key_id(presented)
        if key_id is None:
            return None, None
        if self.lookup_with_version is None:
            key = self.authenticate(presented)
            if key is None:
                return None, None
            with self.units(readonly=True) as uow:
                participant = uow.participants.get(participant_id)
            return key, participant.version if participant is not None else None
        found = self.lookup_with_version(key_id, participant_id)
        if found is None:
            return None, None
        key = _live(presented, found[0])
        return (key, found[1]) if key is not None else (None, None)


def _key_id(presented: str) -> str | None:
    """The id a presented secret names (`ts_<id>_<secret>`), or None for another shape."""
    prefix, _, rest = presented.partition("_")
    key_id, _, _ = rest.partition("_")
    return key_id if prefix == KEY_PREFIX and key_id else None


def _live(presented: str, key: ApiKey | None) -> ApiKey | None:
    """The stored key if it is live and the presented secret is its own (constant time)."""
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(digest(presented), key.digest):
        return None
    return key
