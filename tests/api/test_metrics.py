"""`/metrics`: counted by route template and status, never by a value a client chose; open to
loopback only unless configured; plus the gauges read at scrape time and the request id."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api import create_app
from api.http.context import container
from api.http.metrics import GaugeCallback, register_collector
from api.proxy import behind_proxy
from api.usecases.webhooks import Deliverer, WebhookSettings
from scheduler.history import Enrolment
from tests.api.conftest import migrated_app

TOKEN = "0123456789abcdef0123456789abcdef.SECRETPARTsecretpart_-0123456789abcdefgh"


def samples(client, **environ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics", **environ)
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain; version=")
    found = {}
    for family in text_string_to_metric_families(answer.get_data(as_text=True)):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def requests_of(found, method: str, route: str, status: str) -> float:
    key = ("trial_schedule_http_requests_total",
           (("method", method), ("route", route), ("status", status)))
    return found.get(key, 0.0)


def test_requests_are_counted_by_route_template_and_status(client):
    participant = "/v1/participants/<participant_id>"
    before = samples(client)
    client.get("/v1/protocol")
    client.get("/v1/protocol")
    client.get("/v1/participants/3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c")  # no key: 401
    client.get(f"/feeds/{TOKEN}.ics")
    client.get(f"/no/such/{TOKEN}")
    client.open("/healthz", method="BREW")
    after = samples(client)
    assert requests_of(after, "GET", "/v1/protocol", "200") - \
        requests_of(before, "GET", "/v1/protocol", "200") == 2
    assert requests_of(after, "GET", participant, "401") - \
        requests_of(before, "GET", participant, "401") == 1
    assert requests_of(after, "GET", "/feeds/<token>.ics", "404") - \
        requests_of(before, "GET", "/feeds/<token>.ics", "404") == 1
    assert requests_of(after, "GET", "unmatched", "404") - \
        requests_of(before, "GET", "unmatched", "404") == 1
    assert requests_of(after, "other", "unmatched", "405") - \
        requests_of(before, "other", "unmatched", "405") == 1
    latency = ("trial_schedule_http_request_duration_seconds_count",
               (("method", "GET"), ("route", "/v1/protocol"), ("status", "200")))
    assert after[latency] - before.get(latency, 0) == 2


def test_no_label_carries_a_token_a_path_or_a_subject_code(client):
    client.get(f"/feeds/site/{TOKEN}.ics")
    client.get(f"/v1/{TOKEN}")
    client.get("/v1/participants?subject_code=ZS-SECRET-1",
               headers={"Authorization": f"Bearer ts_{TOKEN}"})
    text = client.get("/metrics").get_data(as_text=True)
    assert "SECRETPART" not in text and "0123456789abcdef" not in text
    assert "ZS-SECRET" not in text
    routes = set(re.findall(r'route="([^"]*)"', text))
    assert routes and all(r == "unmatched" or r.startswith("/") for r in routes)
    assert not any(re.search(r"[0-9a-f]{8}-[0-9a-f]{4}", r) for r in routes)


def test_the_build_and_protocol_version_are_reported(client):
    found = samples(client)
    info = [labels for (name, labels), value in found.items()
            if name == "trial_schedule_build_info" and value == 1]
    assert len(info) == 1
    labels = dict(info[0])
    assert labels["protocol_id"] == "NCT07064876"
    assert labels["protocol_version"] == container(client.application).protocol.version
    assert labels["version"]


def test_the_request_id_given_is_echoed_and_a_bad_one_replaced(client):
    answer = client.get("/healthz", headers={"X-Request-ID": "req-42.a:b_c"})
    assert answer.headers["X-Request-ID"] == "req-42.a:b_c"
    for bad in ("a b", "x" * 65, f"{TOKEN}/x", "\x1b[2J", ""):
        answer = client.get("/healthz", headers={"X-Request-ID": bad})
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-ID"]), bad
    one, two = client.get("/healthz"), client.get("/healthz")
    assert one.headers["X-Request-ID"] != two.headers["X-Request-ID"]


def test_only_loopback_may_scrape_unless_a_network_is_allowed(tmp_path):
    app = migrated_app(tmp_path)
    client = app.test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    refused = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert refused.status_code == 404
    assert refused.content_type == "application/problem+json"
    assert b"trial_schedule" not in refused.data
    container(app).engine.dispose()
    allowing = create_app({**app.config, "METRICS_ALLOW": "10.0.0.0/8, 192.0.2.7"})
    client = allowing.test_client()
    for address, status in (("10.20.30.40", 200), ("192.0.2.7", 200), ("192.0.2.8", 404),
                            ("127.0.0.1", 200)):
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": address}).status_code == \
            status, address
    container(allowing).engine.dispose()


def test_behind_the_trusted_proxy_the_real_client_is_judged(tmp_path, monkeypatch):
    app = behind_proxy(migrated_app(tmp_path), {"TRIAL_SCHEDULE_TRUSTED_PROXIES": "1"})
    client = app.test_client()
    loopback = {"REMOTE_ADDR": "127.0.0.1"}  # nginx, on the same machine
    outside = client.get("/metrics", environ_base=loopback,
                         headers={"X-Forwarded-For": "203.0.113.9"})
    assert outside.status_code == 404
    inside = client.get("/metrics", environ_base=loopback,
                        headers={"X-Forwarded-For": "127.0.0.1"})
    assert inside.status_code == 200
    container(app).engine.dispose()


def test_an_allow_setting_that_is_not_a_network_is_refused_at_start(tmp_path):
    with pytest.raises(ValueError, match="TRIAL_SCHEDULE_METRICS_ALLOW: 'everyone' is not"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
                    "FEED_SECRET": "s", "METRICS_ALLOW": "10.0.0.0/8,everyone"})


def test_a_registered_collector_is_read_on_every_scrape(tmp_path):
    app = migrated_app(tmp_path)
    depth = {"pending": 3, "dead": 1}
    register_collector(app, GaugeCallback(
        "trial_schedule_webhook_outbox_deliveries", "Deliveries in the outbox, by state",
        ["state"], lambda: {(state,): count for state, count in depth.items()}))
    client = app.test_client()
    found = samples(client)
    name = "trial_schedule_webhook_outbox_deliveries"
    assert found[name, (("state", "pending"),)] == 3
    assert found[name, (("state", "dead"),)] == 1
    depth["pending"] = 0
    assert samples(client)[name, (("state", "pending"),)] == 0
    container(app).engine.dispose()


def test_database_errors_are_counted_by_kind(tmp_path):
    away = f"sqlite:///{tmp_path / 'no-such-folder' / 'x.sqlite3'}"
    app = create_app({"DATABASE_URL": away, "TESTING": True, "FEED_SECRET": "s",
                      "SITE_FEED_DIR": str(tmp_path)})
    client = app.test_client()
    name = "trial_schedule_database_errors_total"
    # The scrape answers while the database is away, without the gauge it cannot read.
    before = samples(client)
    assert not any(key[0] == "trial_schedule_visits_overdue" for key in before)
    assert any(key[0] == "trial_schedule_build_info" for key in before)
    assert client.get("/v1/participants",
                      headers={"Authorization": "Bearer ts_x"}).status_code == 503
    assert client.get("/readyz").status_code == 503
    after = samples(client)
    kind = (("kind", "OperationalError"),)
    assert after[name, kind] - before.get((name, kind), 0) == 2
    container(app).engine.dispose()


def test_the_webhook_outbox_reports_its_depth_by_state_and_its_failures(tmp_path):
    """The outbox's gauges, read from its table at scrape time: an enrolment queues one
    delivery per endpoint; a receiver answering 500 makes each attempt a failure."""
    app = migrated_app(tmp_path)
    services = container(app)
    services.webhooks.register("http://127.0.0.1:9/hooks", None)
    client = app.test_client()
    name, failures = "trial_schedule_webhook_outbox_deliveries", \
        "trial_schedule_webhook_delivery_failures_total"
    found = samples(client)
    assert [found[name, (("state", s),)] for s in ("pending", "delivered", "dead")] == [0, 0, 0]
    assert found[failures, ()] == 0
    text = client.get("/metrics").get_data(as_text=True)
    assert f"# TYPE {failures} counter" in text
    services.participants.enrol(Enrolment("MX-001", dt.date(2026, 3, 2)), "edc")
    assert samples(client)[name, (("state", "pending"),)] == 1
    deliverer = Deliverer(services.units, services.clock,
                          WebhookSettings(max_attempts=2, retry_base_seconds=0.0),
                          sender=lambda *_: 500)
    deliverer.drain_once()
    found = samples(client)
    assert (found[name, (("state", "pending"),)], found[failures, ()]) == (1, 1)
    deliverer.drain_once()
    found = samples(client)
    assert (found[name, (("state", "dead"),)], found[failures, ()]) == (1, 2)
    deliverer.close()
    services.engine.dispose()
