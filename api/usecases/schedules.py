"""The stateless calculator's use case: a schedule from a participant's facts, nothing stored."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from api.usecases.common import Lru
from scheduler import Protocol, Schedule, SiteCalendar, compute_schedule
from scheduler.model import ParticipantFacts
from scheduler.outcomes import (
    NO_OUTCOMES,
    Outcomes,
    check_outcomes,
    facts_with_outcomes,
    with_outcomes,
)
from scheduler.validation import validate_facts

ANSWER_MEMO_BYTES = 32 * 1024 * 1024


def answer_memo(max_bytes: int) -> Lru[bytes, bytes]:
    """Encoded answers by the exact bytes of a request that was parsed and answered before:
    the same bytes parse to the same facts, so a repeated request skips its parsing too.
    Bounded by the bytes it holds (requests and answers)."""
    return Lru(max_bytes, cost=lambda request, answer: len(request) + len(answer))


@dataclass(frozen=True)
class Question:
    """What a caller knows: the facts the engine schedules from, and the visit outcomes."""

    facts: ParticipantFacts
    outcomes: Outcomes = NO_OUTCOMES


def _question(asked: ParticipantFacts | Question) -> Question:
    return asked if isinstance(asked, Question) else Question(asked)


@dataclass(eq=False)
class Schedules:
    """Schedules from facts. The computation is pure: the same facts give the same schedule, so
    recent answers are kept (bounded, least recently used first out), each with its encoding
    by `encode` (the caller's wire form), so a repeated question costs one lookup; `answers`
    keeps them by the caller's request bytes as well.

    `today` is the site's today: a fact dated after it is refused (rule future-facts); it is
    part of the key, so an answer kept from yesterday is not given today."""

    protocol: Protocol
    site: SiteCalendar
    encode: Callable[[Schedule], bytes]
    answers: Lru[bytes, bytes] = field(default_factory=lambda: answer_memo(ANSWER_MEMO_BYTES))
    _memo: Callable[[Question, dt.date | None], tuple[Schedule, bytes]] = field(
        init=False, repr=False)

    def __post_init__(self) -> None:
        self._memo = lru_cache(maxsize=2048)(self._compute)

    @staticmethod
    def answer_key(body: bytes, today: dt.date) -> bytes:
        """Where `answers` keeps the answer to `body`: the answer depends on the body and on
        the site's today (rule future-facts, due and overdue), so the key holds both."""
        return today.isoformat().encode() + b"\0" + body

    def _compute(self, question: Question, today: dt.date | None) -> tuple[Schedule, bytes]:
        facts = question.facts
        if today is not None:
            validate_facts(self.protocol, facts, today)
        schedule = compute_schedule(self.protocol, facts_with_outcomes(facts, question.outcomes),
                                    self.site)
        check_outcomes(schedule, question.outcomes, facts.as_of)
        schedule = with_outcomes(schedule, question.outcomes, facts.as_of)
        return schedule, self.encode(schedule)

    def schedule(self, asked: ParticipantFacts | Question,
                 today: dt.date | None = None) -> Schedule:
        """The schedule, as of `facts.as_of` when given (due and overdue need a day); facts
        dated after `today` are refused."""
        return self._memo(_question(asked), today)[0]

    def encoded(self, asked: ParticipantFacts | Question, today: dt.date | None = None) -> bytes:
        """The schedule as `encode` renders it."""
        return self._memo(_question(asked), today)[1]
