"""The order visits are listed in: the one owner of it (protocol-defaults rule 24).

Visits are listed by date, undated ones last. On one day, a protocol with the `same-day-order`
rule (revision 2 on) lists them in clinical order, as a participant goes through the day:
recovery check, pregnancy test, screening labs, pre-dose labs, baseline imaging, response
imaging, infusion, end of treatment, safety and survival follow-up; a numbered series in its
numbers' order (IMG-9 before IMG-10). A protocol without the rule (revision 1) lists one day's
visits by id, as that revision always did.

The engine, the recorded outcomes, the feeds, the worklist and the web pages all order by
`order_key`, so a visit list reads the same wherever it is shown.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from functools import cache, lru_cache
from typing import TypeAlias

from scheduler.model import Visit

# What a visit is sorted by; the kinds' order comes from the protocol (`Protocol.visit_order`).
OrderKey: TypeAlias = tuple[bool, dt.date, int, int, str]


@lru_cache(maxsize=4096)  # a protocol's ids are few; every list sorts them over and over
def id_number(visit_id: str) -> int:
    """The number ending an id, 0 when it ends in none.

    >>> id_number("IMG-10"), id_number("C4-LABS"), id_number("SURV-2"), id_number("EOT")
    (10, 0, 2, 0)
    """
    digits = "".join(char for char in visit_id.split("-")[-1] if char.isdigit())
    return int(digits) if digits and visit_id[-1].isdigit() else 0


@cache
def _ranks(kinds: tuple[str, ...]) -> dict[str, int]:
    return {kind: index for index, kind in enumerate(kinds)}


def order_keys(kinds: tuple[str, ...]) -> Callable[[dt.date | None, str, str], OrderKey]:
    """`order_key` with the kinds fixed, for a sort's many keys: the kinds' ranks are looked up
    once, not once a visit."""
    if not kinds:
        return lambda date, _kind, visit_id: (date is None, date or dt.date.min, 0, 0, visit_id)
    ranks = _ranks(kinds)
    last = len(ranks)
    return lambda date, kind, visit_id: (date is None, date or dt.date.min,
                                         ranks.get(kind, last), id_number(visit_id), visit_id)


def order_key(kinds: tuple[str, ...], date: dt.date | None, kind: str,
              visit_id: str) -> OrderKey:
    """Where a visit goes in a list: by date (undated last), then, on one day, by the kinds'
    clinical order `kinds`, the id's number and the id; with no `kinds`, by id alone.

    >>> v2 = ("recovery_check", "screening_labs", "infusion")
    >>> day = dt.date(2026, 3, 9)
    >>> sorted(["C1D1", "RECOVERY"], key=lambda i: order_key(
    ...     v2, day, {"C1D1": "infusion", "RECOVERY": "recovery_check"}[i], i))
    ['RECOVERY', 'C1D1']
    >>> order_key((), day, "infusion", "C1D1") < order_key((), day, "recovery_check", "RECOVERY")
    True
    """
    return order_keys(kinds)(date, kind, visit_id)


def visit_key(kinds: tuple[str, ...]) -> Callable[[Visit], OrderKey]:
    """`order_key` of a visit, for `sorted`."""
    key = order_keys(kinds)
    return lambda visit: key(visit.date, visit.kind, visit.id)


def in_visit_order(visits: Iterable[Visit], kinds: tuple[str, ...]) -> tuple[Visit, ...]:
    """The visits in listing order under the protocol's same-day order `kinds`."""
    return tuple(sorted(visits, key=visit_key(kinds)))


def rank(kinds: tuple[str, ...], kind: str) -> int:
    """A kind's place in the day's clinical order (kinds not listed come last)."""
    ranks = _ranks(kinds)
    return ranks.get(kind, len(ranks))
