"""Under gunicorn: `/metrics` adds up every worker's counts (prometheus-client's multiprocess
mode), and `TRIAL_SCHEDULE_LOG_FORMAT=json` makes every log line one JSON object carrying the
request id, route, status, duration and API key name, and never a token or a key."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from api.http.context import container
from tests.api.conftest import migrated_app
from tests.servers import start_gunicorn

TOKEN = "0123456789abcdef0123456789abcdef.SECRETPARTsecretpart_-0123456789abcdefgh"
REQUESTS = 40


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def served(folder: Path, **env: str):
    app = migrated_app(folder)
    key = container(app).api_keys.create("edc-reader", "read")
    container(app).engine.dispose()
    log = (folder / "gunicorn.log").open("wb")
    server, base = start_gunicorn({"DATABASE_URL": f"sqlite:///{folder / 'api.sqlite3'}",
                                   **env}, log)
    log.close()
    return server, base, key


def counted(base: str, route: str, status: str) -> float:
    _, _, body = get(f"{base}/metrics")
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "trial_schedule_http_requests_total" and \
                    sample.labels == {"method": "GET", "route": route, "status": status}:
                return sample.value
    return 0.0


def test_metrics_add_up_every_workers_requests(tmp_path):
    folder = tmp_path / "metrics"
    server, base, _ = served(tmp_path, WEB_CONCURRENCY="2", GUNICORN_THREADS="2",
                             PROMETHEUS_MULTIPROC_DIR=str(folder))
    try:
        pids = set()
        for _ in range(REQUESTS):
            status, _, _ = get(f"{base}/healthz")
            assert status == 200
        # Both workers answered some (each writes its own file); every scrape, whichever
        # worker answers it, sees all of them.
        deadline = time.monotonic() + 10
        while len(pids) < 2 and time.monotonic() < deadline:
            pids = {p.stem.rsplit("_", 1)[1] for p in folder.glob("counter_*.db")}
            get(f"{base}/healthz")
        assert len(pids) >= 2, list(folder.iterdir())
        answered = counted(base, "/healthz", "200")
        assert answered >= REQUESTS
        assert {counted(base, "/healthz", "200") for _ in range(6)} == {answered}
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_json_logs_one_object_a_line_with_request_id_route_and_key_name(tmp_path):
    server, base, key = served(tmp_path, TRIAL_SCHEDULE_LOG_FORMAT="json")
    try:
        status, headers, _ = get(f"{base}/v1/participants?limit=5", {
            "Authorization": f"Bearer {key}", "X-Request-ID": "trace-7"})
        assert (status, headers["X-Request-ID"]) == (200, "trace-7")
        assert get(f"{base}/feeds/{TOKEN}.ics")[0] == 404
        assert get(f"{base}/v1/participants?subject_code=ZS-SECRET",
                   {"Authorization": f"Bearer {key}"})[0] == 200
    finally:
        server.terminate()
        server.wait(timeout=20)
    text = (tmp_path / "gunicorn.log").read_text()
    records = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    access = [r for r in records if r["logger"] == "trial_schedule.access"]
    first = next(r for r in access if r["request_id"] == "trace-7")
    assert first["route"] == "/v1/participants" and first["status"] == 200
    assert first["api_key"] == "edc-reader" and first["method"] == "GET"
    assert isinstance(first["duration_ms"], float) and first["remote_addr"] == "127.0.0.1"
    assert any(r["route"] == "/feeds/<token>.ics" and r["status"] == 404 for r in access)
    assert any(r["logger"].startswith("gunicorn") for r in records)  # gunicorn's own lines
    assert "SECRETPART" not in text and "0123456789abcdef" not in text
    assert key not in text and key.split("_")[-1] not in text
    assert "ZS-SECRET" not in text


def test_text_logs_stay_the_default(tmp_path):
    server, base, _ = served(tmp_path)
    try:
        assert get(f"{base}/healthz")[0] == 200
        deadline = time.monotonic() + 10
        while '"GET /healthz" 200' not in (tmp_path / "gunicorn.log").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert not (tmp_path / "gunicorn.log").read_text().lstrip().startswith("{")
