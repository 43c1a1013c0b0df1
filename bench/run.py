"""`make bench`: the service under gunicorn on loopback, driven by wrk, against a hello-world
Flask app under the same gunicorn settings (bench/gunicorn_bench.py: the service's, with no
access log on either side) in the same run; results as ratios to that ceiling.

The machine is shared and single runs vary up to three times, so each scenario runs in
interleaved rounds (ceiling, scenario, ceiling, scenario, ...) and medians are reported, the
ratio being the scenario's median over the ceiling's median from the same rounds. Measured:
throughput (wrk), latency p50/p99 (wrk --latency), peak resident memory of each worker (VmHWM,
reset before each run), the site feed cold and warm, and in-process micro-benchmarks. Each
target is reported met or missed; a missed request target gets a pyinstrument profile of the
same request in process. Writes BENCHMARKS.md.

Scenarios are listed in `scenarios()`; one whose route the app does not have (a page or
endpoint not merged yet) is reported as absent, so `GET /v1/worklist` and the web pages are
measured as soon as they exist.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import io
import json
import os
import platform
import re
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.test import EnvironBuilder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api import create_app  # noqa: E402
from api.http.context import container  # noqa: E402
from api.persistence.database import create_db_engine, scratch_database  # noqa: E402
from api.persistence.migrate import upgrade  # noqa: E402
from api.usecases.webhooks import SCHEDULE_CHANGED, Deliverer  # noqa: E402
from api.web.backend import accounts_for  # noqa: E402
from bench import webhooks  # noqa: E402
from bench.seeding import awaiting_first_dose, followed, moved_by_first_dose  # noqa: E402
from scheduler import compute_schedule, load_protocol, load_site  # noqa: E402
from scheduler.ical import render_calendar, schedule_events  # noqa: E402
from scheduler.model import ParticipantFacts, Recovery  # noqa: E402

SCHEDULE_BODY = json.dumps({"cryoablation_date": "2026-03-02",
                            "recovery": {"status": "recovered", "date": "2026-03-09"}})
# Why the targets that are missed are missed: what profiling (cProfile, in process) shows.
ANALYSIS = """## What was done, and where the time goes

Figures vary from run to run by up to three times on this two-core machine, where wrk shares
the cores with the workers: compare ratios within one run, not across runs.

- **The hot reads** (round 3, issue 21) are answered before Flask, by WSGI middleware
  (`api/http/hot.py`): a stored participant's schedule this process computed for the
  participant's current version and the site's today, and a participant feed's 304 or the
  body it served before. Each is one prepared statement (the API key with the participant's
  version; the feed token with its participant's version) on a connection each thread holds,
  autocommit, so every request sees the last commit of any worker or instance: no stale body,
  no wrong 304. Flask's request context, routing and hooks cost more than that read (a
  hello-world Flask request is about 35 µs in process), and the ceiling pays them; the hot
  path does not. Everything else, and every miss, goes on to the views unchanged, which fill
  the caches. On PostgreSQL the reads go through libpq's prepared statements directly
  (`pgconn.exec_prepared`): psycopg's cursor (converting the query, adapting parameters,
  building rows) cost as much as the round trip.
- **The stored schedule** (`GET /v1/participants/{id}/schedule`) computed the whole schedule
  on every request (about 0.4 ms of computing and 0.3 ms of encoding, 24 to 28 ms p50 under
  load). Each process now keeps the served bytes and ETag per (participant, version, site
  day, loaded protocol versions and holiday data), bounded in bytes; a new day is a new key,
  and the ETag (the SHA-256 of the bytes) changes when the day changes a status.
- **The participants list and page** no longer compute each participant's schedule: where a
  participant stands (state, next visit, overdue visits) is read from the stored visit states
  (dated visits with windows, recorded statuses, kinds and titles, kept by every write) and
  the folded history (`Participants.standings`). The list's remaining cost is marshmallow
  dumping fifty participants and reading the page; the page's, rendering every participant.
- **POST /v1/schedules**: a body answered before is answered from memory by its exact bytes,
  without parsing; a new one is parsed with one schema instance.
