"""The webhook part of `make bench`: recording a dose with no webhook endpoint and with one,
in interleaved rounds, and how long a delivery takes from the write's commit to its receipt.

Each write records a first dose today that was planned a few days ago, so every later visit
moves and, with the endpoint active, the write puts one `schedule.changed` message in the
outbox. Between rounds the one endpoint is switched between disabled and active in the
database (a disabled endpoint gets no messages: the outbox hook reads only active ones). A
`trial-schedule worker` process runs throughout, as `make run` runs one; after each round with
the endpoint active, the round's messages are drained before the next round starts. The
receiver is a small HTTP server in this process, on loopback, that notes when each
`webhook-id` arrives; latency is that moment minus the message's `created_at`, stamped in the
write's transaction just before it commits.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from api.persistence.tables import webhook_deliveries, webhook_endpoints, webhook_messages

ROOT = Path(__file__).resolve().parents[1]
OFF = "POST …/events (a dose moving visits), no webhook endpoint"
ON = "POST …/events (a dose moving visits), one webhook endpoint"
RECEIVER_NICE = 10
# Recording with webhooks on: at most this much slower than without (issue 19).
MAX_SLOWDOWN = 0.10


class Receiver:
    """Notes the time each webhook-id first arrives; answers 204."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        received = self.arrived

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver's server does

            def log_message(self, *_: Any) -> None:
                pass

            def setup(self) -> None:
                # The receiver stands for another system, elsewhere: on this machine its
                # threads yield the CPU to the service measured (Linux: nice is per thread).
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), RECEIVER_NICE)
                super().setup()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.setdefault(self.headers.get("webhook-id", ""), time.time())
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_worker(database_url: str, feed_secret: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": database_url,
           "TRIAL_SCHEDULE_FEED_SECRET": feed_secret}
    return subprocess.Popen([sys.executable, "-m", "api.cli", "worker"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def set_status(engine: sa.Engine, endpoint_id: str, status: str) -> None:
    with engine.begin() as connection:
        connection.execute(webhook_endpoints.update().where(
            webhook_endpoints.c.id == endpoint_id).values(status=status))


def drained(engine: sa.Engine, seconds: float = 120.0) -> bool:
    """Wait until no delivery is pending; False if some still are after `seconds`."""
    deadline = time.monotonic() + seconds
    query = sa.select(sa.func.count()).select_from(webhook_deliveries).where(
        webhook_deliveries.c.state == "pending")
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if connection.execute(query).scalar_one() == 0:
                return True
        time.sleep(0.1)
    return False


def latencies(engine: sa.Engine, arrived: dict[str, float], since: float = 0.0,
              until: float = float("inf")) -> list[float]:
    """Milliseconds from each message's commit to its receipt, of the messages committed
    in [since, until) (unix seconds)."""
    with engine.connect() as connection:
        rows = connection.execute(sa.select(webhook_messages.c.id,
                                            webhook_messages.c.created_at)).all()
    # (Every message here is a write's schedule.changed: the endpoint takes no other type.)
    found = []
    for message_id, created in rows:
        created = created.replace(tzinfo=dt.UTC) if created.tzinfo is None else created
        if message_id in arrived and since <= created.timestamp() < until:
            found.append((arrived[message_id] - created.timestamp()) * 1000)
    return found


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# After the rounds, one client records this many doses at this rate: the latency a site sees
# at a steady pace, beside the latency under wrk's saturating load.
PACED_WRITES, PACED_PER_SECOND = 100, 20


def on_off(engine: sa.Engine, register: Callable[[str], str], database_url: str,
           feed_secret: str, pool: list[str], rounds: int,
           run: Callable[[str, list[str]], Any],
           post: Callable[[str], int], paced_writes: int = PACED_WRITES) \
        -> tuple[list[Any], list[Any], str]:
    """`run(name, participant_ids)` is one wrk run recording their doses, `post(id)` one
    request recording one. The last `paced_writes` of `pool` are for the paced writes, the rest
    shared between the runs. Returns the runs without and with the endpoint, and a line on
    delivery latency."""
    receiver = Receiver()
    endpoint_id = register(receiver.url)
    worker = start_worker(database_url, feed_secret)
    paced, pool = pool[-paced_writes:], pool[:-paced_writes]
    share = len(pool) // (2 * rounds)
    runs: dict[bool, list[Any]] = {False: [], True: []}
    try:
        for round_ in range(rounds):
            # Off then on, then on then off: a drift within a round (the database's background
            # work after a run, say) favours neither side. An A/A check on this machine, off
            # against off in the same order, read 25 % apart.
            for active in ((False, True) if round_ % 2 == 0 else (True, False)):
                set_status(engine, endpoint_id, "active" if active else "disabled")
                first = (2 * round_ + active) * share
                runs[active].append(run(ON if active else OFF, pool[first:first + share]))
                if active and not drained(engine):
                    raise RuntimeError("webhook deliveries still pending after 120 s")
        # The paced writes go with the endpoint on (a round may have ended with it off).
        set_status(engine, endpoint_id, "active")
        paced_from = time.time()
        for n, participant_id in enumerate(paced):
            time.sleep(max(0.0, paced_from + n / PACED_PER_SECOND - time.time()))
            post(participant_id)
        if not drained(engine):
            raise RuntimeError("webhook deliveries still pending after 120 s")
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        receiver.close()
    loaded = latencies(engine, receiver.arrived, until=paced_from)
    steady = latencies(engine, receiver.arrived, since=paced_from)
    with engine.connect() as connection:
        messages = connection.execute(sa.select(sa.func.count()).select_from(
            webhook_messages)).scalar_one()
    received = len(loaded) + len(steady)
    if not loaded or not steady:
        return runs[False], runs[True], f"{received} of {messages} messages received"
    line = (f"{received:,} of {messages:,} messages received. Commit to receipt at "
            f"{PACED_PER_SECOND} writes a second ({len(steady)} writes, one client): p50 "
            f"{percentile(steady, 0.5):.1f} ms, p99 {percentile(steady, 0.99):.1f} ms; under "
            f"wrk's load ({len(loaded):,} writes, 16 connections, the worker sharing the cores): "
            f"p50 {percentile(loaded, 0.5):.1f} ms, p99 {percentile(loaded, 0.99):.1f} ms")
    return runs[False], runs[True], line


def verdict(off_rps: list[float], on_rps: list[float]) -> str:
    """The median over rounds of how much slower the round's run with the endpoint was than
    its run without: pairs from one round share the machine's state, where medians of each
    side taken apart do not. Each round's figure follows, so the spread shows."""
    slower = [1 - on / off if off else 0.0 for off, on in zip(off_rps, on_rps, strict=True)]
    middle = median_of(slower)
    met = middle <= MAX_SLOWDOWN
    each = ", ".join(f"{value:+.0%}" for value in slower)
    return (f"{middle:+.1%} slower (median of rounds: {each}), ≤ {MAX_SLOWDOWN:.0%} "
            f"{'met' if met else 'MISSED'}")


def median_of(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
