"""Prometheus metrics at `GET /metrics`, in Prometheus's text exposition format.

What is counted, and how each is labelled (never with a token, a subject code, a path or any
other value a client chooses; only the route *template*, so the label sets stay bounded):

- `trial_schedule_http_requests_total{method, route, status}` and
  `trial_schedule_http_request_duration_seconds{method, route, status}` (a histogram), counted
  per request by `api.http.observe`; a request no route matched is `route="unmatched"`.
- `trial_schedule_database_errors_total{kind}`: the database could not be reached (the 503s),
  by the driver error's class.
- `trial_schedule_visits_overdue`: open visits whose window closed before the site's today,
  read from the stored visit states at scrape time (`Worklist.overdue_count`).
- `trial_schedule_build_info{version, protocol_id, protocol_version}`: always 1.
- whatever another part of the service registers with `register_collector`, read at scrape
  time; `register_webhook_outbox` names the webhook outbox's: deliveries by state and failed
  delivery attempts.

Under gunicorn each worker is its own process: with `PROMETHEUS_MULTIPROC_DIR` set (gunicorn's
configuration sets it, `api/gunicorn_conf.py`) every process writes its counters to files there
and a scrape adds them up (`MultiProcessCollector`), whichever worker answers. Values read from
the database at scrape time need no such files: any worker reads the same rows.

`/metrics` answers only clients on loopback (the scraper beside the service, or through the
trusted proxy: the address judged is the real client's, after ProxyFix) unless
`TRIAL_SCHEDULE_METRICS_ALLOW` names other networks (comma-separated CIDRs, e.g.
`10.0.0.0/8,192.0.2.7/32`); everyone else gets 404, as if there were nothing there.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import metadata
from typing import Protocol

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from werkzeug.exceptions import NotFound

from api.http.context import container

blp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)

EXTENSION = "trial_schedule.metrics"
ALLOW_SETTING = "METRICS_ALLOW"  # TRIAL_SCHEDULE_METRICS_ALLOW
UNMATCHED = "unmatched"

REQUESTS = Counter("trial_schedule_http_requests", "HTTP requests answered, by route template "
                   "and status", ["method", "route", "status"])
# Buckets around what the service answers in: feeds and reads in a few milliseconds, writes
# in tens, the site feed of thousands of participants in seconds (BENCHMARKS.md).
LATENCY = Histogram("trial_schedule_http_request_duration_seconds", "Time to answer an HTTP "
                    "request (until the app returns its response), by route template and status",
                    ["method", "route", "status"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                             5.0, 10.0, 30.0))
DATABASE_ERRORS = Counter("trial_schedule_database_errors", "Requests that found the database "
                          "unreachable (answered 503), by driver error class", ["kind"])


class Collector(Protocol):
    """What `register_collector` takes: anything prometheus_client can collect from."""

    def collect(self) -> Iterable[Metric]: ...


class GaugeCallback:
    """A gauge read at scrape time by calling `read`: a mapping from label values (one tuple
    per series, in the order of `labels`) to the value. For counts held in the database, such
    as the webhook outbox's deliveries by state:

        register_collector(app, GaugeCallback(
            "trial_schedule_webhook_outbox_deliveries", "Deliveries in the outbox, by state",
            ["state"], lambda: {(state,): n for state, n in outbox.count_by_state().items()}))
    """

    def __init__(self, name: str, documentation: str, labels: Iterable[str],
                 read: Callable[[], Mapping[tuple[str, ...], float]]) -> None:
        self.name, self.documentation, self.labels, self.read = \
            name, documentation, list(labels), read

    def collect(self) -> Iterator[Metric]:
        """The gauge as `read` gives it now; left out of this scrape, with a warning, when it
        cannot be read (the database away): the rest of the scrape still answers, and the
        gap is what the operator sees."""
        try:
            read = self.read()
        except Exception as error:
            log.warning("metric %s not read: %s", self.name, type(error).__name__)
            return
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, value in sorted(read.items()):
            family.add_metric(list(values), value)
        yield family


class CounterCallback(GaugeCallback):
    """A counter read at scrape time, for a count kept in the database that only grows (such
    as failed delivery attempts recorded in the webhook outbox)."""

    def collect(self) -> Iterator[Metric]:
        for gauge in super().collect():
            family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
            for sample in gauge.samples:
                family.add_metric([sample.labels[name] for name in self.labels], sample.value)
            yield family


def register_webhook_outbox(app: Flask, count_by_state: Callable[[], Mapping[str, int]],
                            failed_attempts: Callable[[], int]) -> None:
    """The webhook outbox's metrics, under names fixed here: deliveries waiting, delivered
    and given up on (`trial_schedule_webhook_outbox_deliveries{state}`, from
    `count_by_state()`, e.g. `{"pending": 3, "delivered": 120, "dead": 1}`), and failed
    delivery attempts (`trial_schedule_webhook_delivery_failures_total`, from
    `failed_attempts()`). Both read the outbox table at scrape time, so the worker, a process
    of its own, needs no metrics files of its own."""
    register_collector(app, GaugeCallback(
        "trial_schedule_webhook_outbox_deliveries", "Webhook deliveries in the outbox, by state",
        ["state"], lambda: {(state,): count for state, count in count_by_state().items()}))
    register_collector(app, CounterCallback(
        "trial_schedule_webhook_delivery_failures", "Webhook delivery attempts that failed "
        "(an error, a timeout or a non-2xx answer)", [], lambda: {(): failed_attempts()}))


def register_collector(app: Flask, collector: Collector) -> None:
    """Add `collector` to what `/metrics` on `app` reports; it is called on every scrape, in
    whichever process answers, so it must read shared state (the database), not its own."""
    app.extensions[EXTENSION].append(collector)


def database_error(kind: str) -> None:
    """Count one request that found the database unreachable; `kind` is the driver error's
    class name (a handful of values, never a message)."""
    DATABASE_ERRORS.labels(kind).inc()


def init_app(app: Flask) -> None:
    """`/metrics`, reporting the counters plus the visits overdue and the build, on `app`."""
    collectors: list[Collector] = [
        GaugeCallback("trial_schedule_visits_overdue", "Open visits whose window closed before "
                      "the site's today, across all participants", [], _overdue),
        GaugeCallback("trial_schedule_build_info", "The running build and the protocol version "
                      "new enrolments are pinned to (always 1)",
                      ["version", "protocol_id", "protocol_version"], _build),
    ]
    app.extensions[EXTENSION] = collectors
    allowed = _networks(app.config.get(ALLOW_SETTING) or "")
    app.extensions[EXTENSION + ".allow"] = allowed
    app.register_blueprint(blp)


def _overdue() -> Mapping[tuple[str, ...], float]:
    services = container()
    return {(): services.worklist.overdue_count(services.clock.today())}


def _build() -> Mapping[tuple[str, ...], float]:
    protocol = container().protocol
    return {(_version(), protocol.id, protocol.version): 1}


def _version() -> str:
    try:
        return metadata.version("trial-schedule")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "unknown"


def _networks(setting: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks `TRIAL_SCHEDULE_METRICS_ALLOW` names, beside loopback.

    >>> _networks("10.0.0.0/8, 192.0.2.7")
    (IPv4Network('10.0.0.0/8'), IPv4Network('192.0.2.7/32'))
    >>> _networks("")
    ()
    """
    found = []
    for item in setting.split(","):
        if item.strip():
            try:
                found.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError as error:
                raise ValueError(f"TRIAL_SCHEDULE_METRICS_ALLOW: {item.strip()!r} is not a "
                                 "network (e.g. 10.0.0.0/8)") from error
    return tuple(found)


