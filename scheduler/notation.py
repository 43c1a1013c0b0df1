"""The short notation for a dose given, shared by the command line (`--dose`) and the
calendar link's query (`dose_given`): `CYCLE:YYYY-MM-DD`, with `CYCLE=YYYY-MM-DD` kept as an
alias. Cycles count from 1."""

from __future__ import annotations

import datetime as dt
import re

ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DOSE_GIVEN = re.compile(r"([0-9]{1,2})[:=]([0-9]{4}-[0-9]{2}-[0-9]{2})")
DOSE_FORM = "CYCLE:YYYY-MM-DD (cycle from 1)"


def parse_date(text: str) -> dt.date:
    """Exactly YYYY-MM-DD, which date.fromisoformat also reads in other forms (20260302,
    2026-W10-1); ValueError saying the form.

    >>> parse_date("2026-03-02")
    datetime.date(2026, 3, 2)
    """
    if ISO_DATE.fullmatch(text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not a date in the form YYYY-MM-DD")


def parse_dose_given(text: str) -> tuple[int, dt.date]:
    """The cycle and date of `text`; ValueError with a message a person can act on.

    >>> parse_dose_given("1:2026-03-09"), parse_dose_given("2=2026-03-30")[0]
    ((1, datetime.date(2026, 3, 9)), 2)
    """
    match = DOSE_GIVEN.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not {DOSE_FORM}")
    cycle = int(match.group(1))
    if cycle < 1:
        raise ValueError(f"{text!r}: cycles count from 1")
    try:
        return cycle, parse_date(match.group(2))
    except ValueError as error:
        raise ValueError(f"{text!r}: {error}") from None
