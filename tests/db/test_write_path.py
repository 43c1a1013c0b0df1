"""The write path's shortcuts change nothing stored: a write re-renders only the site-feed events
it changed, reusing the stored bytes of the others, and on PostgreSQL sends its writes as one
statement (api/persistence/batch.py). Checked against a full render after every write."""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import replace

import sqlalchemy as sa

from api.http.context import container
from api.usecases.feeds import SiteEventsWriter, reusable, stored_events
from scheduler.ical import render_event
from scheduler.subscription import VisitState, feed_events

HISTORY = (
    {"type": "recovery_confirmed", "date": "2026-03-09"},
    {"type": "dose_given", "cycle": 1, "date": "2026-03-09"},  # on its planned day: few change
    {"type": "dose_given", "cycle": 2, "date": "2026-04-03"},  # late: every later visit moves
    {"type": "dose_skipped", "cycle": 3, "reason": "grade 2 pneumonitis"},
    {"type": "discontinued", "date": "2026-05-01", "reason": "toxicity"},
)


def full_render(app, participant_id: str) -> tuple[int, str, bytes]:
    """What the stored row must be: the participant's version, the protocol tag and every
    event rendered afresh from the stored visit states."""
    services = container(app)
    participants = services.participants
    with participants.unit(readonly=True) as uow:
        participant = uow.participants.get(participant_id)
        assert participant is not None
        history = uow.participants.events(participant_id)
        states = uow.visit_states.of(participant_id)
    schedule = participants.recorded_schedule(participant, history, services.clock.today())
    events = feed_events(schedule, states, f"site/{participant_id}",
                         participant.enrolment.subject_code)
    return participant.version, services.feeds.protocol_tag, \
        b"".join(render_event(event) for event in events)


def stored(app, participant_id: str) -> tuple[int, str, bytes]:
    with container(app).participants.unit(readonly=True) as uow:
        version, tag, body = uow.rendered_feeds.of_many([participant_id])[participant_id]
    return version, tag, zlib.decompress(body)


def test_each_write_stores_what_a_full_render_makes(db_app, client, writer):
    participant = client.post("/v1/participants", json={
        "subject_code": "WP-001", "cryoablation_date": "2026-03-02",
        "childbearing_potential": True}, headers=writer).get_json()
    events = f"/v1/participants/{participant['id']}/events"
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    engine = container(db_app).engine
    reused = 0
    for body in HISTORY:
        before = stored(db_app, participant["id"])[2]
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            response = client.post(events, json=body, headers=writer)
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert response.status_code == 201, response.get_json()
        assert stored(db_app, participant["id"]) == full_render(db_app, participant["id"])
        after = stored_events(stored(db_app, participant["id"])[2])
        reused += sum(chunk in before for chunk in after.values())
    # The dose on its planned day left most events as they were: their bytes were kept.
    assert reused > 0
    if engine.dialect.name == "postgresql":
        # Per write, three statements: the lock (with the rendered events and the active
        # webhook endpoints), the history with the visit states, and every write as one.
        assert len(statements) == 3 * len(HISTORY), statements
        assert sum(s.startswith("WITH w0 AS (INSERT INTO events") for s in statements) \
            == len(HISTORY)


def test_a_stored_event_is_reused_only_when_it_renders_the_same(db_app, client, writer):
    participant = client.post("/v1/participants", json={
        "subject_code": "WP-002", "cryoablation_date": "2026-03-02",
        "childbearing_potential": True}, headers=writer).get_json()
    services = container(db_app)
    with services.participants.unit(readonly=True) as uow:
        found = uow.participants.get(participant["id"])
        states = uow.visit_states.of(participant["id"])
    assert found is not None
    schedule = services.participants.recorded_schedule(found, [], services.clock.today())
    events = feed_events(schedule, states, f"site/{found.id}", found.enrolment.subject_code)
    first = events[0]
    rendered = render_event(first)
    assert reusable(first, rendered) == rendered
    assert reusable(first, None) is None
    # Another sequence, status or subject code is another event.
    for changed in (replace(first, sequence=first.sequence + 1),
                    replace(first, subject_code="WP-999"),
                    replace(first, visit=replace(first.visit, status="done"))):
        assert reusable(changed, rendered) is None
        assert render_event(changed) != rendered
    assert isinstance(SiteEventsWriter(services.feeds.protocol_tag), SiteEventsWriter)


def test_visit_states_store_any_text_as_given(db_app, client, writer):
    """The PostgreSQL upsert sends each column as an array literal (sql._array_literal): quotes,
    backslashes, commas, braces, spaces, the word NULL and None all come back as they were."""
    participant = client.post("/v1/participants", json={
        "subject_code": "WP-003", "cryoablation_date": "2026-03-02",
        "childbearing_potential": False}, headers=writer).get_json()
    units = container(db_app).participants.units
    when = dt.datetime(2026, 3, 2, 9, 30, 0, 123456, tzinfo=dt.UTC)
    odd = [VisitState(f"X-{n}", dt.date(2026, 3, n), None if n % 2 else dt.date(2026, 3, 1),
                      dt.date(2026, 3, 28), "planned", n % 3 != 0, n, when, kind, title, rule)
           for n, (kind, title, rule) in enumerate((
               ("visit", 'say "hi", \\ then {braces}', " spaced "), ("NULL", "NULL", None),
               (None, None, "r,1"), ("infusion", "é\ttab", "")), start=1)]
    with units() as uow:
        uow.visit_states.save(participant["id"], odd, set())
        uow.commit()
    with units(readonly=True) as uow:
        stored = uow.visit_states.of(participant["id"])
    assert [stored[state.visit_id] for state in odd] == odd