- **Recording an event** (the miss on PostgreSQL): three statements and a commit in one
  transaction (the lock, reading the stored site-feed block with its marks and the active
  webhook endpoints; the history with the visit states; every write as one statement of
  data-modifying WITH clauses, `api/persistence/batch.py`), run on psycopg directly past
  SQLAlchemy's execution layer (psycopg's raw cursor, the text compiled once with `$n`
  parameters); the schedule computed once; only the site events whose mark
  changed rendered (`scheduler.ical.event_mark`); the answer (the whole schedule) dumped. In
  process a dose is about 13.6 M instructions against 19.4 M on the round 2 tree
  (`bench/write_cost.py`, callgrind: seconds on this machine vary too much to compare). What
  is left, by py-spy samples holding the GIL under wrk: computing the schedule (a fifth),
  the site events' marks and renders (a seventh), reading the history and states (a tenth),
  the batched write, the answer's JSON (orjson since round 3's fourth pass: it was about
  100 µs of the standard library's), the API key's check and gunicorn, each a few
  hundredths; and PostgreSQL's own work and commit (`synchronous_commit` stays on: a recorded
  dose must survive a crash) on the two cores wrk and the workers share. SQLite stays
  `synchronous=FULL` (one fsync a commit, and one writer at a time), which bounds its writes
  and its p99.
