"""The direct VEVENT serializer writes exactly what icalendar writes, for any schedule and any
text (escapes, folding across UTF-8 sequences)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.ical import UID_NAMESPACE, fold, render_event, visit_uid
from scheduler.subscription import changed_states, feed_events
from tests.ical_oracle import render_event_with_icalendar
from tests.unit.test_properties import compute, participants

STAMP = dt.datetime(2026, 3, 9, 8, 30, tzinfo=dt.UTC)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(participants(), st.text(max_size=200), st.text(alphabet="ZS-_09", max_size=32))
def test_serializer_matches_icalendar(facts, title, code):
    schedule = compute(facts)
    states = {s.visit_id: s for s in changed_states({}, schedule, STAMP)}
    for event in feed_events(schedule, states, "key", code or None)[:6]:
        event = replace(event, visit=replace(event.visit, title=title or event.visit.title))
        assert render_event(event) == render_event_with_icalendar(event)


@given(st.text(max_size=400))
def test_folded_lines_are_at_most_75_octets_and_unfold_to_the_line(text):
    line = "DESCRIPTION:" + text.replace("\r", "").replace("\n", "")
    folded = fold(line)
    assert all(len(part.encode()) <= 75 for part in folded.split("\r\n"))
    assert folded.replace("\r\n ", "") == line


@given(st.text(max_size=60), st.text(max_size=20))
def test_visit_uids_are_the_rfc_name_based_uuids_of_their_calendar_and_visit(key, visit_id):
    # The UID is written without building a uuid.UUID (it is made for every visit of every
    # write); it must stay exactly the version-5 UUID of "<calendar>/<visit>", or every
    # subscriber would see each visit deleted and added again.
    expected = str(uuid.uuid5(UID_NAMESPACE, f"{key}/{visit_id}"))
    assert visit_uid(key, visit_id) == expected
