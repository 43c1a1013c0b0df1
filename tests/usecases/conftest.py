"""The use cases over the in-memory store: one store a test, and the stored-participant use
cases on it under a chosen protocol version."""

from __future__ import annotations

import pytest

from api.persistence.memory import MemoryStore
from api.usecases.feed_tokens import FeedLinks, FeedTokens
from api.usecases.participants import Participants
from scheduler import Protocol
from tests.conftest import PROTOCOL, SITE


@pytest.fixture
def store():
    return MemoryStore()


def service_on(store: MemoryStore, protocol: Protocol = PROTOCOL) -> Participants:
    """The stored-participant use cases on `store`, new enrolments pinned to `protocol`."""
    tokens = FeedTokens(FeedLinks(b"test-feed-secret", "https://example.org"))
    return Participants(store, protocol, SITE, tokens.issue_for_enrolment)
