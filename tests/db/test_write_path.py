"""The write path's shortcuts change nothing stored: a write re-renders only the site-feed events
it changed, reusing the stored bytes of the others, and on PostgreSQL sends its writes as one
statement (api/persistence/batch.py). Checked against a full render after every write."""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import replace

import pytest
import sqlalchemy as sa

from api.http.context import container
from api.persistence.batch import DriverStatement, on_driver
from api.usecases.feeds import stored_events
from scheduler.ical import event_mark, render_event
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


def stored_marks(app, participant_id: str) -> str:
    with container(app).engine.connect() as connection:
        return connection.execute(sa.text(
            "SELECT marks FROM rendered_feeds WHERE participant_id = :pid"),
            {"pid": participant_id}).scalar_one()


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
        after = stored_events(stored(db_app, participant["id"])[2],
                              stored_marks(db_app, participant["id"]))
        assert b"".join(chunk for _, chunk in after.values()) == stored(
            db_app, participant["id"])[2]
        reused += sum(chunk in before for _, chunk in after.values())
    # The dose on its planned day left most events as they were: their bytes were kept.
    assert reused > 0
    if engine.dialect.name == "postgresql":
        # Per write, three statements: the lock (with the rendered events and the active
        # webhook endpoints), the history with the visit states, and every write as one.
        assert len(statements) == 3 * len(HISTORY), statements
        assert sum(s.startswith("WITH w0 AS (INSERT INTO events") for s in statements) \
            == len(HISTORY)


def test_an_event_mark_changes_with_everything_rendering_reads(db_app, client, writer):
    """A stored event is reused when its mark is unchanged, so every input of `render_event`
    must change the mark; and a block stored without marks (before migration 0009) is
    rendered afresh by the next write."""
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
    first = next(event for event in events if event.visit.window is not None)
    visit, rule = first.visit, first.visit.rule
    day = dt.timedelta(days=1)
    changes = [
        replace(first, uid=first.uid + "x"), replace(first, sequence=first.sequence + 1),
        replace(first, stamp=first.stamp + dt.timedelta(seconds=1)),
        replace(first, subject_code="WP-999"), replace(first, subject_code=None),
        *(replace(first, visit=replace(visit, **change)) for change in (
            {"id": visit.id + "x"}, {"kind": "imaging"}, {"title": visit.title + "."},
            {"date": visit.date + day}, {"status": "done"},
            {"window": replace(visit.window, earliest=visit.window.earliest - day)},
            {"window": replace(visit.window, latest=visit.window.latest + day)},
            {"window": None})),
        *(replace(first, visit=replace(visit, rule=replace(rule, **change))) for change in (
            {"id": rule.id + "x"}, {"source": rule.source + "."}, {"anchor": rule.anchor + "."},
            {"shifted_from": visit.date, "shift_reason": "a holiday"},
            {"shift_reason": "a holiday"})),
    ]
    for changed in changes:
        assert event_mark(changed) != event_mark(first), changed
        # Not every change shows in the bytes (a shift reason without a shifted date is not
        # written), but every change that does is seen by the mark.
    assert sum(render_event(changed) != render_event(first) for changed in changes) \
        >= len(changes) - 1
    assert event_mark(replace(first)) == event_mark(first)

    with container(db_app).engine.begin() as connection:
        connection.execute(sa.text("UPDATE rendered_feeds SET marks = NULL, body = :junk "
                                   "WHERE participant_id = :pid"),
                           {"pid": found.id, "junk": zlib.compress(b"BEGIN:VEVENT\r\n")})
    response = client.post(f"/v1/participants/{found.id}/events", headers=writer,
                           json={"type": "recovery_confirmed", "date": "2026-03-09"})
    assert response.status_code == 201, response.get_json()
    assert stored(db_app, found.id) == full_render(db_app, found.id)


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


def test_the_write_paths_direct_statements_fail_as_sqlalchemys_and_drop_a_lost_connection(
        database_url, db_app, client, writer):
    """On PostgreSQL a write's three statements run on psycopg directly (batch.on_driver): a
    failure must still be SQLAlchemy's exception (which the HTTP layer answers), and a
    connection the server ended must leave the pool, so the next write succeeds."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the direct statements are PostgreSQL's")
    participant = client.post("/v1/participants", json={
        "subject_code": "WP-004", "cryoablation_date": "2026-03-02"}, headers=writer).get_json()
    engine = container(db_app).engine
    with engine.connect() as connection, pytest.raises(sa.exc.ProgrammingError):
        on_driver(connection, DriverStatement("SELECT no_such_column FROM participants", ()), {})
    with engine.connect() as connection, pytest.raises(sa.exc.IntegrityError):
        on_driver(connection, DriverStatement("INSERT INTO participants (id) VALUES ($1)",
                                              ("pid",)), {"pid": participant["id"]})
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with admin.connect() as other:
                other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
            with pytest.raises(sa.exc.OperationalError) as lost:
                on_driver(connection, DriverStatement("SELECT 1", ()), {})
            assert lost.value.connection_invalidated
    finally:
        admin.dispose()
    response = client.post(f"/v1/participants/{participant['id']}/events", headers=writer,
                           json={"type": "recovery_confirmed", "date": "2026-03-09"})
    assert response.status_code == 201, response.get_json()


def test_a_connection_the_server_ended_is_replaced_or_answered_503_never_500(
        end_connections, db_app, client, writer, monkeypatch):
    """The pool pings a connection that sat idle over a second before handing it out
    (database._ping_when_idle): after a server restart the next write gets a new one. One
    handed back within that second is not pinged: if the server ended it meanwhile, the write
    using it is answered 503 (problem+json, nothing recorded) and the pool drops it."""
    from api.persistence import database

    participant = client.post("/v1/participants", json={
        "subject_code": "WP-005", "cryoablation_date": "2026-03-02"}, headers=writer).get_json()
    events_path = f"/v1/participants/{participant['id']}/events"

    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert end_connections()
    answer = client.post(events_path, headers=writer,
                         json={"type": "recovery_confirmed", "date": "2026-03-09"})
    assert answer.status_code == 201, answer.get_json()

    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 3600.0)
    assert end_connections()
    dose = {"type": "dose_given", "cycle": 1, "date": "2026-03-16"}
    answers = [client.post(events_path, headers=writer, json=dose) for _ in range(2)]
    assert [a.status_code for a in answers] in ([503, 201], [201, 409]), \
        [a.get_json() for a in answers]
    if answers[0].status_code == 503:
        assert answers[0].content_type == "application/problem+json"
    history = client.get(f"/v1/participants/{participant['id']}/events",
                         headers=writer).get_json()
    assert [e["type"] for e in history["items"]].count("dose_given") == 1