- **A webhook endpoint on**: the write puts its message and deliveries in the same batched
  statement and does not NOTIFY (PostgreSQL serialises notifying commits until their WAL is
  flushed: `bench/notify_commits.py`); a thread of the API process sends one NOTIFY after
  the commits of the last 20 ms (`Waker`). The outbox adds about 1 M instructions (5 %) to a
  dose that moves visits (`bench/write_cost.py --moving --endpoint`). The rest of the
  comparison under wrk is the worker, its backend and the receiver on the same two cores
  (`bench/delivery_cost.py`: about 0.3 to 0.45 ms of the worker's CPU, 0.1 of PostgreSQL's
  and 0.16 of the receiver's a delivery, where a moving dose costs about 5 ms), and the
  noise: single rounds range over tens of percent here, so the verdict is the median of each
  round's own on/off pair, the order alternating.
- **The worklist** reads the stored visit states in one query, through an index on
  (status, earliest) with a range every wanted row satisfies; due and overdue are derived
  from the stored window and the day. Its page renders from the same use case. Both are
  measured as one person waits for them (one connection): the latency is the answer's own.
- **The site feed**: each write stores the participant's rendered site events (migration 0005),
  so a cold feed is assembled from stored bytes; warm, the assembled file is sent with
  sendfile.
- **Computing one schedule** is over its 200 µs target under protocol revision 2: the same
  facts take about 255 µs under version 1 and about 380 µs under revision 2, whose imaging grid,
  one-trip rule and inclusive look-backs add visits to place and rules to read; the profile is
  flat (no function above a tenth of the time), so there is no single hot spot to remove.
"""

SCHEDULE_READ = "GET /v1/participants/{id}/schedule"
SCHEDULE_REVALIDATE = "GET /v1/participants/{id}/schedule revalidation (304)"
PARTICIPANTS = "GET /v1/participants (a page of 50)"
PARTICIPANTS_PAGE = "participants page (/participants)"
# Ratio to the ceiling, per scenario (issues 14 and 21).
TARGETS = {"POST /v1/schedules": 0.70, "participant feed (200)": 0.60,
           "participant feed revalidation (304)": 0.80, SCHEDULE_READ: 0.50,
           SCHEDULE_REVALIDATE: 0.80}
RECORD = "POST …/events (record a dose)"
# Recording an event on PostgreSQL at 16 connections: p99 under 100 ms, and three times the
# 144 req/s measured before this work.
RECORD_P99_MS, RECORD_RPS = 100.0, 3 * 144
PROFILED = 600  # participants awaiting a first dose kept back for the profile of a miss
# A worklist for 1,000 participants, warm: median latency under 50 ms; its page under 100 ms.
WORKLIST_P50_MS = 50.0
WORKLIST_PAGE_P50_MS = 100.0
WORKLIST = "GET /v1/worklist"
WORKLIST_PAGE = "worklist page (/)"
SITE_COLD_S, SITE_WARM_S, SITE_GROWTH_MB = 5.0, 0.5, 100.0
GUNICORN_CONF = "bench/gunicorn_bench.py"


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    peak_worker_mb: float
    errors: int = 0
    ratio: float | None = None
    note: str = ""
    ceiling_rps: float | None = None
    rounds: int = 1
    verdict: str = ""


@dataclass
class Server:
    """gunicorn with the service's settings (api/gunicorn_conf.py)."""

    app: str
    env: dict[str, str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))

    def start(self) -> Server:
        self.port = free_port()
        env = {**os.environ, **self.env, "HOST": "127.0.0.1", "PORT": str(self.port)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONF, self.app],
            cwd=ROOT, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.base}/", timeout=2).close()
                return self
            except urllib.error.HTTPError:
                return self  # answering (a 404 on / is an answer)
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(self.log.read_text()) from None
                time.sleep(0.2)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        assert self.process is not None
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)],
                             capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def reset_peaks(self) -> None:
        for pid in self.workers():
            with contextlib.suppress(OSError):  # resetting the peak needs the process's owner
                Path(f"/proc/{pid}/clear_refs").write_text("5")

    def _largest_mb(self, field: str) -> float:
        """The largest of the workers' /proc status values (VmHWM: peak, VmRSS: now)."""
        values = [int(re.search(rf"{field}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
                      .group(1)) / 1024 for pid in self.workers()]
        return max(values, default=0.0)

    def peak_mb(self) -> float:
        return self._largest_mb("VmHWM")

    def rss_mb(self) -> float:
        return self._largest_mb("VmRSS")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def lua(method: str, body: str | None = None, headers: dict[str, str] | None = None,
        paths: list[str] | None = None) -> Path:
    """A wrk script: one request shape, or a rotation over paths split between threads."""
    lines = [f'wrk.method = "{method}"']
    for name, value in (headers or {}).items():
        lines.append(f'wrk.headers["{name}"] = "{value}"')
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    if paths:
        lines.append("paths = {" + ",".join(json.dumps(p) for p in paths) + "}")
        lines.append("""
local counter = 1
local threads = 0
function setup(thread) thread:set("offset", threads); threads = threads + 1 end
function init(args) counter = offset + 1 end
function request()
  local path = paths[((counter - 1) % #paths) + 1]
  counter = counter + 2
  return wrk.format(nil, path)
end""")
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text("\n".join(lines) + "\n")
    return script


def to_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(server: Server, name: str, path: str, seconds: int, script: Path | None = None,
        connections: int = 16) -> Result:
    server.reset_peaks()
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s",
               "--latency", "--timeout", "30s"]
    if script:
        command += ["-s", str(script)]
    run = subprocess.run([*command, server.base + path], capture_output=True, text=True,
                         timeout=seconds + 60)
    out = run.stdout
    if "Latency Distribution" not in out:
        raise RuntimeError(f"wrk failed for {name}: {out}{run.stderr}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Result(name, rps, p50, p99, server.peak_mb(), int(errors.group(1)) if errors else 0)


def timed_download(url: str) -> tuple[float, int]:
    host, _, rest = url.removeprefix("http://").partition("/")
    connection = http.client.HTTPConnection(host, timeout=300)
    start = time.perf_counter()
    connection.request("GET", "/" + rest)
    response = connection.getresponse()
    size = 0
    while chunk := response.read(1 << 20):
        size += len(chunk)
    connection.close()
    assert response.status == 200, response.status
    return time.perf_counter() - start, size


def micro() -> list[tuple[str, float]]:
    protocol, site = load_protocol(), load_site()
    facts = ParticipantFacts(dt.date(2026, 3, 2), Recovery("recovered", dt.date(2026, 3, 9)))
    schedule = compute_schedule(protocol, facts, site)
    events = schedule_events(schedule, "bench", protocol.modified, "ZS-001")

    def best(call: object, number: int) -> float:
        return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6  # type: ignore

    return [("compute one participant's schedule", best(
                lambda: compute_schedule(protocol, facts, site), 500)),
            (f"render one participant's feed ({len(events)} events)", best(
                lambda: render_calendar("x", events), 200))]


@dataclass
class Options:
    seconds: int
    rounds: int
    hello: Server
    # Only the scenarios whose names contain one of these (all when empty).
    only: list[str] = field(default_factory=list)
    site: bool = True  # the site feed at each size
    micros: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def bench_database(label: str, url: str, options: Options, sizes: list[int],
                   results: list[Result], site_notes: list[str],
                   profiles: list[str]) -> None:
    """A site of `sizes[0]` participants followed for a year (bench/seeding.py): the site feed
    and the read scenarios. Then participants awaiting their first dose up to each further size:
    the site feed at each, and recording their first doses."""
    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()
    secret = secrets.token_hex(16)
    app = create_app({"DATABASE_URL": url, "FEED_SECRET": secret})
    key = container(app).api_keys.create("bench", "admin")
    feeds = container(app).feeds
    today = container(app).clock.today()
    started = time.monotonic()
    site = followed(app, 0, sizes[0], today)
    seeded = [f"{sizes[0]:,} followed participants in {time.monotonic() - started:.0f} s"]
    settle(url)
    site_path = path_of(feeds.links.site_links(feeds.rotate("site"))["https"])
    server = Server("api.wsgi:app", {"DATABASE_URL": url,
                                     "TRIAL_SCHEDULE_FEED_SECRET": secret}).start()
    try:
        if options.site:
            site_notes.append(site_feed(server, label, site_path, sizes[0]))
        chosen = reads(app, server, key, site[0], sign_in(app, server))
        measure(app, options, server, label, chosen, results, profiles)
        pool: list[str] = []
        for size in sizes[1:]:
            started, count = time.monotonic(), size - sizes[0] - len(pool)
            pool += awaiting_first_dose(app, sizes[0] + len(pool), count, today)
            seeded.append(f"{count:,} awaiting a first dose in "
                          f"{time.monotonic() - started:.0f} s")
            settle(url)
            if options.site:
                site_notes.append(site_feed(server, label, site_path, size))
        if pool:
            measure(app, options, server, label,
                    [recording(app, key, pool, options.rounds, today)], results, profiles)
        per_run = min(WEBHOOK_WRITES * options.seconds, sizes[-1])
        paced = min(webhooks.PACED_WRITES, per_run)
        hooks = moved_by_first_dose(app, 0, per_run * 2 * options.rounds + paced, today)
        settle(url)
        webhook_rounds(app, url, secret, key, hooks, paced, options, server, label, results,
                       today)
        options.notes.append(f"Seeded [{label}]: " + "; ".join(seeded) + ".")
    finally:
        server.stop()
        container(app).engine.dispose()


# Participants per wrk run of the webhook comparison, per second of it (at most the largest
# size): more than a run records, so none is recorded twice (a 409).
WEBHOOK_WRITES = 600


def webhook_rounds(app: Flask, url: str, secret: str, key: str, pool: list[str],
                   paced: int, options: Options, server: Server, label: str, results: list[Result],
                   today: dt.date) -> None:
    """Recording a dose that moves visits with no webhook endpoint and with one, in
    interleaved rounds, and the deliveries' latency from commit to receipt (bench/webhooks.py)."""
    dose = json.dumps({"type": "dose_given", "cycle": 1, "date": today.isoformat()})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def run(name: str, ids: list[str]) -> Result:
        script = lua("POST", dose, headers, [f"/v1/participants/{pid}/events" for pid in ids])
        return wrk(server, name, f"/v1/participants/{ids[0]}/events", options.seconds, script)

    def register(target: str) -> str:
        # The comparison is of the write path: the endpoint takes schedule.changed only, and
        # the site's overdue visits are announced (to nobody) before the worker starts, so
        # no backlog of visit.overdue deliveries runs beside the rounds.
        services = container(app)
        Deliverer(services.units, services.clock).announce_overdue()
        return services.webhooks.register(target, (SCHEDULE_CHANGED,))[0].id

    def post(participant_id: str) -> int:
        request = urllib.request.Request(
            f"{server.base}/v1/participants/{participant_id}/events", data=dose.encode(),
            headers=headers, method="POST")
        with urllib.request.urlopen(request) as answer:
            return int(answer.status)

    off, on, line = webhooks.on_off(container(app).engine, register, url, secret, pool,
                                    options.rounds, run, post, paced)
    for name, done in ((webhooks.OFF, off), (webhooks.ON, on)):
        results.append(Result(f"{name} [{label}]", statistics.median(r.rps for r in done),
                              statistics.median(r.p50_ms for r in done),
                              statistics.median(r.p99_ms for r in done),
                              max(r.peak_worker_mb for r in done), sum(r.errors for r in done),
                              rounds=options.rounds))
    results[-1].verdict = webhooks.verdict([r.rps for r in off], [r.rps for r in on])
    options.notes.append(f"Webhooks [{label}]: {line} (bench/webhooks.py).")


def sign_in(app: Flask, server: Server) -> str:
    """A viewer's session cookie for the pages, signed in through the login form."""
    import http.cookiejar

    password = secrets.token_urlsafe(18)
    accounts_for(app).create("bench@example.org", "viewer", password)
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(server.base + "/login").read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode({"csrf_token": token, "email": "bench@example.org",
                                   "password": password}).encode()
    opener.open(server.base + "/login", data=data).read()
    cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in jar)
    page = urllib.request.Request(server.base + "/", headers={"Cookie": cookies})
    with urllib.request.urlopen(page) as answer:
        assert answer.status == 200 and "/login" not in answer.url, "not signed in"
    return cookies


