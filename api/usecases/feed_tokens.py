"""Feed tokens and the links that carry them: the URL is the credential (docs/feeds.md).

A feed URL carries `<feed id>.<secret>`; only the SHA-256 digest of the whole token is stored.
The secret half is an HMAC of the feed id under the service's feed secret, so participant
responses can show the link again without the service storing it. Rotation issues a new feed
id; the old URL answers 404 at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from api.persistence.records import FeedToken
from api.persistence.unit_of_work import UnitOfWork
from api.usecases.common import digest, now

# The base of links built outside any request (a script, the benchmark) with no public base.
NO_REQUEST_BASE = "http://localhost"
PARTICIPANT_PATH = "/feeds/{}.ics"
SITE_PATH = "/feeds/site/{}.ics"


@dataclass(frozen=True)
class FeedLinks:
    """Builds tokens and the links that carry them. Links start with the public base URL when
    one is configured, else with the base of the request being answered (`request_base`:
    its scheme and host, as the HTTP layer trusts them)."""

    secret: bytes
    public_base_url: str | None
    request_base: Callable[[], str | None] = lambda: None

    def token(self, feed_id: str) -> str:
        mac = hmac.new(self.secret, feed_id.encode(), hashlib.sha256).digest()
        return f"{feed_id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def base(self, request_base: str | None = None) -> str:
        """The public base URL, else `request_base` when the caller knows the request's, else
        the request being answered's."""
        return self.public_base_url or request_base or self.request_base() or NO_REQUEST_BASE

    def https(self, path: str, request_base: str | None = None) -> str:
        """The link to a path on this service, as a calendar fetches it."""
        return f"{self.base(request_base).rstrip('/')}{path}"

    def links(self, path: str) -> dict[str, str]:
        https = self.https(path)
        return {"https": https, "webcal": "webcal://" + https.split("://", 1)[-1]}

    def participant_source(self, presented: str, request_base: str | None = None) -> str:
        """A participant feed's own URL, with the token it was asked with (its SOURCE)."""
        return self.https(PARTICIPANT_PATH.format(presented), request_base)

    def site_source(self, presented: str) -> str:
        return self.https(SITE_PATH.format(presented))

    def participant_links(self, token: FeedToken) -> dict[str, str]:
        return self.links(PARTICIPANT_PATH.format(self.token(token.id)))

    def site_links(self, token: FeedToken) -> dict[str, str]:
        return self.links(SITE_PATH.format(self.token(token.id)))


@dataclass(frozen=True)
class FeedTokens:
    """Issues feed tokens inside the caller's unit of work."""

    links: FeedLinks

    def new_token(self, uow: UnitOfWork, kind: str, participant_id: str | None) -> str:
        """Revoke every live token of this feed and issue a new one; returns the token.
        Rotations of one feed queue on its lock, and the database holds at most one live
        token per feed (migration 0003), so concurrent rotations leave exactly one."""
        uow.feed_tokens.lock_feed(kind, participant_id)
        when = now()
        uow.feed_tokens.revoke_live(kind, participant_id, when)
        feed_id = secrets.token_hex(16)
        token = self.links.token(feed_id)
        uow.feed_tokens.add(FeedToken(feed_id, kind, participant_id, digest(token), when))
        return token

    def issue_for_enrolment(self, uow: UnitOfWork, participant_id: str) -> None:
        """A newly enrolled participant's first feed token."""
        self.new_token(uow, "participant", participant_id)
