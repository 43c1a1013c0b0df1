"""Kill the server while it records; after a restart nothing acknowledged is lost, nothing is
half-written, and the request that was in flight resolves exactly once by its Idempotency-Key."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import sqlalchemy as sa

from api.persistence.sql import SqlUnits
from api.usecases.api_keys import ApiKeys
from tests.servers import start_gunicorn


class Server:
    def __init__(self, database_url: str) -> None:
        self.process, self.base = start_gunicorn({"DATABASE_URL": database_url},
                                                 subprocess.DEVNULL)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def call(base: str, key: str, path: str, body: dict, idempotency_key: str) -> int:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers={
        "content-type": "application/json", "authorization": f"Bearer {key}",
        "idempotency-key": idempotency_key})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return int(error.code)


def plan(count: int):
    """Requests that record participants' whole treatment, each with its own key."""
    for n in range(count):
        code = f"ZS-{n:04d}"
        yield ("enrol", code, {"subject_code": code, "cryoablation_date": "2026-03-02"})
        yield ("event", code, {"type": "recovery_confirmed", "date": "2026-03-09"})
        for cycle in range(1, 7):
            day = dt.date(2026, 3, 9) + dt.timedelta(days=21 * (cycle - 1))
            yield ("event", code, {"type": "dose_given", "cycle": cycle,
                                   "date": day.isoformat()})


def test_killing_the_server_mid_recording_loses_and_half_writes_nothing(database_url):
    engine = sa.create_engine(database_url)
    key = ApiKeys(SqlUnits(engine)).create("crash-test", "write")
    ids: dict[str, str] = {}
    acknowledged: list[str] = []
    in_flight: list[tuple[str, str, dict, str]] = []
    server = Server(database_url)
    stop = threading.Event()

    def send(kind: str, code: str, body: dict, idem: str, base: str) -> int:
        if kind == "enrol":
            return call(base, key, "/v1/participants", body, idem)
        return call(base, key, f"/v1/participants/{ids[code]}/events", body, idem)

    def recorder() -> None:
        for index, (kind, code, body) in enumerate(plan(400)):
            if stop.is_set():
                return
            idem = f"req-{index}"
            try:
                status = send(kind, code, body, idem, server.base)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                in_flight.append((kind, code, body, idem))
                return
            assert status == 201, (kind, body, status)
            if kind == "enrol":
                with engine.connect() as connection:
                    ids[code] = connection.execute(sa.text(
                        "SELECT id FROM participants WHERE subject_code = :c"), {"c": code}
                    ).scalar_one()
            acknowledged.append(idem)

    thread = threading.Thread(target=recorder)
    thread.start()
    # Kill once a good number of writes is acknowledged, however slow the machine is: the
    # test is about what survives a kill, not about how fast the server records.
    deadline = time.monotonic() + 60
    while len(acknowledged) <= 20 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()
    thread.join(timeout=30)
    stop.set()
    assert len(acknowledged) > 20, "the server died before it recorded anything"
    assert len(in_flight) == 1, "the kill must cut one request off"

    restarted = Server(database_url)
    try:
        # The request cut off by the kill: retrying it with its key records it exactly once.
        for kind, code, body, idem in in_flight:
            assert send(kind, code, body, idem, restarted.base) == 201
            assert send(kind, code, body, idem, restarted.base) == 201
    finally:
        restarted.kill()

    with engine.connect() as connection:
        stored_keys = {row[0] for row in connection.execute(sa.text(
            "SELECT key FROM idempotency_keys"))}
        participants = connection.execute(sa.text(
            "SELECT id, version FROM participants")).all()
        for participant_id, version in participants:
            seqs = [row[0] for row in connection.execute(sa.text(
                "SELECT seq FROM events WHERE participant_id = :p ORDER BY seq"),
                {"p": participant_id})]
            assert seqs == list(range(1, len(seqs) + 1))
            assert version == 1 + len(seqs)  # the row and its events moved together
        events = connection.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
        if engine.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    engine.dispose()
    expected = set(acknowledged) | {idem for *_, idem in in_flight}
    assert stored_keys == expected  # every acknowledged write kept, nothing extra
    assert len(participants) + events == len(expected)
