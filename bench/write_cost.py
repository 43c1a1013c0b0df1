"""What recording a dose costs the web process, in instructions: repeatable where seconds are not.

On this shared two-core machine the CPU time of the same write varies by half from one minute
to the next, so two versions of the write path are compared by callgrind's instruction count
instead (valgrind's manual: the count is the same for the same program and inputs, whatever
else the machine runs). For each tree given (by default this checkout), the script runs itself
under callgrind twice on a scratch PostgreSQL database of participants awaiting their first
dose: once recording `--base` doses, once `--base` + `--writes`; the difference, over
`--writes`, is one dose's instructions in process (the WSGI call: routing, parsing, the use
case, the three statements' client side, rendering the answer), without the server's own
work or HTTP.

    python bench/write_cost.py                          # this checkout
    python bench/write_cost.py --tree ../before --tree .  # two checkouts, one run
    python bench/write_cost.py --endpoint               # with a webhook endpoint
    python bench/write_cost.py --moving [--endpoint]    # doses that move later visits

A tree is any checkout of this project with `bench/seeding.py` (from the first PostgreSQL
write-path round on). Each measurement takes a few minutes: valgrind runs Python about fifty
times slower.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

from werkzeug.test import EnvironBuilder

ROOT = Path(__file__).resolve().parents[1]
SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def record_doses(tree: Path, count: int, pool: int, endpoint: bool, moving: bool) -> None:
    """Record `count` first doses in process on a fresh database (the measured program);
    `endpoint`: with one webhook endpoint taking every event type registered (no worker
    runs: nothing is delivered); `moving`: each dose moves the later visits, so with the
    endpoint each write puts a schedule.changed message in the outbox (checked at the end)."""
    sys.path.insert(0, str(tree))
    from api import create_app
    from api.http.context import container
    from api.persistence.database import create_db_engine, scratch_database
    from api.persistence.migrate import upgrade
    from bench.seeding import awaiting_first_dose, moved_by_first_dose

    with scratch_database(SERVER, "trial_schedule_write_cost") as url:
        engine = create_db_engine(url)
        upgrade(engine)
        engine.dispose()
        app = create_app({"DATABASE_URL": url, "FEED_SECRET": secrets.token_hex(16)})
        services = container(app)
        key = services.api_keys.create("bench", "admin")
        today = services.clock.today()
        ids = (moved_by_first_dose if moving else awaiting_first_dose)(app, 0, pool, today)
        if endpoint:
            services.webhooks.register("http://127.0.0.1:9/never", None)
        _, schedule = services.participants.schedule(ids[0], today)
        first = next(visit for visit in schedule.visits if visit.id == "C1D1")
        assert first.date is not None
        # A dose on its planned day moves nothing: the write changes statuses only, and no
        # schedule.changed message is written. Moving: given today, days late, so every later
        # visit moves and, with an endpoint, the message goes to the outbox (as in the
        # webhook comparison of `make bench`).
        given = today if moving else min(first.date, today)
        body = json.dumps({"type": "dose_given", "cycle": 1,
                           "date": given.isoformat()}).encode()
        # The request as bench/run.py's in-process calls make it, its path per participant.
        environ = EnvironBuilder(
            method="POST", base_url="http://127.0.0.1", data=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            environ_overrides={"REMOTE_ADDR": "127.0.0.1", "wsgi.multithread": True,
                               "wsgi.multiprocess": True}).get_environ()
        for participant_id in ids[:count]:
            status: list[str] = []
            request = {**environ, "PATH_INFO": f"/v1/participants/{participant_id}/events",
                       "wsgi.input": io.BytesIO(body)}
            b"".join(app(request, lambda answer, _headers, _exc=None, seen=status:
                         seen.append(answer)))
            assert status[0].startswith("201"), status
        if endpoint:
            with services.units(readonly=True) as uow:
                counted = uow.webhooks.outbox()[0]
            assert sum(counted.values()) == (count if moving else 0), counted
        services.engine.dispose()


def instructions(tree: Path, count: int, pool: int, endpoint: bool, moving: bool) -> int:
    """The instructions of a whole run recording `count` doses, by callgrind."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             __file__, "--record", str(count), "--pool", str(pool), "--tree", str(tree),
             *(["--endpoint"] if endpoint else []), *(["--moving"] if moving else [])],
            check=True, capture_output=True, cwd=tree,
            # One hash seed for every run: set and dict layouts, and so the work, repeat.
            env={**os.environ, "PYTHONHASHSEED": "0"})
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no total")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", type=Path,
                        help="a checkout to measure (repeatable; default: this one)")
    parser.add_argument("--writes", type=int, default=100, help="doses measured")
    parser.add_argument("--base", type=int, default=20, help="doses in both runs (warm-up)")
    parser.add_argument("--endpoint", action="store_true",
                        help="with one webhook endpoint registered (the outbox's cost)")
    parser.add_argument("--moving", action="store_true",
                        help="doses given days late, moving every later visit (with "
                             "--endpoint, each write puts a schedule.changed message in the "
                             "outbox)")
    parser.add_argument("--record", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pool", type=int, default=0, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.record is not None:
        record_doses(options.tree[0], options.record, options.pool, options.endpoint,
                     options.moving)
        return
    pool = options.base + options.writes + 10
    what = (" moving later visits" if options.moving else "") + \
        (" with one webhook endpoint" if options.endpoint else "")
    print(f"| tree | commit | instructions a recorded dose{what} (in process) |")
    print("|---|---|---|")
    for tree in [path.resolve() for path in options.tree or [ROOT]]:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree,
                                capture_output=True, text=True).stdout.strip()
        low = instructions(tree, options.base, pool, options.endpoint, options.moving)
        high = instructions(tree, options.base + options.writes, pool, options.endpoint,
                            options.moving)
        print(f"| {tree} | {commit} | {(high - low) / options.writes / 1e6:.2f} M |",
              flush=True)


if __name__ == "__main__":
    main()
