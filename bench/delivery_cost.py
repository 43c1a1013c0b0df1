"""What a webhook delivery costs the machine, in CPU time: the share of the webhook comparison
in `make bench` (recording a dose with an endpoint on against off) that the worker's deliveries
take from the two cores the API shares with them.

On a scratch PostgreSQL database, `--deliveries` messages wait in the outbox for one endpoint;
the worker's use case (`Deliverer.drain_once`, in this process, as `trial-schedule worker` runs
it) then delivers them all to a receiver in a process of its own (bench/webhooks.py's, which
stands for the other system). Reported a delivery, in milliseconds of CPU (user and system, from
/proc): the worker (this process: claiming, signing, sending, recording outcomes), PostgreSQL
(every postgres process on the machine: run it on an otherwise idle server) and the receiver.
`--batch` is how many deliveries a round of the worker claims and sends side by side (the
service's default is 16).

    python bench/delivery_cost.py [--deliveries 3000] [--batch 16] [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api import create_app  # noqa: E402
from api.http.context import container  # noqa: E402
from api.persistence.database import create_db_engine, scratch_database  # noqa: E402
from api.persistence.migrate import upgrade  # noqa: E402
from api.usecases.common import now  # noqa: E402
from api.usecases.webhooks import (  # noqa: E402
    SCHEDULE_CHANGED,
    Deliverer,
    WebhookSettings,
    record_message,
)
from bench.seeding import awaiting_first_dose  # noqa: E402

SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TICK = os.sysconf("SC_CLK_TCK")
RECEIVER = ("import sys, time; sys.path.insert(0, sys.argv[1]); "
            "from bench.webhooks import Receiver; print(Receiver().url, flush=True); "
            "time.sleep(3600)")


def cpu_seconds(pid: int) -> float:
    """A process's user and system CPU time so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def postgres_seconds() -> float:
    """The CPU time of every postgres process on the machine so far."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip().startswith("postgres"):
                total += cpu_seconds(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue  # a process that ended meanwhile
    return total


def measure(deliveries: int, batch: int) -> dict[str, float]:
    """CPU milliseconds a delivery: the worker, PostgreSQL and the receiver."""
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(ROOT)],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        target = receiver.stdout.readline().strip()
        with scratch_database(SERVER, "trial_schedule_delivery_cost") as url:
            engine = create_db_engine(url)
            upgrade(engine)
            engine.dispose()
            app = create_app({"DATABASE_URL": url, "FEED_SECRET": secrets.token_hex(16)})
            services = container(app)
            services.webhooks.register(target, (SCHEDULE_CHANGED,))
            participant = awaiting_first_dose(app, 0, 1, services.clock.today())[0]
            data = {"participant_id": participant,
                    "moved": [{"visit_id": f"C{n}D1", "from": "2026-12-01", "to": "2026-12-04"}
                              for n in range(2, 7)]}
            with services.units() as uow:
                endpoints = uow.webhooks.active()
            for _ in range(deliveries):
                with services.units() as uow:
                    record_message(uow, endpoints, SCHEDULE_CHANGED, participant, data, now())
                    uow.commit()
            worker = Deliverer(services.units, services.clock, WebhookSettings(batch=batch))
            started = (time.process_time(), postgres_seconds(), cpu_seconds(receiver.pid))
            sent = 0
            while count := worker.drain_once():
                sent += count
            ended = (time.process_time(), postgres_seconds(), cpu_seconds(receiver.pid))
            worker.close()
            with services.units(readonly=True) as uow:
                counted, _ = uow.webhooks.outbox()
            services.engine.dispose()
        if sent != deliveries or counted.get("delivered") != deliveries:
            raise RuntimeError(f"{sent} sent and {counted} recorded of {deliveries}")
        return {name: (end - start) * 1000 / deliveries
                for name, start, end in zip(("worker", "postgres", "receiver"), started, ended,
                                            strict=True)}
    finally:
        receiver.kill()
        receiver.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=16,
                        help="deliveries a worker round claims and sends side by side")
    parser.add_argument("--runs", type=int, default=2)
    options = parser.parse_args()
    print(f"CPU a delivery, in ms: {options.deliveries:,} deliveries, batch {options.batch}")
    print("| run | worker | PostgreSQL | receiver |")
    print("|---|---|---|---|")
    for run in range(1, options.runs + 1):
        cost = measure(options.deliveries, options.batch)
        print(f"| {run} | {cost['worker']:.3f} | {cost['postgres']:.3f} | "
              f"{cost['receiver']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
