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
        prefix, _, rest = presented.partition("_")
        key_id, _, _ = rest.partition("_")
        if prefix != KEY_PREFIX or not key_id:
            return None
        if self.lookup is not None:
            key = self.lookup(key_id)
        else:
            with self.units(readonly=True) as uow:
                key = uow.api_keys.get(key_id)
        if key is None or key.revoked_at is not None:
            return None
        if not hmac.compare_digest(digest(presented), key.digest):
            return None
        return key
