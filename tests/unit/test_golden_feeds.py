"""Feeds for two participants against reviewed golden files (tests/golden/*.ics)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from scheduler.ical import render_calendar, render_event
from scheduler.subscription import changed_states, feed_events
from tests.feed_readers import agreed_pairs, check_bytes
from tests.unit.test_golden_schedules import SCENARIOS, schedule_for

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CHANGED = dt.datetime(2026, 3, 9, 8, 30, tzinfo=dt.UTC)
PARTICIPANTS = {"on-time": "ZS-001", "late-skipped-discontinued": "ZS-002"}


def rendered(name: str) -> bytes:
    schedule = schedule_for(**SCENARIOS[name])
    states = {s.visit_id: s for s in changed_states({}, schedule, CHANGED)}
    events = feed_events(schedule, states, f"golden/{name}", PARTICIPANTS[name])
    return render_calendar(f"NCT07064876 {PARTICIPANTS[name]}", events,
                           source=f"https://schedule.example.org/feeds/golden-{name}.ics")


@pytest.mark.parametrize("name", sorted(PARTICIPANTS))
def test_feed_matches_golden_file(name):
    path = GOLDEN / f"feed-{name}.ics"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_bytes(rendered(name))
    assert rendered(name) == path.read_bytes()


@pytest.mark.parametrize("name", sorted(PARTICIPANTS))
def test_the_same_schedule_renders_byte_identical_twice(name):
    first, second = rendered(name), rendered(name)
    assert first == second
    check_bytes(first)
    assert len(agreed_pairs(first)) == first.count(b"BEGIN:VEVENT")


def test_feed_events_refuse_stale_states():
    schedule = schedule_for(**SCENARIOS["on-time"])
    with pytest.raises(KeyError):
        feed_events(schedule, {}, "k", None)


def test_sequence_counts_changes_and_returns():
    on_time = schedule_for(**SCENARIOS["on-time"])
    later = schedule_for(**SCENARIOS["late-skipped-discontinued"])
    first = {s.visit_id: s for s in changed_states({}, on_time, CHANGED)}
    moved = {s.visit_id: s for s in changed_states(first, later, CHANGED + dt.timedelta(1))}
    assert moved["C3D1"].sequence == 1 and moved["C3D1"].date == dt.date(2026, 4, 24)
    assert moved["C4D1"].present is False and moved["C4D1"].sequence == 1
    assert "CRYO" not in moved
    back = changed_states({**first, **moved}, on_time, CHANGED + dt.timedelta(2))
    assert {s.visit_id: s.sequence for s in back}["C4D1"] == 2


def test_direct_serializer_matches_icalendar_for_the_golden_participants():
    from tests.ical_oracle import render_event_with_icalendar

    for name in PARTICIPANTS:
        schedule = schedule_for(**SCENARIOS[name])
        states = {s.visit_id: s for s in changed_states({}, schedule, CHANGED)}
        for event in feed_events(schedule, states, name, PARTICIPANTS[name]):
            assert render_event(event) == render_event_with_icalendar(event), event.visit.id
