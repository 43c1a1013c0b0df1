"""Why the webhook workers are woken after a write commits, not inside it (api/persistence/
webhooks.py `Waker`): commits a second on PostgreSQL, 16 connections each inserting one row
per transaction, three ways, in interleaved rounds on a scratch database.

- `none`: no NOTIFY (a write with no webhook endpoint);
- `inside`: `pg_notify` in each transaction, as the outbox first did. PostgreSQL takes a
  database-wide lock for a notifying transaction's commit and holds it until the commit's WAL
  is flushed, so these commits queue for one another instead of sharing a flush;
- `after`: each transaction commits, then flags one thread that sends a NOTIFY in a
  transaction of its own for every flag raised since its last (the `Waker`).

    python bench/notify_commits.py [--seconds 4] [--rounds 2] [--connections 16]

Reported as commits a second and as a ratio to `none` in the same round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import psycopg
import sqlalchemy as sa

from api.persistence.database import scratch_database

SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WAYS = ("none", "inside", "after")


def commits_per_second(dsn: str, way: str, seconds: float, connections: int) -> tuple[float, int]:
    """Commits a second over all connections, and the NOTIFYs sent by the `after` thread."""
    stop = time.monotonic() + seconds
    done = [0] * connections
    due = threading.Event()
    notified = [0]

    def notifier() -> None:
        with psycopg.connect(dsn, autocommit=True) as connection:
            while time.monotonic() < stop:
                if due.wait(0.05):
                    due.clear()
                    connection.execute("NOTIFY bench_notify_commits")
                    notified[0] += 1

    def writer(number: int) -> None:
        with psycopg.connect(dsn) as connection:
            while time.monotonic() < stop:
                connection.execute("INSERT INTO probe (body) VALUES ('x')")
                if way == "inside":
                    connection.execute("SELECT pg_notify('bench_notify_commits', '')")
                connection.commit()
                if way == "after":
                    due.set()
                done[number] += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(connections)]
    if way == "after":
        threads.append(threading.Thread(target=notifier))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / seconds, notified[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    options = parser.parse_args()
    with scratch_database(SERVER, "trial_schedule_notify") as url:
        dsn = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(
            hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("CREATE TABLE probe (id serial PRIMARY KEY, body text)")
        rates: dict[str, list[float]] = {way: [] for way in WAYS}
        for round_ in range(options.rounds):
            for way in WAYS:
                rate, notified = commits_per_second(dsn, way, options.seconds,
                                                    options.connections)
                rates[way].append(rate)
                extra = f", {notified} NOTIFYs" if way == "after" else ""
                print(f"round {round_ + 1} {way:>6}: {rate:,.0f} commits/s{extra}", flush=True)
    print(f"\n{options.connections} connections, {options.rounds} rounds of {options.seconds} s "
          "(medians):")
    base = statistics.median(rates["none"])
    for way in WAYS:
        rate = statistics.median(rates[way])
        print(f"  {way:>6}: {rate:,.0f} commits/s, {rate / base:.2f} of none")


if __name__ == "__main__":
    main()
