"""The site calendar: which days the clinic works, and how a visit moves onto one.

Non-working days are weekends and Chinese public holidays, and the weekend make-up working
days (调休) are working days, as `holidays.China` models them from the State Council's yearly
notice. For a year whose notice is not in the data, only rule-based holidays are known and no
make-up days, so dates in such a year are provisional.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from holidays import HolidayBase
from holidays.countries.china import China, ChinaStaticHolidays

from scheduler.errors import ProtocolError

# Our words for the holidays package's names, which are not shown to anyone: "Day off
# (substituted from 02/28/2026)" becomes "a Spring Festival holiday".
FESTIVALS = (
    ("New Year's Day", "New Year's Day"),
    ("Chinese New Year", "Spring Festival"),
    ("Tomb-Sweeping", "Qingming Festival"),
    ("Labor Day", "Labour Day"),
    ("Dragon Boat", "Dragon Boat Festival"),
    ("Mid-Autumn", "Mid-Autumn Festival"),
    ("National Day", "National Day"),
)


def _festival(name: str) -> str | None:
    for package_name, ours in FESTIVALS:
        if package_name in name:
            return ours
    return None


@dataclass(frozen=True)
class Shift:
    """Where a visit lands: the date, and where it moved from (None when it did not move)."""

    date: dt.date
    shifted_from: dt.date | None
    reason: str | None
    stranded: bool = False


@dataclass
class SiteCalendar:
    """Working days at one site: public holidays and make-up days, plus its own exceptions."""

    id: str
    name: str
    time_zone: str
    extra_closures: frozenset[dt.date] = frozenset()
    extra_openings: frozenset[dt.date] = frozenset()
    _holidays: HolidayBase = field(default_factory=lambda: _china_holidays())
    _working: dict[dt.date, bool] = field(default_factory=dict)

    def is_working_day(self, day: dt.date) -> bool:
        """True when the clinic works on `day`.

        >>> site = load_site()
        >>> site.is_working_day(dt.date(2026, 5, 5))   # Labour Day holiday, a Tuesday
        False
        >>> site.is_working_day(dt.date(2026, 9, 20))  # a Sunday, but a make-up working day
        True
        """
        known = self._working.get(day)
        if known is None:
            known = self._compute_working(day)
            self._working[day] = known
        return known

    def _compute_working(self, day: dt.date) -> bool:
        if day in self.extra_openings:
            return True
        if day in self.extra_closures:
            return False
        return bool(self._holidays.is_working_day(day))

    def why_closed(self, day: dt.date) -> str:
        """A short reason a non-working day is closed, for `shift_reason`."""
        if day in self.extra_closures:
            return f"{day.isoformat()} is a site closure"
        name = self._holidays.get(day)
        if name:
            return f"{day.isoformat()} is not a working day ({name})"
        return f"{day.isoformat()} is a {day.strftime('%A')}"

    def reason_closed(self, day: dt.date) -> str:
        """Why the clinic is closed on `day`, in our words (protocol revision 2).

        >>> site = load_site()
        >>> site.reason_closed(dt.date(2026, 2, 23))
        '2026-02-23 is a Spring Festival holiday'
        >>> site.reason_closed(dt.date(2026, 3, 1))
        '2026-03-01 is a Sunday'
        """
        if day in self.extra_closures:
            return f"{day.isoformat()} is a site closure"
        festival = self.festival(day)
        if festival is not None:
            return f"{day.isoformat()} is a {festival} holiday"
        if self._holidays.get(day):
            return f"{day.isoformat()} is a public holiday"
        return f"{day.isoformat()} is a {day.strftime('%A')}"

    def festival(self, day: dt.date) -> str | None:
        """The festival a public holiday belongs to; a substituted day off takes the festival
        of the nearest named holiday within a week."""
        name = self._holidays.get(day)
        if not name:
            return None
        named = _festival(name)
        if named is not None:
            return named
        for distance in range(1, 8):
            for near in (day - dt.timedelta(distance), day + dt.timedelta(distance)):
                found = _festival(self._holidays.get(near) or "")
                if found is not None:
                    return found
        return None

    def reason_open(self, day: dt.date) -> str | None:
        """Why a weekend day is a working day, or None on an ordinary weekday.

        >>> load_site().reason_open(dt.date(2026, 9, 20))
        'Sunday 2026-09-20 is a working day: National Day make-up day'
        """
        if day.weekday() < 5 or not self.is_working_day(day):
            return None
        weekday = day.strftime("%A")
        if day in self.extra_openings:
            return f"{weekday} {day.isoformat()} is a working day: the site is open"
        swapped = f"(substituted from {day.strftime('%m/%d/%Y')})"
        for other in self._holidays_of(day.year):
            if swapped in (self._holidays.get(other) or ""):
                festival = self.festival(other) or "public holiday"
                return f"{weekday} {day.isoformat()} is a working day: {festival} make-up day"
        return f"{weekday} {day.isoformat()} is a working day: a make-up day"

    def _holidays_of(self, year: int) -> list[dt.date]:
        self._holidays.get(dt.date(year, 1, 1))  # fills the year in
        return sorted(day for day in self._holidays if day.year == year)

    def has_official_notice(self, year: int) -> bool:
        """True when the State Council's holiday notice for `year` is in the holiday data.

        >>> site = load_site()
        >>> site.has_official_notice(2026), site.has_official_notice(2027)
        (True, False)
        """
        return year in ChinaStaticHolidays.special_public_holidays

    def nearest_working_day(self, target: dt.date, earliest: dt.date, latest: dt.date,
                            plain: bool = False) -> Shift:
        """Move `target` to the nearest working day inside [earliest, latest], earlier on a tie.

        With no working day in the window the date stays and the result is `stranded`, so the
        schedule can ask for an investigator decision instead of leaving the window silently.

        >>> site = load_site()
        >>> labour_day = dt.date(2026, 5, 5)
        >>> site.nearest_working_day(labour_day, dt.date(2026, 5, 2), dt.date(2026, 5, 8)).date
        datetime.date(2026, 5, 6)
        """
        if self.is_working_day(target):
            return Shift(target, None, None)
        for distance in range(1, (latest - earliest).days + 1):
            for candidate in (target - dt.timedelta(distance), target + dt.timedelta(distance)):
                if earliest <= candidate <= latest and self.is_working_day(candidate):
                    why = self.reason_closed(target) if plain else self.why_closed(target)
                    return Shift(candidate, target, why)
        return Shift(target, None, None, stranded=True)


def _china_holidays() -> HolidayBase:
    """Chinese public holidays with make-up working days, filled in year by year on lookup."""
    return China(years=[])  # type: ignore[no-untyped-call]  # holidays ships no annotations here


def load_site(path: str | Path | None = None) -> SiteCalendar:
    """Load a site file; the packaged Zhongshan Hospital site by default."""
    if path is None:
        text = resources.files("scheduler").joinpath("sites/zhongshan-shanghai.json").read_text()
    else:
        text = Path(path).read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProtocolError(f"site file: not valid JSON: {error}") from error
    return parse_site(document)


def parse_site(document: Any) -> SiteCalendar:
    """Validate a decoded site document."""
    if not isinstance(document, dict):
        raise ProtocolError("site file: the document must be an object")
    for key in ("id", "name", "time_zone"):
        if not isinstance(document.get(key), str) or not document[key]:
            raise ProtocolError(f"site file: field '{key}' must be a non-empty string")
    if document.get("holiday_country") != "CN":
        raise ProtocolError("site file: field 'holiday_country' must be 'CN' (the only "
                            "calendar with make-up working days this service models)")
    return SiteCalendar(
        id=document["id"], name=document["name"], time_zone=document["time_zone"],
        extra_closures=_dates(document, "extra_closures"),
        extra_openings=_dates(document, "extra_openings"),
    )


def _dates(document: dict[str, Any], key: str) -> frozenset[dt.date]:
    values = document.get(key, [])
    if not isinstance(values, list):
        raise ProtocolError(f"site file: field '{key}' must be a list of ISO dates")
    try:
        return frozenset(dt.date.fromisoformat(value) for value in values)
    except (TypeError, ValueError) as error:
        raise ProtocolError(f"site file: field '{key}' holds a value that is not an ISO date") \
            from error
