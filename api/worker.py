"""`trial-schedule worker`: the process that drains the webhook outbox and announces overdue
visits (api/usecases/webhooks.py). `make run` starts one beside gunicorn.

On PostgreSQL it LISTENs for the NOTIFY sent after each write that put messages in the outbox
has committed (`api.persistence.webhooks.Waker`), so a delivery leaves within milliseconds of
the commit, and polls as well (retries fall due with no notice); several workers may run,
their claims skip each other's rows. On SQLite it polls the outbox every
`TRIAL_SCHEDULE_WEBHOOK_POLL_SECONDS`; run one worker per database file.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from api.http.context import container
from api.persistence.webhooks import CHANNEL
from api.usecases.webhooks import Deliverer, Waiter, WebhookSettings, run

log = logging.getLogger("trial_schedule.worker")
DEFAULT_NICE = 10  # TRIAL_SCHEDULE_WEBHOOK_NICE: the worker's CPU priority below the API's


def deliverer_for(app: Flask) -> Deliverer:
    """The worker's use case over the app's database, clock and settings."""
    services = container(app)
    return Deliverer(services.units, services.clock, WebhookSettings.from_config(app.config),
                     reproject=services.participants.visits_for_day)


@contextmanager
def notices(engine: Engine, stop: threading.Event, gather: float) \
        -> Iterator[Waiter | None]:
    """A wait that returns `gather` seconds after a NOTIFY arrives (PostgreSQL), having
    taken in the notices that came meanwhile; else None."""
    if engine.dialect.name != "postgresql":
        yield None
        return
    raw = engine.raw_connection()
    try:
        connection: Any = raw.driver_connection
        connection.autocommit = True
        connection.execute(f"LISTEN {CHANNEL}")

        def wait(seconds: float) -> None:
            woken = False
            for _ in connection.notifies(timeout=seconds, stop_after=1):
                woken = True
            if woken:
                stop.wait(gather)
                for _ in connection.notifies(timeout=0.001):
                    pass
        yield wait
    finally:
        raw.close()


def lighter_commits(engine: Engine) -> None:
    """SQLite: the worker's own commits skip the fsync (synchronous=NORMAL, per connection;
    the API's stay FULL). What the worker commits is bookkeeping that a power cut may take
    back without loss: a delivery marked delivered is sent again (receivers drop it by
    `webhook-id`), a lease or an attempt count is forgotten, and an overdue announcement
    goes with its messages, to be made again. Each fsync would hold SQLite's one write lock
    that the API's writes queue for."""
    @event.listens_for(engine, "connect")
    def _normal(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    engine.dispose()  # connections made before this listener: none kept


def serve(app: Flask) -> None:
    """Run until SIGTERM or SIGINT; the round in progress finishes first (a delivery cut off
    by a kill is leased, not lost: it is attempted again when its lease runs out)."""
    stop = threading.Event()

    def stopping(signum: int, _frame: Any) -> None:
        log.info("worker stopping on signal %d", signum)
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    # Deliveries are background work: on a machine the API shares, a write should not wait
    # for the CPU behind them (they wait a little longer instead).
    os.nice(int(app.config.get("WEBHOOK_NICE", DEFAULT_NICE)))
    deliverer = deliverer_for(app)
    engine = container(app).engine
    if engine.dialect.name == "sqlite":
        lighter_commits(engine)
    log.info("webhook worker started on %s", engine.url.render_as_string(hide_password=True))
    try:
        with notices(engine, stop, deliverer.settings.gather_seconds) as wait:
            run(deliverer, stop, wait)
    finally:
        engine.dispose()
