"""Working days at Zhongshan Hospital: weekends, Chinese holidays and make-up days (调休)."""

from __future__ import annotations

import pytest

from scheduler import ProtocolError, load_site
from scheduler.calendar import parse_site
from tests.conftest import D

SITE = load_site()


@pytest.mark.parametrize(("day", "working"), [
    ("2026-05-05", False),  # Labour Day holiday (a Tuesday)
    ("2026-09-20", True),   # Sunday, make-up working day
    ("2026-10-10", True),   # Saturday, make-up working day
    ("2026-10-01", False),  # National Day
    ("2026-03-07", False),  # ordinary Saturday
    ("2026-03-09", True),   # ordinary Monday
    ("2027-02-08", False),  # Spring Festival 2027, rule-based
])
def test_working_days(day, working):
    assert SITE.is_working_day(D(day)) is working


def test_site_is_in_shanghai():
    assert SITE.time_zone == "Asia/Shanghai"


def test_nearest_working_day_prefers_the_earlier_on_a_tie():
    shift = SITE.nearest_working_day(D("2027-06-09"), D("2027-06-06"), D("2027-06-12"))
    assert (shift.date, shift.shifted_from) == (D("2027-06-08"), D("2027-06-09"))


def test_nearest_working_day_never_leaves_the_window():
    shift = SITE.nearest_working_day(D("2026-10-03"), D("2026-10-01"), D("2026-10-07"))
    assert shift.stranded and shift.date == D("2026-10-03")


def test_official_notice_years():
    assert SITE.has_official_notice(2026) and not SITE.has_official_notice(2027)


def test_site_file_closures_and_openings():
    site = parse_site({"id": "s", "name": "s", "time_zone": "Asia/Shanghai",
                       "holiday_country": "CN", "extra_closures": ["2026-03-09"],
                       "extra_openings": ["2026-03-07"]})
    assert not site.is_working_day(D("2026-03-09"))
    assert site.is_working_day(D("2026-03-07"))
    assert site.why_closed(D("2026-03-09")) == "2026-03-09 is a site closure"


@pytest.mark.parametrize("document", [
    [], {"id": "s", "name": "s", "time_zone": "Asia/Shanghai", "holiday_country": "US"},
    {"id": "s", "name": "s", "time_zone": "Asia/Shanghai", "holiday_country": "CN",
     "extra_closures": ["2026-02-30"]},
    {"id": "", "name": "s", "time_zone": "Asia/Shanghai", "holiday_country": "CN"},
])
def test_malformed_site_files_fail_loudly(document):
    with pytest.raises(ProtocolError):
        parse_site(document)


@pytest.mark.parametrize(("day", "reason"), [
    ("2026-02-23", "2026-02-23 is a Spring Festival holiday"),  # "Day off (substituted …)"
    ("2026-02-16", "2026-02-16 is a Spring Festival holiday"),  # New Year's Eve
    ("2026-04-06", "2026-04-06 is a Qingming Festival holiday"),
    ("2026-05-05", "2026-05-05 is a Labour Day holiday"),
    ("2026-10-07", "2026-10-07 is a National Day holiday"),
    ("2026-03-07", "2026-03-07 is a Saturday"),
])
def test_closed_days_are_explained_in_our_words(day, reason):
    assert SITE.reason_closed(D(day)) == reason


@pytest.mark.parametrize(("day", "reason"), [
    ("2026-09-20", "Sunday 2026-09-20 is a working day: National Day make-up day"),
    ("2026-10-10", "Saturday 2026-10-10 is a working day: National Day make-up day"),
    ("2026-02-14", "Saturday 2026-02-14 is a working day: Spring Festival make-up day"),
    ("2026-02-28", "Saturday 2026-02-28 is a working day: Spring Festival make-up day"),
    ("2026-05-09", "Saturday 2026-05-09 is a working day: Labour Day make-up day"),
    ("2026-01-04", "Sunday 2026-01-04 is a working day: New Year's Day make-up day"),
    ("2026-03-09", None),  # an ordinary Monday needs no word
    ("2026-03-08", None),  # an ordinary Sunday is closed
])
def test_make_up_working_days_are_explained(day, reason):
    assert SITE.reason_open(D(day)) == reason
