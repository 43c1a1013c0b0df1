"""Signed change notifications (Standard Webhooks 1.0) through a transactional outbox.

A write records its messages in its own unit of work (`WebhookOutbox`, the participants'
`on_written` hook): one message per event, and one pending delivery of it to each active
endpoint subscribed to its type, so a write that rolls back sends nothing and a committed one
is never lost. The worker (`Deliverer`, `trial-schedule worker`) leases due deliveries, signs
and sends them, and records each outcome: delivered on a 2xx; otherwise retried with
exponential backoff and jitter, until the last attempt makes it `dead`; a 410 Gone disables
the endpoint (Standard Webhooks, "Retry schedule" and "Endpoint disabling"). The message id is
the `webhook-id`, the same on every attempt, so a receiver drops repeats by it.

Fanning out at write time (rather than when draining) fixes who is told of an event when it
happens: an endpoint registered later gets no history, one deleted stops at once, and each
delivery has its own attempts and state, which `GET /v1/webhooks/{id}/deliveries` lists.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import logging
import random
import secrets
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from standardwebhooks import Webhook

from api.persistence.records import (
    ClaimedDelivery,
    Outcome,
    OverdueVisit,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from api.persistence.unit_of_work import UnitOfWork, UnitOfWorkFactory
from api.usecases.common import NotFound, SiteClock, now
from api.usecases.participants import Written
from api.usecases.worklist import (
    Reprojection,
    day_statuses,
    listed_for_today,
    unproved,
    worklist_rows,
)
from scheduler.subscription import VisitState

ENROLLED = "participant.enrolled"
SCHEDULE_CHANGED = "schedule.changed"
VISIT_OVERDUE = "visit.overdue"
OFF_STUDY = "participant.off_study"
EVENT_TYPES = (ENROLLED, SCHEDULE_CHANGED, VISIT_OVERDUE, OFF_STUDY)
USER_AGENT = "trial-schedule-webhooks/1"
log = logging.getLogger("trial_schedule.worker")


@dataclass(frozen=True)
class WebhookSettings:
    """How the worker delivers; every value from `TRIAL_SCHEDULE_WEBHOOK_*` (docs/webhooks.md).
    The lease must outlast the timeout, so an attempt still running is never taken twice."""

    max_attempts: int = 8
    retry_base_seconds: float = 5.0
    retry_cap_seconds: float = 10 * 3600.0
    timeout_seconds: float = 10.0
    lease_seconds: float = 60.0
    poll_seconds: float = 0.1
    # Woken by a NOTIFY, wait this long for more messages to join the round: under a burst
    # of writes a round then carries several deliveries instead of one each.
    gather_seconds: float = 0.05
    overdue_seconds: float = 300.0
    batch: int = 16

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> WebhookSettings:
        names = cls.__dataclass_fields__
        found = {name: config[f"WEBHOOK_{name.upper()}"] for name in names
                 if config.get(f"WEBHOOK_{name.upper()}") is not None}
        return cls(**{name: type(getattr(cls, name))(value) for name, value in found.items()})

    def backoff(self, attempts: int, draw: Callable[[], float] = random.random) -> float:
        """Seconds before the next attempt after `attempts` failed ones: the base times 4 to
        the power of the failures before, capped, with equal jitter (half fixed, half random),
        so receivers that failed together are not all retried at one moment.

        >>> [WebhookSettings().backoff(n, lambda: 1.0) for n in (1, 2, 3)]
        [5.0, 20.0, 80.0]
        >>> WebhookSettings().backoff(1, lambda: 0.0)
        2.5
        """
        delay = min(self.retry_cap_seconds, self.retry_base_seconds * 4.0 ** (attempts - 1))
        return delay / 2 + draw() * delay / 2


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes one: `whsec_` and 32 random bytes in
    base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def message_body(event_type: str, when: dt.datetime, data: Mapping[str, Any]) -> str:
    """The payload Standard Webhooks recommends, `{type, timestamp, data}`, compact: the exact
    text signed and sent."""
    stamp = when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"type": event_type, "timestamp": stamp, "data": data},
                      separators=(",", ":"), ensure_ascii=False)


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day is not None else None


def schedule_change(before: Mapping[str, VisitState], after: Mapping[str, VisitState]) \
        -> dict[str, list[dict[str, Any]]]:
    """What a write did to the visits' dates, as a protocol version change lists it: moved
    (in both, a different date; a held visit has none), added, removed. Visits are listed in
    date order, then by id; a status alone (done, skipped) is no change of schedule."""
    def shown(states: Mapping[str, VisitState]) -> dict[str, VisitState]:
        return {vid: state for vid, state in states.items() if state.present}

    old, new = shown(before), shown(after)

    def order(vid: str) -> tuple[str, str]:
        state = new.get(vid) or old[vid]
        return (_iso(state.date) or "9999-99-99", vid)

    moved = [{"visit_id": vid, "old_date": _iso(old[vid].date), "new_date": _iso(new[vid].date)}
             for vid in sorted(set(old) & set(new), key=order) if old[vid].date != new[vid].date]
    added = [{"visit_id": vid, "date": _iso(new[vid].date)}
             for vid in sorted(set(new) - set(old), key=order)]
    removed = [{"visit_id": vid, "date": _iso(old[vid].date)}
               for vid in sorted(set(old) - set(new), key=order)]
    return {"moved": moved, "added": added, "removed": removed}


def messages_of(written: Written) -> list[tuple[str, dict[str, Any]]]:
    """The events a write announces, each `(type, data)`. Data names the participant by id
    and pseudonymous subject code, never by free text (no reasons, notes or descriptions:
    the rule the feeds follow)."""
    participant = written.participant
    who = {"participant_id": participant.id,
           "subject_code": participant.enrolment.subject_code,
           "protocol_version": participant.protocol_version,
           "participant_version": participant.version}
    event = written.event
    if event is None:
        return [(ENROLLED, {**who, "cryoablation_date":
                            participant.enrolment.cryoablation_date.isoformat()})]
    found: list[tuple[str, dict[str, Any]]] = []
    change = schedule_change(written.before, written.after)
    if any(change.values()):
        found.append((SCHEDULE_CHANGED, {**who, "cause": event.type, **change}))
    if event.type == "off_study":
        # The reason of an off_study event is a code (withdrawal_of_consent, death, ...);
        # its note is free text and stays out.
        found.append((OFF_STUDY, {**who, "date": _iso(event.date), "reason": event.reason}))
    return found


def overdue_data(visit: OverdueVisit, today: dt.date) -> dict[str, Any]:
    return {"participant_id": visit.participant_id, "subject_code": visit.subject_code,
            "protocol_version": visit.protocol_version, "visit_id": visit.visit_id,
            "kind": visit.kind, "date": visit.date.isoformat(),
            "window": {"earliest": visit.earliest.isoformat(),
                       "latest": visit.latest.isoformat()},
            "today": today.isoformat()}


def record_message(uow: UnitOfWork, endpoints: list[WebhookEndpoint], event_type: str,
                   participant_id: str, data: Mapping[str, Any], when: dt.datetime) -> bool:
    """Put one message in the outbox, with a delivery to each endpoint that wants its type;
    nothing when none does. True when something was recorded."""
    wanting = [endpoint.id for endpoint in endpoints if endpoint.wants(event_type)]
    if not wanting:
        return False
    message_id = f"msg_{uuid.uuid4().hex}"
    uow.webhooks.add_message(WebhookMessage(message_id, event_type, participant_id,
                                            message_body(event_type, when, data), when),
                             wanting)
    return True


@dataclass(frozen=True)
class WebhookOutbox:
    """The participants' `on_written` hook: records a write's messages in the write's own
    unit of work. With no active endpoint it costs one small read."""

    def __call__(self, uow: UnitOfWork, written: Written) -> None:
        endpoints = uow.webhooks.active()
        if not endpoints:
            return
        when = now()
        for event_type, data in messages_of(written):
            record_message(uow, endpoints, event_type, written.participant.id, data, when)


@dataclass
class Webhooks:
    """What admins do with endpoints: register (the secret is shown once), list, delete, read
    and redeliver their deliveries."""

    units: UnitOfWorkFactory

    def outbox(self) -> tuple[dict[str, int], int]:
        """The outbox's deliveries by state, and the delivery attempts that failed: what an
        operator watches (`/metrics`)."""
        with self.units(readonly=True) as uow:
            return uow.webhooks.outbox()

    def register(self, url: str, event_types: tuple[str, ...] | None) \
            -> tuple[WebhookEndpoint, str]:
        secret = new_secret()
        endpoint = WebhookEndpoint(str(uuid.uuid4()), url, secret, event_types, "active",
                                   now())
        with self.units() as uow:
            uow.webhooks.add_endpoint(endpoint)
            uow.commit()
        return endpoint, secret

    def listing(self) -> list[WebhookEndpoint]:
        with self.units(readonly=True) as uow:
            return uow.webhooks.endpoints()

    def get(self, endpoint_id: str) -> WebhookEndpoint:
        with self.units(readonly=True) as uow:
            return _found(uow.webhooks.endpoint(endpoint_id))

    def delete(self, endpoint_id: str) -> None:
        """Stop delivering to the endpoint at once; its pending deliveries become dead."""
        with self.units() as uow:
            _found(uow.webhooks.endpoint(endpoint_id))
            when = now()
            uow.webhooks.set_status(endpoint_id, "deleted", when)
            uow.webhooks.bury_pending(endpoint_id, "endpoint deleted", when)
            uow.commit()

    def deliveries(self, endpoint_id: str, state: str | None, limit: int) \
            -> list[WebhookDelivery]:
        with self.units(readonly=True) as uow:
            _found(uow.webhooks.endpoint(endpoint_id))
            return uow.webhooks.deliveries(endpoint_id, state, limit)

    def redeliver(self, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
        """Send a delivery again from its first attempt (a dead one, after the receiver is
        fixed); the `webhook-id` stays the message's."""
        with self.units() as uow:
            endpoint = _found(uow.webhooks.endpoint(endpoint_id))
            if endpoint.status != "active":
                raise EndpointDisabled()
            delivery = _found(uow.webhooks.redeliver(endpoint_id, delivery_id, now()))
            uow.webhooks.wake()
            uow.commit()
        return delivery