def settle(url: str) -> None:
    """After seeding: refresh the planner's statistics and checkpoint, so that neither
    autovacuum nor a checkpoint runs during the measurements."""
    if url.startswith("sqlite"):
        database = sqlite3.connect(sa.engine.make_url(url).database, isolation_level=None)
        database.execute("ANALYZE")
        database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        database.close()
        return
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
        connection.exec_driver_sql("CHECKPOINT")
    engine.dispose()


def path_of(link: str) -> str:
    return "/" + link.split("://", 1)[1].split("/", 1)[1]


@dataclass
class Scenario:
    """One request shape: `scripts(round)` gives each round's wrk script (None: a plain GET);
    `environ` the same request for an in-process profile."""

    name: str
    path: str
    scripts: Callable[[int], Path | None]
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    connections: int = 16  # wrk's; 1 measures one user's wait for an answer
    # In process, each call takes the next of these paths (a write that may not repeat).
    spare_paths: list[str] = field(default_factory=list)
    # The Host the in-process request names: a feed's ETag names its URL, so a revalidation
    # in process must ask at the host wrk asked at to be answered 304.
    host: str = "127.0.0.1"


def reads(app: Flask, server: Server, key: str, participant: str, cookie: str) \
        -> list[Scenario]:
    """The read scenarios, on one followed participant and the site's worklist."""
    feeds = container(app).feeds
    feed_path = path_of(feeds.links_for([participant])[participant]["https"])
    etag = urllib.request.urlopen(server.base + feed_path).headers["ETag"]
    host = server.base.removeprefix("http://")
    auth = {"Authorization": f"Bearer {key}"}
    json_type = {"Content-Type": "application/json"}
    schedule = lua("POST", SCHEDULE_BODY, json_type)
    read = lua("GET", headers=auth)
    revalidate = lua("GET", headers={"If-None-Match": etag.replace('"', '\\"')})
    page = lua("GET", headers={"Cookie": cookie})
    schedule_path = f"/v1/participants/{participant}/schedule"
    request = urllib.request.Request(server.base + schedule_path, headers=auth)
    with urllib.request.urlopen(request) as answer:
        schedule_etag = answer.headers["ETag"]
    schedule_revalidate = lua("GET", headers={
        **auth, "If-None-Match": schedule_etag.replace('"', '\\"')})
    return [
        Scenario("POST /v1/schedules", "/v1/schedules", lambda _: schedule, "POST", json_type,
                 SCHEDULE_BODY.encode()),
        Scenario(SCHEDULE_READ, schedule_path, lambda _: read, headers=auth),
        Scenario(SCHEDULE_REVALIDATE, schedule_path, lambda _: schedule_revalidate,
                 headers={**auth, "If-None-Match": schedule_etag}),
        # Lists as one person waits for them, like the worklist.
        Scenario(PARTICIPANTS, "/v1/participants", lambda _: read, headers=auth,
                 connections=1),
        Scenario(PARTICIPANTS_PAGE, "/participants", lambda _: page,
                 headers={"Cookie": cookie}, connections=1),
        Scenario("participant feed (200)", feed_path, lambda _: None, host=host),
        Scenario("participant feed revalidation (304)", feed_path, lambda _: revalidate,
                 headers={"If-None-Match": etag}, host=host),
        # A person waiting for the day's list: one connection, so the latency is the answer's
        # own, not a queue behind fifteen others.
        Scenario(WORKLIST, "/v1/worklist", lambda _: read, headers=auth, connections=1),
        Scenario(WORKLIST_PAGE, "/", lambda _: page, headers={"Cookie": cookie},
                 connections=1),
    ]