def may_scrape(address: str | None,
               allowed: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Loopback always; another address only inside a network allowed.

    >>> may_scrape("127.0.0.1", ()), may_scrape("::1", ()), may_scrape("203.0.113.9", ())
    (True, True, False)
    >>> may_scrape("10.1.2.3", [ipaddress.ip_network("10.0.0.0/8")]), may_scrape(None, ())
    (True, False)
    """
    try:
        client = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped:
        client = client.ipv4_mapped
    return client.is_loopback or any(client in network for network in allowed)


class _Scrape:
    """One scrape's registry: the processes' counters, then every registered collector."""

    def __init__(self, collectors: Iterable[Collector]) -> None:
        self.collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            yield from MultiProcessCollector(None).collect()  # type: ignore[no-untyped-call]
        else:
            yield from REGISTRY.collect()
        for collector in self.collectors:
            yield from collector.collect()


@blp.get("/metrics")
def metrics() -> Response:
    """The metrics, for a Prometheus scraper on loopback or in a network allowed."""
    if not may_scrape(request.remote_addr, current_app.extensions[EXTENSION + ".allow"]):
        raise NotFound()
    body = generate_latest(_Scrape(current_app.extensions[EXTENSION]))
    return Response(body, content_type=CONTENT_TYPE_LATEST)
