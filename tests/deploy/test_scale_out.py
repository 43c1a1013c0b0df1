"""Scale-out as deploy/ ships it: nginx (deploy/nginx.conf) balancing two gunicorn instances
on one PostgreSQL. What one instance writes, the other serves at once (feeds, worklist, ETags);
and when one instance is killed in the middle of the load, no client is left with an error it
would keep: every read is answered (nginx passes it to the other instance; an answer that was
already on its way when its instance died is cut off, and answered when asked again), and a
write that failed with the instance is retried by its client with the same Idempotency-Key
and recorded exactly once.

Needs PostgreSQL (TEST_DATABASE_URL, as .ci/run sets) and nginx; without either it skips, and
with REQUIRE_ALL_READERS=1 it fails instead.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest

from api import create_app
from api.http.context import container
from api.persistence.database import scratch_database
from tests.db.conftest import migrated
from tests.feed_readers import need
from tests.servers import call, nginx_binary, path_of, start_gunicorn, start_nginx

TODAY = "2026-11-25"
WRITERS, READERS = 3, 4
# Statuses a client retries (the instance went away under a POST it had already sent).
TRANSIENT = (502, 503, 504)


@pytest.fixture
def stack(tmp_path):
    """Two instances (2 workers each) on one scratch PostgreSQL database, nginx in front."""
    need(bool(os.environ.get("TEST_DATABASE_URL")),
         "needs PostgreSQL: set TEST_DATABASE_URL (as .ci/run does)")
    nginx = nginx_binary()
    with scratch_database(os.environ["TEST_DATABASE_URL"], "trial_schedule_scale") as scratch:
        migrated(scratch)
        app = create_app({"DATABASE_URL": scratch, "FEED_SECRET": "test-feed-secret"})
        key = container(app).api_keys.create("edc", "admin")
        container(app).engine.dispose()
        env = {"DATABASE_URL": scratch, "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4",
               "TRIAL_SCHEDULE_TRUSTED_PROXIES": "1", "TRIAL_SCHEDULE_TODAY": TODAY,
               # As deployed: feed links (and so feed ETags) name the public address, the
               # same whichever instance answers.
               "TRIAL_SCHEDULE_PUBLIC_BASE_URL": "https://schedule.example.org"}
        started: list[subprocess.Popen[bytes]] = []
        bases: list[str] = []
        try:
            for name in ("a", "b"):
                with (tmp_path / f"{name}.log").open("wb") as output:
                    process, base = start_gunicorn(env, output)
                started.append(process)
                bases.append(base)
            proxy, port = start_nginx(nginx, bases, tmp_path)
            try:
                yield {"a": bases[0], "b": bases[1], "nginx": f"http://127.0.0.1:{port}",
                       "auth": {"Authorization": f"Bearer {key}"}, "instances": started,
                       "folder": tmp_path}
            finally:
                proxy.terminate()
                proxy.wait(timeout=15)
        finally:
            for process in started:
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=20)


def enrol(base: str, auth: dict[str, str], code: str) -> dict:
    status, _, body = call("POST", f"{base}/v1/participants", {
        "subject_code": code, "cryoablation_date": "2026-03-02"}, auth)
    assert status == 201, body
    return json.loads(body)


def test_what_one_instance_writes_the_other_serves_at_once(stack):
    a, b, auth = stack["a"], stack["b"], stack["auth"]
    participant = enrol(a, auth, "ZS-001")
    where = f"/v1/participants/{participant['id']}"
    feed = path_of(participant["feed"]["https"])
    status, headers, _ = call("POST", f"{a}{where}/events", {
        "type": "recovery_confirmed", "date": "2026-03-09"}, auth)
    assert status == 201
    version = headers["ETag"]
    # The other instance: the same version, the same feed, the same worklist.
    status, headers, _ = call("GET", b + where, None, {"If-None-Match": version, **auth})
    assert status == 304
    _, feed_headers, feed_body = call("GET", b + feed)
    assert call("GET", a + feed, None, {"If-None-Match": feed_headers["ETag"]})[0] == 304
    worklists = [json.loads(call("GET", f"{base}/v1/worklist?from=2026-11-25&to=2026-12-31",
                                 None, auth)[2]) for base in (a, b)]
    assert worklists[0] == worklists[1] and worklists[0]["days"]

    # A dose through b: a serves the new version, feed and worklist, never the old ones.
    status, headers, _ = call("POST", f"{b}{where}/events", {
        "type": "dose_given", "cycle": 1, "date": "2026-03-09"}, auth)
    assert status == 201 and headers["ETag"] != version
    status, seen, _ = call("GET", a + where, None, {"If-None-Match": version, **auth})
    assert status == 200 and seen["ETag"] == headers["ETag"]
    status, _, body = call("GET", a + feed, None, {"If-None-Match": feed_headers["ETag"]})
    assert status == 200 and body != feed_body
    after = json.loads(call("GET", f"{a}/v1/worklist?from=2026-11-25&to=2026-12-31", None,
                            auth)[2])
    assert after != worklists[0]
    assert after == json.loads(call("GET", f"{b}/v1/worklist?from=2026-11-25&to=2026-12-31",
                                    None, auth)[2])


def writer(base: str, auth: dict[str, str], pid: str, name: str, stop: threading.Event,
           results: list) -> None:
    """Record unscheduled visits one after another, each with its own Idempotency-Key,
    retrying a transient failure with the same key, as a client should."""
    number = 0
    while not stop.is_set():
        number += 1
        key = f"{name}-{number}"
        body = {"type": "unscheduled_visit", "date": "2026-03-05", "purpose": key}
        for attempt in range(20):
            try:
                status, _, _ = call("POST", f"{base}/v1/participants/{pid}/events", body,
                                    {"Idempotency-Key": key, **auth})
            except OSError:
                status = 0  # the connection itself failed: retry, like a 502
            if status not in (0, *TRANSIENT):
                break
            time.sleep(0.1 * (attempt + 1))
        results.append((key, status))


# A read whose answer was cut off in the middle (http.client.IncompleteRead).
CUT = "cut off"


def reader(base: str, auth: dict[str, str], paths: list[str], stop: threading.Event,
           results: list) -> None:
    """Read participants, schedules, feeds and the worklist. The one retry: an answer cut
    off in the middle is asked for again, as a client reading a GET would. Such an answer was
    on its way from the instance when it died, its headers already passed on by nginx, which
    can then only close the connection (no proxy can finish an answer its upstream did not);
    what the client must not be left with is an error its retry would get again."""
    etags: dict[str, str] = {}
    while not stop.is_set():
        for path in paths:
            headers = {**auth, **({"If-None-Match": etags[path]} if path in etags else {})}
            for attempt in (1, 2):
                try:
                    status, answer, _ = call("GET", base + path, None, headers)
                except http.client.IncompleteRead:
                    status, answer = (CUT if attempt == 1 else "cut off twice"), {}
                except OSError as error:
                    status, answer = f"{type(error).__name__}", {}
                if status != CUT:
                    break
                results.append((path, CUT))
            if "ETag" in answer:
                etags[path] = answer["ETag"]
            results.append((path, status))


def test_one_instance_killed_mid_load_leaves_no_client_an_error(stack):
    base, auth = stack["nginx"], stack["auth"]
    people = [enrol(base, auth, f"ZS-{n:03d}") for n in range(WRITERS)]
    for person in people:
        assert call("POST", f"{base}/v1/participants/{person['id']}/events", {
            "type": "recovery_confirmed", "date": "2026-03-09"}, auth)[0] == 201
    paths = [p for person in people for p in (
        f"/v1/participants/{person['id']}", f"/v1/participants/{person['id']}/schedule",
        path_of(person["feed"]["https"]))] + ["/v1/worklist"]
    stop = threading.Event()
    written: list = []
    read: list = []
    threads = [threading.Thread(target=writer, args=(base, auth, person["id"], f"w{n}", stop,
                                                     written))
               for n, person in enumerate(people)]
    threads += [threading.Thread(target=reader, args=(base, auth, paths, stop, read))
                for _ in range(READERS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(3)
        before_kill = len(read), len(written)
        victim = stack["instances"][0]
        os.killpg(victim.pid, signal.SIGKILL)  # the master and its workers, mid-request
        victim.wait(timeout=10)
        time.sleep(4)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert before_kill[0] > 20 and before_kill[1] > 5  # load was running when it died
    assert len(read) > before_kill[0] + 20 and len(written) > before_kill[1] + 5  # and after

    # Every read answered, none with an error; at most the answers in flight when the
    # instance died were cut off, and each was answered when asked again.
    assert Counter(status for _, status in read if status not in (200, 304, CUT)) == Counter()
    assert sum(status == CUT for _, status in read) <= READERS
    # Every write recorded in the end; none refused.
    assert Counter(status for _, status in written if status != 201) == Counter()
    # Each exactly once, whichever instance took it and however often it was retried.
    for n, person in enumerate(people):
        status, _, body = call("GET", f"{base}/v1/participants/{person['id']}/events", None,
                               auth)
        assert status == 200
        purposes = [event["purpose"] for event in json.loads(body)["items"]
                    if event["type"] == "unscheduled_visit"]
        mine = sorted(key for key, _ in written if key.startswith(f"w{n}-"))
        assert sorted(purposes) == mine
    # nginx met the dead instance (requests cut off in flight, or refused) and went on.
    errors = (stack["folder"] / "error.log").read_text(errors="replace")
    assert re.search(r"(prematurely closed|Connection reset|Connection refused).*upstream",
                     errors), errors[-2000:]
