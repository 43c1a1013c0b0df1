"""What the store keeps beside the domain's own values: participants with their version, API
keys, feed tokens, idempotent responses, and the cursor into the participant list."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from scheduler.history import Enrolment

# The protocol version every participant stored before versions were recorded was computed
# with (migration 0006 pins them to it).
FIRST_PROTOCOL_VERSION = "2025-09-15.1"


@dataclass(frozen=True)
class StoredParticipant:
    """`version` counts the participant's changes; `protocol_version` is the version of the
    protocol its schedule is computed under: the one it was enrolled under, until a
    `protocol_version_changed` event moves it."""

    id: str
    enrolment: Enrolment
    version: int
    enrolled_at: dt.datetime
    enrolled_by: str
    updated_at: dt.datetime
    protocol_version: str = FIRST_PROTOCOL_VERSION


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scope: str
    digest: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    status: int
    body: str
    headers: dict[str, str]


@dataclass(frozen=True)
class FeedToken:
    id: str
    kind: str
    participant_id: str | None
    digest: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None


@dataclass(frozen=True)
class ListedVisit:
    """One stored visit state as the worklist and the deviations read it, with whose it is.
    `status` is the recorded one (planned, provisional, done, missed ...), before the day."""

    participant_id: str
    subject_code: str
    visit_id: str
    kind: str
    title: str
    rule: str
    date: dt.date
    earliest: dt.date
    latest: dt.date
    status: str


@dataclass(frozen=True)
class DatedVisit:
    """One stored visit state with a date, as the site's export reads it: as ListedVisit, but
    a held visit may have a date and no window."""

    participant_id: str
    subject_code: str
    visit_id: str
    kind: str
    title: str
    rule: str
    date: dt.date
    earliest: dt.date | None
    latest: dt.date | None
    status: str

    def listed(self) -> ListedVisit | None:
        """The visit as the worklist reads it; None without a window."""
        if self.earliest is None or self.latest is None:
            return None
        return ListedVisit(self.participant_id, self.subject_code, self.visit_id, self.kind,
                           self.title, self.rule, self.date, self.earliest, self.latest,
                           self.status)


def utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands timestamps back without their zone; they were stored in UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# Participant ids are UUIDs (uuid4, as str() writes them).
PARTICIPANT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Cursor:
    """An opaque position in the participant list: (enrolled_at, id) of the last one seen."""

    @staticmethod
    def encode(participant: StoredParticipant) -> str:
        raw = json.dumps([participant.enrolled_at.isoformat(), participant.id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode(cursor: str) -> tuple[dt.datetime, str]:
        """Raises ValueError for anything this service did not hand out."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            when, participant_id = json.loads(raw)
            # A forged year 0001 or 9999 with an offset overflows on the way to UTC.
            moment = utc(dt.datetime.fromisoformat(when))
        except (ValueError, TypeError, UnicodeDecodeError, OverflowError) as error:
            raise ValueError("not a cursor from this list") from error
        if not isinstance(participant_id, str) or not PARTICIPANT_ID.fullmatch(participant_id):
            raise ValueError("not a cursor from this list")
        return moment, participant_id


def bumped(participant: StoredParticipant, when: dt.datetime, **changes: Any) \
        -> StoredParticipant:
    """The participant one version on, as after any change to it or its history."""
    return replace(participant, version=participant.version + 1, updated_at=when, **changes)


@dataclass(frozen=True)
class WebhookEndpoint:
    """A receiver an admin registered. `event_types` None: every type. `status`: active,
    disabled (it answered 410 Gone) or deleted."""

    id: str
    url: str
    secret: str
    event_types: tuple[str, ...] | None
    status: str
    created_at: dt.datetime
    disabled_at: dt.datetime | None = None

    def wants(self, event_type: str) -> bool:
        return self.event_types is None or event_type in self.event_types


@dataclass(frozen=True)
class WebhookMessage:
    """One event in the outbox: `id` is its `webhook-id`, `body` the exact bytes signed."""

    id: str
    type: str
    participant_id: str
    body: str
    created_at: dt.datetime


@dataclass(frozen=True)
class WebhookDelivery:
    """A message's delivery to one endpoint: `pending` (next attempt at `next_attempt_at`),
    `delivered`, or `dead` (every attempt failed, or the endpoint went away)."""

    id: str
    message_id: str
    endpoint_id: str
    event_type: str
    state: str
    attempts: int
    next_attempt_at: dt.datetime
    last_attempt_at: dt.datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery the worker has leased for one attempt (its `attempts` counts this one)."""

    id: str
    attempts: int
    endpoint_id: str
    url: str
    secret: str
    message_id: str
    body: str


@dataclass(frozen=True)
class Outcome:
    """What an attempt came to: the delivery's new state (pending again, with its next attempt
    at `next_attempt_at`; delivered; dead), and the receiver's status or the error."""

    delivery_id: str
    attempts: int
    state: str
    status: int | None
    error: str | None
    next_attempt_at: dt.datetime
    delivered_at: dt.datetime | None = None


@dataclass(frozen=True)
class OverdueVisit:
    """An open visit whose window closed before the site's today, not yet announced."""

    participant_id: str
    subject_code: str
    protocol_version: str
    visit_id: str
    kind: str
    date: dt.date
    earliest: dt.date
    latest: dt.date
