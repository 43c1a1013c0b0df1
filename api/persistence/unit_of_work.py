"""The seam between the use cases and storage: one unit of work (a transaction) holding one
repository per kind of record. `sql.py` implements it on a database, `memory.py` in memory."""

from __future__ import annotations

import abc
import datetime as dt
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol, Self

from api.persistence.records import (
    ApiKey,
    ClaimedDelivery,
    DatedVisit,
    FeedToken,
    ListedVisit,
    Outcome,
    OverdueVisit,
    StoredParticipant,
    StoredResponse,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from scheduler.history import Event
from scheduler.subscription import VisitState


class ParticipantRepository(Protocol):
    def add(self, participant: StoredParticipant) -> None: ...
    def get(self, participant_id: str, for_update: bool = False) \
        -> StoredParticipant | None: ...
    def by_subject_code(self, subject_code: str) -> StoredParticipant | None: ...
    def page(self, after: tuple[dt.datetime, str] | None, limit: int) \
        -> list[StoredParticipant]: ...
    def update(self, participant: StoredParticipant) -> None: ...
    def listing(self) -> list[StoredParticipant]: ...
    def events_of_many(self, participant_ids: list[str]) -> dict[str, list[Event]]: ...
    def events(self, participant_id: str) -> list[Event]: ...
    def append(self, participant_id: str, event: Event) -> None: ...


class ApiKeyRepository(Protocol):
    def add(self, key: ApiKey) -> None: ...
    def get(self, key_id: str) -> ApiKey | None: ...
    def by_name(self, name: str) -> ApiKey | None: ...
    def revoke(self, key: ApiKey, when: dt.datetime) -> None: ...
    def count(self) -> int: ...
    def listing(self) -> list[ApiKey]: ...


class IdempotencyRepository(Protocol):
    def get(self, key_id: str, key: str) -> StoredResponse | None: ...
    def add(self, key_id: str, key: str, response: StoredResponse,
            when: dt.datetime) -> None: ...


class FeedTokenRepository(Protocol):
    def with_participant(self, token_id: str) \
        -> tuple[FeedToken, StoredParticipant | None] | None: ...
    def add(self, token: FeedToken) -> None: ...
    def active(self, kind: str, participant_id: str | None = None) -> FeedToken | None: ...
    def active_for_participants(self, participant_ids: list[str] | None = None) \
            -> dict[str, FeedToken]:
        """The live token of each participant, or of those named."""
        ...
    def revoke(self, token_id: str, when: dt.datetime) -> None: ...
    def lock_feed(self, kind: str, participant_id: str | None) -> None: ...
    def revoke_live(self, kind: str, participant_id: str | None, when: dt.datetime) -> None: ...


class VisitStateRepository(Protocol):
    def of(self, participant_id: str) -> dict[str, VisitState]: ...
    def of_many(self, participant_ids: list[str]) -> dict[str, dict[str, VisitState]]: ...
    def save(self, participant_id: str, states: list[VisitState], known: set[str]) -> None: ...
    def worklist(self, start: dt.date, end: dt.date, today: dt.date) -> list[ListedVisit]:
        """Every participant's open visits dated in [start, end] or whose window opened by
        `today`, in one read."""
        ...
    def deviating(self, today: dt.date) -> list[ListedVisit]:
        """Every participant's visits done or missed, and open ones whose window closed
        before `today`, in one read."""
        ...
    def dated(self, start: dt.date, end: dt.date) -> list[DatedVisit]:
        """Every participant's visits dated in [start, end], whatever their status, and the
        open ones dated before `start` (which decide what the day makes due), in one read."""
        ...


class RenderedFeedRepository(Protocol):
    def put(self, participant_id: str, version: int, tag: str, body: bytes,
            marks: str) -> None: ...
    def of_many(self, participant_ids: list[str]) -> dict[str, tuple[int, str, bytes]]: ...
    def last(self, participant_id: str) -> tuple[str, bytes, str | None] | None:
        """The participant's stored rendered events (protocol tag, compressed body, their
        marks or None for a block stored before marks were kept), when the unit of work has
        them at hand (the SQL one reads them with the participant's lock); None when it would
        have to read them."""
        ...


class WebhookRepository(Protocol):
    """Webhook endpoints and the outbox (docs/webhooks.md). Only the SQL unit of work has
    one: the in-memory store serves use-case tests of participants, which emit no webhooks."""

    def add_endpoint(self, endpoint: WebhookEndpoint) -> None: ...
    def endpoint(self, endpoint_id: str) -> WebhookEndpoint | None: ...
    def endpoints(self) -> list[WebhookEndpoint]:
        """Every endpoint not deleted, oldest first."""
        ...
    def active(self) -> list[WebhookEndpoint]:
        """The endpoints messages are delivered to now."""
        ...
    def set_status(self, endpoint_id: str, status: str, when: dt.datetime) -> None: ...
    def bury_pending(self, endpoint_id: str, error: str, when: dt.datetime) -> None:
        """Every pending delivery to the endpoint becomes dead, with `error`."""
        ...
    def add_message(self, message: WebhookMessage, endpoint_ids: list[str]) -> None:
        """The message, and a pending delivery of it to each endpoint, due at once; waking
        the workers when this transaction commits."""
        ...
    def wake(self) -> None:
        """Tell waiting workers, when this transaction commits, that there is work."""
        ...
    def has_due(self, when: dt.datetime) -> bool:
        """Whether a pending delivery to an active endpoint is due by `when`."""
        ...
    def claim(self, when: dt.datetime, lease_until: dt.datetime, limit: int) \
        -> list[ClaimedDelivery]:
        """Up to `limit` pending deliveries due by `when` to active endpoints, each with one
        more attempt counted and its next attempt put off to `lease_until`; another worker
        skips them (PostgreSQL: FOR UPDATE SKIP LOCKED)."""
        ...
    def settle(self, outcomes: list[Outcome]) -> None:
        """Record attempts' outcomes, each only if its delivery is still at the attempt
        claimed."""
        ...
    def deliveries(self, endpoint_id: str, state: str | None, limit: int) \
        -> list[WebhookDelivery]: ...
    def redeliver(self, endpoint_id: str, delivery_id: str, when: dt.datetime) \
        -> WebhookDelivery | None: ...
    def outbox(self) -> tuple[dict[str, int], int]:
        """Deliveries by state (pending, delivered, dead), and the attempts that failed."""
        ...
    def announced(self, participant_ids: list[str]) -> set[tuple[str, str, dt.date]]:
        """(participant, visit, window's last day) of each overdue visit announced."""
        ...
    def announce_overdue(self, visit: OverdueVisit, when: dt.datetime) -> None: ...
    def lock_overdue_scan(self) -> None: ...


class UnitOfWork(abc.ABC):
    """One transaction: what is not committed explicitly is rolled back on leaving. The
    repositories are there between entering and leaving."""

    participants: ParticipantRepository
    api_keys: ApiKeyRepository
    idempotency: IdempotencyRepository
    feed_tokens: FeedTokenRepository
    visit_states: VisitStateRepository
    rendered_feeds: RenderedFeedRepository
    webhooks: WebhookRepository

    @abc.abstractmethod
    def __enter__(self) -> Self: ...

    @abc.abstractmethod
    def __exit__(self, *_: object) -> None: ...

    @abc.abstractmethod
    def commit(self) -> None: ...

    def batched(self) -> AbstractContextManager[None]:
        """Writes made inside may be kept and sent together on leaving (one round trip on
        PostgreSQL: api/persistence/batch.py), so nothing inside may read what it wrote.
        By default each write runs as it is made."""
        return nullcontext()


class UnitOfWorkFactory(Protocol):
    """Opens a unit of work; a read-only one may be cheaper."""

    def __call__(self, readonly: bool = False) -> UnitOfWork: ...