def recording(app: Flask, key: str, pool: list[str], rounds: int, today: dt.date) -> Scenario:
    """Recording cycle 1 on its planned day for participants awaiting it, each round over
    participants of its own (a repeat would be a 409)."""
    _, schedule = container(app).participants.schedule(pool[0], today)
    first = next(visit for visit in schedule.visits if visit.id == "C1D1")
    assert first.date is not None
    dose = json.dumps({"type": "dose_given", "cycle": 1,
                       "date": min(first.date, today).isoformat()})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    kept = min(PROFILED, len(pool) // 2)  # back from wrk, for a profile in process
    spare, pool = pool[len(pool) - kept:], pool[:len(pool) - kept]
    share = max(1, len(pool) // rounds)
    doses = [lua("POST", dose, headers, [f"/v1/participants/{pid}/events"
                                         for pid in pool[r * share:(r + 1) * share]])
             for r in range(rounds)]
    return Scenario(RECORD, f"/v1/participants/{pool[0]}/events", lambda r: doses[r], "POST",
                    headers, dose.encode(),
                    spare_paths=[f"/v1/participants/{pid}/events" for pid in spare])


def routed(app: Flask, path: str, method: str) -> bool:
    """Whether the app has a route for this request (a scenario for a route not merged yet is
    reported absent)."""
    if path == "/":
        return True
    adapter = app.url_map.bind("localhost")
    try:
        adapter.match(path, method=method)
    except HTTPException:  # NotFound, MethodNotAllowed: not there
        return False
    return True


def measure(app: Flask, options: Options, server: Server, label: str,
            chosen: list[Scenario], results: list[Result], profiles: list[str]) -> None:
    """The scenarios in interleaved rounds, each reported as its medians beside the median of
    the ceiling runs of the same rounds. A scenario with a ratio target has a ceiling run of its
    own just before it in every round (the machine's speed drifts within a round); the others
    share the ceiling run that opens the round."""
    if options.only:
        chosen = [scenario for scenario in chosen
                  if any(part in scenario.name for part in options.only)]
    present = [scenario for scenario in chosen if routed(app, scenario.path, scenario.method)]
    options.micros += in_process(app, label, present)
    shared: list[Result] = []
    ceilings: dict[str, list[Result]] = {scenario.name: [] for scenario in present}
    runs: dict[str, list[Result]] = {scenario.name: [] for scenario in present}

    def ceiling_run() -> Result:
        return wrk(options.hello, "hello world (ceiling)", "/", options.seconds)

    for round_ in range(options.rounds):
        shared.append(ceiling_run())
        for scenario in present:
            ceilings[scenario.name].append(
                ceiling_run() if scenario.name in TARGETS else shared[-1])
            runs[scenario.name].append(wrk(server, scenario.name, scenario.path,
                                           options.seconds, scenario.scripts(round_),
                                           scenario.connections))
    for scenario in chosen:
        name = f"{scenario.name} [{label}]"
        if scenario not in present:
            results.append(Result(name, 0, 0, 0, 0, note="absent: the app has no such route"))
            continue
        done = runs[scenario.name]
        rps = statistics.median(r.rps for r in done)
        ceiling = statistics.median(r.rps for r in ceilings[scenario.name])
        result = Result(name, rps, statistics.median(r.p50_ms for r in done),
                        statistics.median(r.p99_ms for r in done),
                        max(r.peak_worker_mb for r in done), sum(r.errors for r in done),
                        rps / ceiling, ceiling_rps=ceiling, rounds=options.rounds)
        result.verdict = verdict(scenario.name, name, result)
        results.append(result)
        if result.verdict.endswith("MISSED"):
            profiles.append(profile(app, name, scenario))


def verdict(base: str, name: str, result: Result) -> str:
    if base in TARGETS:
        target = TARGETS[base]
        return f"≥ {target:.2f} {'met' if result.ratio and result.ratio >= target else 'MISSED'}"
    if base == RECORD and name.endswith("[postgresql]"):
        if result.errors:
            # A repeated dose is a cheap 409: counted, it would raise the rate measured.
            return (f"not measured: {result.errors} answers were not 2xx (a round ran out of "
                    "participants awaiting a dose: raise the last of --sizes)")
        met = result.p99_ms < RECORD_P99_MS and result.rps >= RECORD_RPS
        return f"p99 < {RECORD_P99_MS:.0f} ms, ≥ {RECORD_RPS} req/s {'met' if met else 'MISSED'}"
    if base == WORKLIST:
        met = result.p50_ms < WORKLIST_P50_MS
        return f"p50 < {WORKLIST_P50_MS:.0f} ms {'met' if met else 'MISSED'}"
    if base == WORKLIST_PAGE:
        met = result.p50_ms < WORKLIST_PAGE_P50_MS
        return f"p50 < {WORKLIST_PAGE_P50_MS:.0f} ms {'met' if met else 'MISSED'}"
    return ""


# What gunicorn's gthread worker says of itself in every request, which EnvironBuilder does not.
SERVED = {"REMOTE_ADDR": "127.0.0.1", "wsgi.multithread": True, "wsgi.multiprocess": True}


def caller(app: Flask, scenario: Scenario) -> Callable[[], None]:
    """One WSGI call of the scenario's request, in process."""
    environ = EnvironBuilder(
        path=scenario.path, method=scenario.method, base_url=f"http://{scenario.host}",
        headers=scenario.headers, data=scenario.body or None,
        environ_overrides=SERVED).get_environ()
    spare = iter(scenario.spare_paths)

    def call() -> None:
        request = {**environ, "wsgi.input": io.BytesIO(scenario.body)}
        if scenario.spare_paths:
            request["PATH_INFO"] = next(spare)
        for _ in app(request, lambda status, headers, exc_info=None: None):
            pass

    return call


IN_PROCESS = ("POST /v1/schedules", SCHEDULE_READ, SCHEDULE_REVALIDATE, "participant feed (200)",
              "participant feed revalidation (304)", WORKLIST, WORKLIST_PAGE, PARTICIPANTS,
              PARTICIPANTS_PAGE)


def in_process(app: Flask, label: str, chosen: list[Scenario]) -> list[tuple[str, float]]:
    """Microseconds a request of each scenario costs in process (best of five timeit runs),
    beside a hello-world request measured the same way: the framework's ceiling without
    gunicorn, wrk and the loopback, which share the machine's cores in the wrk figures."""
    from bench.hello import app as hello

    def best(call: Callable[[], None]) -> float:
        started = time.perf_counter()
        call()
        # About a tenth of a second a run: 300 calls of a feed, a handful of a worklist.
        number = max(3, min(300, int(0.1 / max(time.perf_counter() - started, 1e-6))))
        return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6

    found = [(f"hello world request (WSGI, in process) [{label}]",
              best(caller(hello, Scenario("hello", "/", lambda _: None))))]
    for scenario in chosen:
        if scenario.name in IN_PROCESS:
            found.append((f"{scenario.name} (WSGI, in process) [{label}]",
                          best(caller(app, scenario))))
    return found


def profile(app: Flask, name: str, scenario: Scenario, seconds: float = 1.5) -> str:
    """Where the time of one request goes, in process (pyinstrument), for a missed target:
    the same view code the workers run, without gunicorn and wrk around it."""
    from pyinstrument import Profiler

    call = caller(app, scenario)
    call()  # warm
    profiler = Profiler(interval=0.0002)
    count = 0
    with profiler:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            if scenario.spare_paths and count + 1 >= len(scenario.spare_paths):
                break  # every participant kept back has had its write
            call()
            count += 1
    text = profiler.output_text(unicode=True, color=False, flat=True)
    lines = [line for line in text.splitlines() if line.strip()][:30]
    return "\n".join([f"### {name}", "", f"{count} requests in process; "
                      "pyinstrument, the functions holding the most time of their own:", "",
                      "```", *lines, "```", ""])


def site_feed(server: Server, label: str, path: str, size: int) -> str:
    """The site feed: the first request (cold: renders and caches every participant), then
    requests until every worker has served it, then three warm ones: median time, and the
    serving worker's peak memory over its resident memory before."""
    cold, _ = timed_download(server.base + path)
    for _ in range(len(server.workers()) * 2):
        timed_download(server.base + path)
    server.reset_peaks()
    before = server.rss_mb()
    warm = [timed_download(server.base + path) for _ in range(3)]
    growth = server.peak_mb() - before
    seconds = statistics.median(t for t, _ in warm)
    met = cold < SITE_COLD_S and seconds < SITE_WARM_S and growth < SITE_GROWTH_MB
    return (f"| site feed, {size:,} participants [{label}] | {cold:.2f} s | {seconds:.2f} s | "
            f"{warm[0][1] / 1e6:.1f} MB | {growth:.1f} MB | {'met' if met else 'MISSED'} |")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    memory = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return (f"{os.cpu_count()} cores ({cpu}), {memory / 1024 / 1024:.0f} GiB, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=2, help="wrk duration per run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of ceiling and scenario; medians reported")
    parser.add_argument("--sizes", default="1000,10000",
                        help="participants: followed ones (the first), then up to each "
                             "further size awaiting a first dose; the site feed at each")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--scenarios", default="",
                        help="only the scenarios whose names contain one of these "
                             "comma-separated words (e.g. 'schedule,feed'); all by default")
    parser.add_argument("--site-feed", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the site feed at each size")
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk; make bench does it)")
    sizes = [int(size) for size in args.sizes.split(",")]
    started = time.monotonic()
    load = os.getloadavg()[0]
    micros = micro()  # first, while nothing else runs on the machine
    hello = Server("bench.hello:app", {}).start()
    options = Options(args.seconds, args.rounds, hello,
                      [part.strip() for part in args.scenarios.split(",") if part.strip()],
                      site=args.site_feed)
    results: list[Result] = []
    site_notes: list[str] = []
    profiles: list[str] = []
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        for label in args.databases.split(","):
            if label == "sqlite":
                url = f"sqlite:///{scratch / 'bench.sqlite3'}"
                bench_database(label, url, options, sizes, results, site_notes, profiles)
            elif label == "postgresql":
                server_url = os.environ.get(
                    "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
                try:
                    with scratch_database(server_url, "trial_schedule_bench") as url:
                        bench_database(label, url, options, sizes, results, site_notes,
                                       profiles)
                except sa.exc.OperationalError as error:
                    site_notes.append(f"| PostgreSQL not reachable: {error.orig} | | | | | |")
    finally:
        hello.stop()
    report(args, results, site_notes, options.notes, micros + options.micros, profiles,
           time.monotonic() - started, load)


def report(args: argparse.Namespace, results: list[Result], site_notes: list[str],
           notes: list[str], micros: list[tuple[str, float]], profiles: list[str], elapsed: float,
           load: float) -> None:
    lines = [
        "# Benchmarks", "",
        f"Measured {dt.date.today().isoformat()} on {machine()}; load average "
        f"{load:.2f} when it started.",
        f"Command: `make bench` (`python bench/run.py --seconds {args.seconds} --rounds "
        f"{args.rounds} --sizes {args.sizes} --databases {args.databases}"
        f"{f' --scenarios {args.scenarios}' if args.scenarios else ''}"
        f"{'' if args.site_feed else ' --no-site-feed'}`), "
        f"{elapsed:.0f} s in all.",
        "",
        "Each service scenario runs under gunicorn with the service's own settings "
        "(`api/gunicorn_conf.py`: 2 gthread workers, 4 threads) but no access log "
        "(`bench/gunicorn_bench.py`), on loopback, driven by `wrk -t2 -c16 --latency`. The "
        "ceiling is a hello-world Flask app under the same settings. The scenarios run in "
        f"{args.rounds} interleaved rounds (the ceiling, then each scenario, round after "
        "round; a scenario with a ratio target gets a ceiling run of its own just before it): "
        "the figures are medians, and the ratio is the scenario's median over the median of "
        "its ceiling runs in the same rounds. Peak memory is the largest worker's VmHWM, "
        "reset before each run. wrk and the servers share the machine's cores.",
        "",
        "The data: the read scenarios, the worklist and its page run on a site of "
        f"{args.sizes.split(',')[0]} participants enrolled from the study's start to a month "
        "ahead, whose past visits are recorded as a site records them (a dose or a done visit "
        "on its planned day; about one visit in twenty-five left unrecorded, so overdue, and "
        "one in fifty missed; `bench/seeding.py`). Participants awaiting their first dose "
        "then fill the site up to each further size; recording a dose records theirs.",
        "", *notes, "",
        "| scenario | req/s | ceiling req/s | ratio | target | p50 | p99 | "
        "peak worker RSS | non-2xx/3xx |", "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        if result.note:
            lines.append(f"| {result.name} | {result.note} | | | | | | | |")
            continue
        lines.append(f"| {result.name} | {result.rps:,.0f} | {result.ceiling_rps or 0:,.0f} | "
                     f"{result.ratio or 0:.2f} | {result.verdict} | {result.p50_ms:.2f} ms | "
                     f"{result.p99_ms:.2f} ms | {result.peak_worker_mb:.0f} MB | "
                     f"{result.errors} |")
    lines += ["", "Recording a dose: each request records cycle 1 on its planned day for a "
              "participant awaiting it, each round over participants of its own; a repeat "
              "would be a 409 and count under non-2xx. The worklist is today's and the next "
              "seven days' (the API's default range), with everything overdue; its page is "
              "the same for a signed-in viewer.", "",
              "## Site feed", "",
              "Cold: the first request after seeding (participants' events are rendered when "
              "they are written, so this assembles stored bytes into the feed's file). Warm: "
              "median of three after every worker has served it. Growth: the serving worker's "
              "peak resident memory during the warm requests, over its resident memory before. "
              f"Target: cold under {SITE_COLD_S:.0f} s, warm under {SITE_WARM_S} s, growth "
              f"under {SITE_GROWTH_MB:.0f} MB.", "",
              "| feed | cold | warm | size | memory growth | target |", "|---|---|---|---|---|---|",
              *site_notes, "", "## In process", "",
              "| what | time | target |", "|---|---|---|"]
    hello_us = {name.rsplit(" [", 1)[-1]: us for name, us in micros
                if name.startswith("hello world request")}
    for name, micro_us in micros:
        target = "≤ 200 µs" if name == "compute one participant's schedule" else ""
        if target:
            target += " met" if micro_us <= 200 else " MISSED"
        elif "(WSGI, in process)" in name and not name.startswith("hello"):
            ceiling = hello_us.get(name.rsplit(" [", 1)[-1])
            target = f"{ceiling / micro_us:.2f} of hello world's rate" if ceiling else ""
        lines.append(f"| {name} | {micro_us:,.0f} µs | {target} |")
    if profiles:
        lines += ["", "## Profiles of the missed request targets", "", *profiles]
    lines += ["", ANALYSIS.rstrip()]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
