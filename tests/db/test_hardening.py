"""Hostile and unlucky requests on every configured database: each answer is a 4xx problem the
client can act on (or a 503 while the database is away), never a 5xx of the service's own."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections import Counter

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from api import create_app
from api.cli import main
from api.http.context import container
from api.persistence.records import FeedToken
from tests.db.conftest import bearer

ENROL = {"subject_code": "ZS-001", "cryoablation_date": "2026-03-02"}
PROBLEM = "application/problem+json"




def events_url(participant):
    return f"/v1/participants/{participant['id']}/events"


def problem_of(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == PROBLEM
    return response.get_json()


def forged_cursor(when: str) -> str:
    raw = json.dumps([when, "00000000-0000-4000-8000-000000000000"]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --- item 3: no 5xx from input ---------------------------------------------------------------

def test_an_if_match_of_5000_digits_names_no_version_so_412(client, writer, participant):
    response = client.patch(f"/v1/participants/{participant['id']}",
                            json={"childbearing_potential": True, "reason": "CRF"},
                            headers={**writer, "If-Match": '"v' + "9" * 5000 + '"'})
    problem_of(response, 412)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_a_forged_cursor_at_the_edge_of_time_is_422(client, writer, participant, when):
    response = client.get(f"/v1/participants?cursor={forged_cursor(when)}", headers=writer)
    assert list(problem_of(response, 422)["errors"]) == ["cursor"]


def test_a_cursor_naming_a_participant_id_that_is_no_uuid_is_422(client, writer, participant):
    raw = json.dumps(["2026-01-01T00:00:00+00:00", "x\x00y"]).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = client.get(f"/v1/participants?cursor={cursor}", headers=writer)
    assert list(problem_of(response, 422)["errors"]) == ["cursor"]


def test_nul_in_a_path_id_is_404(client, writer):
    problem_of(client.get("/v1/participants/ab%00cd", headers=writer), 404)
    problem_of(client.post("/v1/participants/ab%00cd/events", json={
        "type": "recovery_confirmed", "date": "2026-03-09"}, headers=writer), 404)


def test_nul_in_a_feed_token_is_404(client):
    problem_of(client.get("/feeds/abc%00def.xyz.ics"), 404)
    problem_of(client.get("/feeds/site/abc%00def.xyz.ics"), 404)


def test_nul_in_a_cursor_is_422(client, writer):
    response = client.get("/v1/participants?cursor=ab%00cd", headers=writer)
    assert list(problem_of(response, 422)["errors"]) == ["cursor"]


def test_nul_in_a_skip_reason_is_422_naming_the_field(client, writer, participant):
    client.post(events_url(participant), json={"type": "recovery_confirmed",
                                               "date": "2026-03-09"}, headers=writer)
    response = client.post(events_url(participant), json={
        "type": "dose_skipped", "cycle": 1, "reason": "fever\x00"}, headers=writer)
    assert problem_of(response, 422)["errors"] == {
        "reason": ["Contains the control character U+0000; only tab and newline allowed."]}


def test_nul_in_a_patch_reason_is_422_naming_the_field(client, writer, participant):
    response = client.patch(f"/v1/participants/{participant['id']}", json={
        "childbearing_potential": True, "reason": "CRF\x00"},
        headers={**writer, "If-Match": '"v1"'})
    assert list(problem_of(response, 422)["errors"]) == ["reason"]


def test_nul_in_an_api_key_is_401(client):
    problem_of(client.get("/v1/participants", headers=bearer("ts_ab\x00cd_x")), 401)


# --- item 4: control characters in text a person types ----------------------------------------

@pytest.mark.parametrize("character", ["\x0b", "\x1b", "\x07", "\r", "\x7f"])
def test_a_control_character_in_a_reason_is_422_naming_the_field(client, writer, participant,
                                                                  character):
    client.post(events_url(participant), json={"type": "recovery_confirmed",
                                               "date": "2026-03-09"}, headers=writer)
    response = client.post(events_url(participant), json={
        "type": "dose_skipped", "cycle": 1, "reason": f"fever{character}"}, headers=writer)
    assert list(problem_of(response, 422)["errors"]) == ["reason"]


def test_tab_and_newline_in_a_reason_are_kept(client, writer, participant):
    client.post(events_url(participant), json={"type": "recovery_confirmed",
                                               "date": "2026-03-09"}, headers=writer)
    response = client.post(events_url(participant), json={
        "type": "dose_skipped", "cycle": 1, "reason": "fever\tday 1\nday 2"}, headers=writer)
    assert response.status_code == 201
    assert response.get_json()["event"]["reason"] == "fever\tday 1\nday 2"


def test_a_control_character_in_a_complication_description_is_422(client, writer,
                                                                    participant):
    response = client.post(events_url(participant), json={
        "type": "complication", "date": "2026-03-05", "description": "bleed\x1b[31m"},
        headers=writer)
    assert list(problem_of(response, 422)["errors"]) == ["description"]


# --- item 5: a pattern guards the whole value -------------------------------------------------

def test_a_subject_code_with_a_trailing_newline_is_refused(client, writer):
    assert client.post("/v1/participants", json={**ENROL, "subject_code": "ZS-DUP"},
                       headers=writer).status_code == 201
    response = client.post("/v1/participants", json={**ENROL, "subject_code": "ZS-DUP\n"},
                           headers=writer)
    assert list(problem_of(response, 422)["errors"]) == ["subject_code"]


# --- items 6 and 8: idempotency -----------------------------------------------------------------

def test_twenty_concurrent_retries_with_one_key_all_get_the_first_answer(db_app, keys):
    writer = bearer(keys["write"])
    setup = db_app.test_client()
    participant = setup.post("/v1/participants", json=ENROL, headers=writer).get_json()
    setup.post(events_url(participant), json={"type": "recovery_confirmed",
                                              "date": "2026-03-09"}, headers=writer)
    body = {"type": "dose_given", "cycle": 1, "date": "2026-03-09"}
    headers = {**writer, "Idempotency-Key": "dose-1-race"}
    answers: list[tuple[int, str, bool]] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def retry() -> None:
        client = db_app.test_client()
        start.wait()
        response = client.post(events_url(participant), json=body, headers=headers)
        with lock:
            answers.append((response.status_code, response.get_json()["event"]["id"]
                            if response.status_code == 201 else "",
                            response.headers.get("Idempotent-Replayed") == "true"))

    threads = [threading.Thread(target=retry) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert Counter(status for status, _, _ in answers) == {201: 20}
    assert len({event_id for _, event_id, _ in answers}) == 1
    assert sum(replayed for _, _, replayed in answers) == 19
    history = setup.get(events_url(participant), headers=writer).get_json()["items"]
    assert [e["type"] for e in history] == ["recovery_confirmed", "dose_given"]


def test_a_replayed_enrolment_answers_the_feed_the_first_answer_gave(client, writer):
    headers = {**writer, "Idempotency-Key": "enrol-zs-010"}
    body = {**ENROL, "subject_code": "ZS-010"}
    first = client.post("/v1/participants", json=body, headers=headers)
    again = client.post("/v1/participants", json=body, headers=headers)
    assert first.get_json()["feed"] is not None
    assert first.get_json()["feed"]["https"].endswith(".ics")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()


# --- item 17: a correction says why and changes something -------------------------------------

def test_patch_without_a_reason_is_422(client, writer, participant):
    response = client.patch(f"/v1/participants/{participant['id']}",
                            json={"childbearing_potential": True},
                            headers={**writer, "If-Match": '"v1"'})
    assert problem_of(response, 422)["errors"] == {"reason": ["Missing data for required field."]}


def test_patch_that_changes_nothing_is_422_and_records_nothing(client, writer, participant):
    path = f"/v1/participants/{participant['id']}"
    response = client.patch(path, json={"cryoablation_date": "2026-03-02", "reason": "CRF"},
                            headers={**writer, "If-Match": '"v1"'})
    assert problem_of(response, 422)["detail"] == (
        "Every field sent already has that value: there is nothing to correct.")
    assert client.get(path, headers=writer).headers["ETag"] == '"v1"'
    assert client.get(f"{path}/events", headers=writer).get_json()["items"] == []


def test_list_api_keys_shows_names_scopes_and_times_never_secrets(db_app, keys, monkeypatch):
    container(db_app).api_keys.revoke("read-key")
    monkeypatch.setattr("api.cli._container", lambda: container(db_app))
    result = CliRunner().invoke(main, ["list-api-keys"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "SCOPE", "CREATED", "REVOKED"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == ["admin-key", "read-key", "write-key"]
    assert rows["read-key"][1] == "read" and rows["read-key"][-1].endswith("Z")
    assert rows["write-key"][1] == "write" and rows["write-key"][-1] == "-"
    assert all(secret not in result.output for secret in keys.values())


# --- item 10: the database away ----------------------------------------------------------------

def test_database_away_answers_503_with_retry_after(database_url, tmp_path, caplog):
    if database_url.startswith("sqlite"):
        away = f"sqlite:///{tmp_path / 'no-such-folder' / 'x.sqlite3'}"
    else:
        away = sa.engine.make_url(database_url).set(host="127.0.0.1", port=1).render_as_string(
            hide_password=False)
    app = create_app({"DATABASE_URL": away, "TESTING": True, "SITE_FEED_DIR": str(tmp_path),
                      "FEED_SECRET": "test-feed-secret"})
    client = app.test_client()
    for response in (client.get("/v1/participants", headers=bearer("ts_0123456789abcdef_x")),
                     client.get("/feeds/0123456789abcdef0123456789abcdef.xyz.ics"),
                     client.get("/feeds/site/0123456789abcdef0123456789abcdef.xyz.ics")):
        problem_of(response, 503)
        assert response.headers["Retry-After"] == "5"
    container(app).engine.dispose()


def test_a_failed_statement_keeps_its_free_text_out_of_the_log(db_app, client, writer,
                                                               participant, caplog,
                                                               monkeypatch):
    from api.persistence import sql

    def failing_append(self, participant_id, event):
        self.connection.execute(sa.text("SELECT reason FROM no_such_table WHERE reason = :r"),
                                {"r": event.reason})

    monkeypatch.setattr(sql.SqlParticipants, "append", failing_append)
    caplog.set_level(logging.DEBUG)
    client.post(events_url(participant), json={"type": "recovery_confirmed",
                                               "date": "2026-03-09"}, headers=writer)
    response = client.post(events_url(participant), json={
        "type": "dose_skipped", "cycle": 1, "reason": "SECRET-FREE-TEXT"}, headers=writer)
    assert response.status_code in (500, 503)
    assert response.content_type == PROBLEM
    assert "no_such_table" in caplog.text or "OperationalError" in caplog.text
    assert "SECRET-FREE-TEXT" not in caplog.text


# --- item 1: one live token per feed ------------------------------------------------------------

def test_eight_concurrent_site_rotations_leave_one_live_token(db_app, keys):
    admin = bearer(keys["admin"])
    links: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def rotate() -> None:
        client = db_app.test_client()
        start.wait()
        response = client.post("/v1/site/feed-token", headers=admin)
        with lock:
            links.append(response.get_json()["feed"]["https"] if response.status_code == 200
                         else str(response.status_code))

    threads = [threading.Thread(target=rotate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(links) == 8 and all(link.endswith(".ics") for link in links), links
    with container(db_app).engine.connect() as connection:
        live = connection.execute(sa.text(
            "SELECT count(*) FROM feed_tokens WHERE kind = 'site' AND revoked_at IS NULL"
        )).scalar_one()
    assert live == 1
    client = db_app.test_client()
    statuses = []
    for link in links:
        with client.get("/" + link.split("://", 1)[1].split("/", 1)[1]) as response:
            statuses.append(response.status_code)
    assert sorted(statuses) == [200] + [404] * 7


@pytest.mark.parametrize("participant_feed", [False, True])
def test_the_database_refuses_a_second_live_token_for_one_feed(db_app, participant,
                                                               participant_feed):
    import datetime as dt

    owner = participant["id"] if participant_feed else None
    kind = "participant" if participant_feed else "site"
    when = dt.datetime.now(dt.UTC)
    units = container(db_app).units
    with units() as uow:
        if not participant_feed:
            uow.feed_tokens.add(FeedToken("a" * 32, kind, owner, "0" * 64, when))
            uow.commit()
    with units() as uow, pytest.raises(sa.exc.IntegrityError):
        uow.feed_tokens.add(FeedToken("b" * 32, kind, owner, "0" * 64, when))


# --- item 16: messages a person can act on -----------------------------------------------------

def test_required_for_an_event_type_only_when_the_field_is_missing(client, writer, participant):
    bad_date = client.post(events_url(participant), json={
        "type": "dose_given", "cycle": 1, "date": "09/03/2026"}, headers=writer)
    assert problem_of(bad_date, 422)["errors"] == {
        "date": ['"09/03/2026" is not a date in the form YYYY-MM-DD.']}
    missing = client.post(events_url(participant), json={"type": "dose_given", "cycle": 1},
                          headers=writer)
    assert problem_of(missing, 422)["errors"] == {"date": ["Required for a dose_given event."]}


@pytest.mark.parametrize("text", ["20260302", "2026-W10-1"])
def test_an_enrolment_date_in_another_iso_form_is_422(client, writer, text):
    response = client.post("/v1/participants", json={**ENROL, "cryoablation_date": text},
                           headers=writer)
    assert problem_of(response, 422)["errors"] == {
        "cryoablation_date": [f'"{text}" is not a date in the form YYYY-MM-DD.']}


def test_a_duplicate_key_in_an_event_is_400_and_records_nothing(client, writer, participant):
    response = client.post(events_url(participant), data=(
        '{"type": "recovery_confirmed", "date": "2026-03-09", "date": "2026-03-10"}'),
        headers={**writer, "Content-Type": "application/json"})
    assert problem_of(response, 400)["detail"] == 'The key "date" appears twice in one object.'
    assert client.get(events_url(participant), headers=writer).get_json()["items"] == []
