"""Free text people type (skip reasons, discontinuation reasons) stays out of feeds altogether,
and no control character reaches any property value (ical-feeds.md rule 15)."""

from __future__ import annotations

import datetime as dt

import pytest

from scheduler.ical import render_calendar, render_header
from scheduler.model import Discontinuation, DoseRecord
from scheduler.subscription import changed_states, feed_events
from tests.conftest import D, schedule_for
from tests.feed_readers import agreed_pairs, check_bytes

CHANGED = dt.datetime(2026, 3, 9, 8, 30, tzinfo=dt.UTC)
HOSTILE = "pneumonitis\x0bgrade 2\x1b[2J\x07 see notes"
PLAIN = "grade 2 pneumonitis"


def feed_with(skip_reason: str, stop_reason: str) -> bytes:
    schedule = schedule_for(
        cryoablation="2026-03-02", recovered="2026-03-09",
        doses=(DoseRecord(1, "given", D("2026-03-09")),
               DoseRecord(2, "skipped", reason=skip_reason)),
        discontinuation=Discontinuation(D("2026-05-10"), stop_reason))
    assert skip_reason in schedule.visit("C2D1").rule.anchor  # the engine quotes it
    states = {s.visit_id: s for s in changed_states({}, schedule, CHANGED)}
    return render_calendar("NCT07064876 ZS-009",
                           feed_events(schedule, states, "participant-9", "ZS-009"),
                           source="https://schedule.example.org/feeds/x.ics")


@pytest.mark.parametrize("reason", [HOSTILE, PLAIN], ids=["control-characters", "plain"])
def test_skip_and_discontinuation_reasons_are_left_out_of_the_feed(reason):
    data = feed_with(reason, reason + " (stopped)")
    unfolded = data.replace(b"\r\n ", b"").decode()
    for fragment in ("pneumonitis", "see notes", "stopped", "\x0b", "\x1b", "\x07"):
        assert fragment not in unfolded
    assert ("\r\nDESCRIPTION:Serplulimab 300 mg IV\\, cycle 2\\nwindow 2026-03-27 to "
            "2026-04-02\\nwhy: cycle 1 given 2026-03-09 + 21 days\\; skipped (rule "
            "skipped-dose\\, assumed)\\nstatus: skipped\\nsubject: ZS-009\r\n") in unfolded
    check_bytes(data)
    assert len(agreed_pairs(data)) == data.count(b"BEGIN:VEVENT")


def test_control_characters_are_removed_from_calendar_names():
    header = render_header("NCT07064876\x1b[31m ZS\x07-001\x0b")
    assert b"\r\nNAME:NCT07064876[31m ZS-001\r\n" in header
    assert b"\r\nX-WR-CALNAME:NCT07064876[31m ZS-001\r\n" in header


def test_the_feed_carries_source_and_no_method():
    header = render_header("NCT07064876 ZS-001", source="https://schedule.example.org/f.ics")
    lines = header.split(b"\r\n")
    assert b"SOURCE;VALUE=URI:https://schedule.example.org/f.ics" in lines
    assert not [line for line in lines if line.startswith(b"METHOD")]
