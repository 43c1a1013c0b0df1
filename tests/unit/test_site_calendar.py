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