class EndpointDisabled(Exception):
    """The endpoint answered 410 Gone and was disabled: nothing is sent to it."""


T = TypeVar("T")


def _found(value: T | None) -> T:
    if value is None:
        raise NotFound()
    return value


# Sends one signed request; answers the HTTP status, or raises OSError when none came back.
Sender = Callable[[str, Mapping[str, str], bytes, float], int]


_held = threading.local()  # each sending thread's open connections, by scheme, host and port


def _connection(scheme: str, host: str, port: int | None, timeout: float) \
        -> tuple[http.client.HTTPConnection, bool]:
    """The thread's kept-alive connection to this origin (and True), or a new one."""
    held: dict[tuple[str, str, int | None], http.client.HTTPConnection] = \
        _held.__dict__.setdefault("connections", {})
    key = (scheme, host, port)
    if key in held:
        return held[key], True
    kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    held[key] = kind(host, port, timeout=timeout)
    return held[key], False


def _forget(scheme: str, host: str, port: int | None) -> None:
    connection = _held.__dict__.get("connections", {}).pop((scheme, host, port), None)
    if connection is not None:
        connection.close()


def send(url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> int:
    """POST `body` to `url` and answer the status, whatever it is; redirects are not followed
    (Standard Webhooks counts only a 2xx). The connection is kept alive for the next delivery
    to the same origin; one the receiver closed meanwhile is opened again, once."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    origin = (parts.scheme, parts.hostname, parts.port)
    while True:
        connection, reused = _connection(*origin, timeout)
        try:
            connection.request("POST", target, body=body, headers=dict(headers))
            answer = connection.getresponse()
            answer.read(65536)
            if answer.will_close or not answer.isclosed():
                _forget(*origin)  # closed by the receiver, or a body longer than we read
            return answer.status
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            _forget(*origin)
            if not reused:
                raise
        except BaseException:
            _forget(*origin)
            raise


def signed_headers(delivery: ClaimedDelivery, when: dt.datetime) -> dict[str, str]:
    """The Standard Webhooks headers: `webhook-id` (the message's, on every attempt),
    `webhook-timestamp` (this attempt's, unix seconds) and `webhook-signature`
    (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the endpoint's secret)."""
    signature = Webhook(delivery.secret).sign(delivery.message_id, when, delivery.body)
    return {"content-type": "application/json", "user-agent": USER_AGENT,
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": signature}


@dataclass
class Deliverer:
    """The worker's work: drain the outbox and announce overdue visits. Any number of workers
    may run on PostgreSQL (claims skip each other's rows); on SQLite run one."""

    units: UnitOfWorkFactory
    clock: SiteClock
    settings: WebhookSettings = field(default_factory=WebhookSettings)
    sender: Sender = send
    # Recomputes held participants' visits for the day, as the worklist does (rule
    # held-dose-projection), so a visit is announced overdue only where the worklist says so.
    reproject: Reprojection | None = None
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)

    def drain_once(self, look_first: bool = True) -> int:
        """Claim the due deliveries, send them side by side, record each outcome; how many
        were attempted. `look_first`: read whether any is due before claiming, so that an
        idle poll takes no write lock (SQLite has one for the whole database)."""
        started = now()
        lease = started + dt.timedelta(seconds=self.settings.lease_seconds)
        if look_first:
            with self.units(readonly=True) as uow:
                if not uow.webhooks.has_due(started):
                    return 0
        with self.units() as uow:
            claimed = uow.webhooks.claim(started, lease, self.settings.batch)
            uow.commit()
        if not claimed:
            return 0
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.settings.batch, "webhook")
        outcomes = list(self._pool.map(self.attempt, claimed))
        # Every outcome of the round in one transaction and one statement: one commit (one
        # fsync on SQLite) per round rather than per delivery.
        settled = [self.outcome(delivery, status, error)
                   for delivery, (status, error) in zip(claimed, outcomes, strict=True)]
        with self.units() as uow:
            uow.webhooks.settle(settled)
            when = now()
            for gone in {o.endpoint_id for o, (status, _) in zip(claimed, outcomes, strict=True)
                         if status == 410}:
                uow.webhooks.set_status(gone, "disabled", when)
                uow.webhooks.bury_pending(gone, "endpoint disabled: 410 Gone", when)
                log.warning("webhook endpoint %s answered 410 Gone: disabled", gone)
            uow.commit()
        for delivery, done in zip(claimed, settled, strict=True):
            if done.state == "dead":
                log.warning("webhook delivery %s of %s to endpoint %s is dead after %d "
                            "attempts: %s", delivery.id, delivery.message_id,
                            delivery.endpoint_id, delivery.attempts, done.error)
        return len(claimed)

    def attempt(self, delivery: ClaimedDelivery) -> tuple[int | None, str | None]:
        """One attempt: the receiver's status (None when none came) and the error, if any."""
        when = now()
        try:
            status = self.sender(delivery.url, signed_headers(delivery, when),
                                 delivery.body.encode(), self.settings.timeout_seconds)
        except (OSError, ValueError, http.client.HTTPException) as failure:
            # Refused, timed out, reset, not HTTP, a bad address: no answer.
            return None, f"{type(failure).__name__}: {failure}"
        return status, None if 200 <= status < 300 else f"HTTP {status}"

    def outcome(self, delivery: ClaimedDelivery, status: int | None, error: str | None) \
            -> Outcome:
        """What an attempt came to: delivered on a 2xx; dead after the last attempt, or at
        once on 410 Gone (which also disables the endpoint); else pending, its next attempt
        put off by the backoff."""
        when = now()
        if error is None:
            return Outcome(delivery.id, delivery.attempts, "delivered", status, None, when, when)
        if status == 410 or delivery.attempts >= self.settings.max_attempts:
            return Outcome(delivery.id, delivery.attempts, "dead", status, error, when)
        later = when + dt.timedelta(seconds=self.settings.backoff(delivery.attempts))
        return Outcome(delivery.id, delivery.attempts, "pending", status, error, later)

    def announce_overdue(self) -> int:
        """Announce each visit the site's today has made overdue, once (no write made it so:
        the day did). Overdue means what the worklist and the schedule say it means
        (`worklist.day_statuses`: of chained visits only the first open one). Remembered in
        the same transaction as the messages, so a restart announces nothing twice; remembered
        even with no endpoint, so registering one later brings no flood of old news."""
        today = self.clock.today()
        with self.units() as uow:
            uow.webhooks.lock_overdue_scan()
            # The worklist's read of the day (open visits whose window has opened), through
            # its index, and its day statuses: overdue exactly where the worklist says so.
            opened = listed_for_today(uow.visit_states.worklist(today, today, today), today,
                                      worklist_rows(today, today, today), self.reproject)
            rows = [row for row, status in unproved(day_statuses(opened, today),
                                                    uow.visit_states.of_many)
                    if status == "overdue"]
            announced = uow.webhooks.announced(sorted({row.participant_id for row in rows}))
            fresh = [row for row in rows
                     if (row.participant_id, row.visit_id, row.latest) not in announced]
            if not fresh:
                return 0
            endpoints = uow.webhooks.active()
            versions: dict[str, str] = {}
            when = now()
            for row in fresh:
                if row.participant_id not in versions:
                    participant = uow.participants.get(row.participant_id)
                    versions[row.participant_id] = participant.protocol_version \
                        if participant else ""
                visit = OverdueVisit(row.participant_id, row.subject_code,
                                     versions[row.participant_id], row.visit_id, row.kind,
                                     row.date, row.earliest, row.latest)
                uow.webhooks.announce_overdue(visit, when)
                record_message(uow, endpoints, VISIT_OVERDUE, visit.participant_id,
                               overdue_data(visit, today), when)
            uow.commit()
        return len(fresh)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


Waiter = Callable[[float], None]


def run(deliverer: Deliverer, stop: threading.Event, wait: Waiter | None = None) -> None:
    """The worker loop until `stop` is set: drain whatever is due, announce overdue visits
    every `overdue_seconds`, and between rounds wait up to `poll_seconds` (`wait`: woken
    early by a NOTIFY on PostgreSQL; by default a plain sleep)."""
    settings = deliverer.settings
    next_scan = 0.0
    pause = wait or stop.wait
    attempted = 0
    try:
        while not stop.is_set():
            try:
                clock = dt.datetime.now(dt.UTC).timestamp()
                if clock >= next_scan:
                    deliverer.announce_overdue()
                    next_scan = clock + settings.overdue_seconds
                attempted = deliverer.drain_once(look_first=attempted == 0)
                if attempted < settings.batch:
                    pause(settings.poll_seconds)
            except Exception:
                # The database went away, say: nothing claimed is lost (its lease runs out),
                # so log, wait, and go on rather than end the worker.
                log.exception("webhook round failed; retrying")
                stop.wait(max(settings.poll_seconds, 1.0))
    finally:
        deliverer.close()
