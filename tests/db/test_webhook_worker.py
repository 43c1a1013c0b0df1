"""The `trial-schedule worker` process: a kill -9 in the middle of a delivery loses nothing,
and SIGTERM stops it cleanly. On PostgreSQL a write wakes it by NOTIFY, well before its poll."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from tests.db.conftest import ENROL, SITE_TODAY
from tests.db.test_webhooks import deliveries, register
from tests.servers import ROOT
from tests.webhook_receiver import receiving


def start_worker(database_url: str, poll: float, log) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": database_url,
           "TRIAL_SCHEDULE_FEED_SECRET": "test-feed-secret", "TRIAL_SCHEDULE_TODAY": SITE_TODAY,
           "TRIAL_SCHEDULE_WEBHOOK_LEASE_SECONDS": "1", "TRIAL_SCHEDULE_WEBHOOK_NICE": "0",
           "TRIAL_SCHEDULE_WEBHOOK_TIMEOUT_SECONDS": "20",
           "TRIAL_SCHEDULE_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
           "TRIAL_SCHEDULE_WEBHOOK_POLL_SECONDS": str(poll)}
    return subprocess.Popen([sys.executable, "-m", "api.cli", "worker"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(check, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_worker_killed_mid_delivery_loses_nothing(client, database_url, keys, tmp_path):
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    writer = {"Authorization": f"Bearer {keys['write']}"}
    postgresql = database_url.startswith("postgresql")
    # On PostgreSQL a long poll: what arrives sooner was woken by NOTIFY.
    poll = 2.0 if postgresql else 0.05
    with (tmp_path / "worker.log").open("wb") as log, receiving() as receiver:
        url, inbox = receiver.inbox("slow", hold=threading.Event())
        hold = inbox.hold
        # (The worker also announces the overdue visits of these March enrolments; not here.)
        endpoint_id = register(client, admin, inbox, url, ["participant.enrolled"])
        for n in range(3):
            answer = client.post("/v1/participants", headers=writer,
                                 json={**ENROL, "subject_code": f"ZS-00{n}"})
            assert answer.status_code == 201
        first = start_worker(database_url, poll, log)
        try:
            assert inbox.arrived.wait(30), (tmp_path / "worker.log").read_text()
            os.killpg(first.pid, signal.SIGKILL)  # in the middle of the delivery
            first.wait(10)
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
        assert hold is not None
        hold.set()  # the receiver's answer goes nowhere: the worker is gone
        assert inbox.accepted == {}
        leased = deliveries(client, admin, endpoint_id)
        assert len(leased) == 3 and {d["state"] for d in leased} == {"pending"}
        assert max(d["attempts"] for d in leased) == 1

        second = start_worker(database_url, poll, log)
        try:
            wait_for(lambda: len(deliveries(client, admin, endpoint_id, "delivered")) == 3)
            assert sorted(inbox.accepted) == sorted(d["webhook_id"] for d in leased)
            assert not inbox.repeats and inbox.forged == 0
            if postgresql:
                # Three writes, each received in under a third of the poll: a worker that
                # only polled would manage that by chance about one time in thirty.
                for n in range(3):
                    started = time.monotonic()
                    client.post("/v1/participants", headers=writer,
                                json={**ENROL, "subject_code": f"ZS-N{n}"})
                    wait_for(lambda n=n: len(inbox.accepted) == 4 + n, seconds=poll * 5)
                    assert time.monotonic() - started < poll * 0.3, "not woken by NOTIFY"
            second.send_signal(signal.SIGTERM)
            assert second.wait(10) == 0
        finally:
            if second.poll() is None:
                os.killpg(second.pid, signal.SIGKILL)
