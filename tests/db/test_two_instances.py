"""Two gunicorn instances on one PostgreSQL: what one writes, the other serves at once. No
cache (rendered events, versions, assembled site feeds, header bytes) may answer with a stale
body or a wrong 304 after a write through another instance or worker."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import sqlalchemy as sa

from api import create_app
from api.http.context import container
from api.persistence.tables import metadata
from tests.servers import call, path_of, start_gunicorn

pytestmark = pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"),
                                reason="needs PostgreSQL (TEST_DATABASE_URL)")


@pytest.fixture
def instances(postgres_url, tmp_path):
    app = create_app({"DATABASE_URL": postgres_url, "FEED_SECRET": "test-feed-secret"})
    key = container(app).api_keys.create("writer", "admin")
    container(app).engine.dispose()
    started: list[subprocess.Popen[bytes]] = []
    bases = []
    logs = [(tmp_path / f"{name}.log").open("wb") for name in ("a", "b")]
    try:
        for output in logs:
            process, base = start_gunicorn({"DATABASE_URL": postgres_url,
                                            "WEB_CONCURRENCY": "2"}, output)
            started.append(process)
            bases.append(base)
        yield bases[0], bases[1], {"Authorization": f"Bearer {key}"}
    finally:
        for process in started:
            process.terminate()
            process.wait(timeout=15)
        for output in logs:
            output.close()
        engine = sa.create_engine(postgres_url)
        with engine.begin() as connection:
            names = ", ".join(table.name for table in reversed(metadata.sorted_tables))
            connection.exec_driver_sql(f"TRUNCATE {names} CASCADE")
        engine.dispose()


READS = 6  # enough requests to reach both of an instance's workers, several threads each


def test_a_write_through_one_instance_is_served_by_the_other_at_once(instances):
    a, b, auth = instances
    status, _, body = call("POST", f"{a}/v1/participants", {
        "subject_code": "ZS-001", "cryoablation_date": "2026-03-02"}, auth)
    assert status == 201
    participant = json.loads(body)
    where = f"/v1/participants/{participant['id']}"
    feed = path_of(participant["feed"]["https"])
    assert call("POST", f"{a}{where}/events", {"type": "recovery_confirmed",
                                              "date": "2026-03-09"}, auth)[0] == 201
    status, _, body = call("POST", f"{a}/v1/site/feed-token", None, auth)
    site = path_of(json.loads(body)["feed"]["https"])

    # Warm every cache on both instances: rendered events, whole feeds, site files, headers,
    # served schedules.
    seen = {}
    for base in (a, b) * READS:
        for path in (feed, site):
            status, headers, body = call("GET", base + path)
            assert status == 200
            seen[path] = headers["ETag"], body
        assert call("GET", base + where, None, auth)[0] == 200
        status, headers, body = call("GET", f"{base}{where}/schedule", None, auth)
        assert status == 200
        seen["schedule"] = headers["ETag"], body

    old_version = '"v2"'  # enrolled, then recovery recorded
    for cycle, day in ((1, "2026-03-09"), (2, "2026-03-30"), (3, "2026-04-20")):
        status, headers, _ = call("POST", f"{a}{where}/events", {
            "type": "dose_given", "cycle": cycle, "date": day}, auth)
        assert status == 201
        version = headers["ETag"]
        marker = f"X-TRIAL-VISIT-ID:C{cycle}D1".encode()
        for _ in range(READS):
            for path in (feed, site):
                old_etag, old_body = seen[path]
                status, headers, body = call("GET", b + path, headers={
                    "If-None-Match": old_etag})
                assert status == 200, (path, cycle)  # never a 304 for what was replaced
                assert headers["ETag"] != old_etag and body != old_body
                done = body.split(marker, 1)[1].split(b"END:VEVENT", 1)[0]
                assert b"X-TRIAL-VISIT-STATUS:done" in done, (path, cycle)
                again = call("GET", b + path, headers={"If-None-Match": headers["ETag"]})
                assert again[0] == 304
            status, headers, _ = call("GET", b + where, None, {
                "If-None-Match": old_version, **auth})
            assert status == 200 and headers["ETag"] == version
            old_etag, old_body = seen["schedule"]
            status, headers, body = call("GET", f"{b}{where}/schedule", None, {
                "If-None-Match": old_etag, **auth})
            assert status == 200 and headers["ETag"] != old_etag and body != old_body
            given = next(v for v in json.loads(body)["visits"] if v["id"] == f"C{cycle}D1")
            assert given["status"] == "done", cycle
            assert call("GET", f"{b}{where}/schedule", None, {
                "If-None-Match": headers["ETag"], **auth})[0] == 304
        old_version = version
        for path in (feed, site):
            _, headers, body = call("GET", b + path)
            seen[path] = headers["ETag"], body
        _, headers, body = call("GET", f"{b}{where}/schedule", None, auth)
        seen["schedule"] = headers["ETag"], body

    status, _, body = call("POST", f"{a}{where}/feed-token", None, auth)
    assert status == 200
    for _ in range(READS):
        assert call("GET", b + feed)[0] == 404  # the old URL is dead everywhere at once
        assert call("GET", b + path_of(json.loads(body)["feed"]["https"]))[0] == 200
