"""The feeds' HTTP: weak If-None-Match, a participant's ETag that follows its feed token, and
feed links on the request's own scheme and host when no public base URL is configured."""

from __future__ import annotations

import gc
import re
import threading

import pytest

from api import create_app
from api.http.context import container
from tests.db.conftest import bearer
from tests.db.test_feeds import path_of


def enrol(client, writer, code="ZS-001", **kwargs):
    response = client.post("/v1/participants", json={
        "subject_code": code, "cryoablation_date": "2026-03-02"}, headers=writer, **kwargs)
    assert response.status_code == 201
    return response


def test_participant_feed_revalidates_with_a_weak_tag(client, writer):
    link = path_of(enrol(client, writer).get_json()["feed"]["https"])
    etag = client.get(link).headers["ETag"]
    for header in (f"W/{etag}", f'"x", W/{etag}', etag, "*"):
        response = client.get(link, headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.headers["ETag"] == etag
        assert response.headers["Cache-Control"] == "private, max-age=300"
    assert client.get(link, headers={"If-None-Match": 'W/"other"'}).status_code == 200


def test_site_feed_revalidates_with_a_weak_tag(client, keys, writer):
    enrol(client, writer)
    link = path_of(client.post("/v1/site/feed-token", headers=bearer(keys["admin"]))
                   .get_json()["feed"]["https"])
    with client.get(link) as first:
        etag = first.headers["ETag"]
    assert client.get(link, headers={"If-None-Match": f"W/{etag}"}).status_code == 304


def test_participant_revalidates_with_a_weak_tag(client, writer):
    participant = enrol(client, writer)
    where = f"/v1/participants/{participant.get_json()['id']}"
    assert client.get(where, headers={"If-None-Match": 'W/"v1"', **writer}).status_code == 304


def test_rotating_the_feed_token_changes_the_participant_etag(client, writer):
    enrolled = enrol(client, writer)
    where = f"/v1/participants/{enrolled.get_json()['id']}"
    before = client.get(where, headers=writer)
    rotated = client.post(f"{where}/feed-token", headers=writer)
    assert rotated.status_code == 200
    after = client.get(where, headers={"If-None-Match": before.headers["ETag"], **writer})
    assert after.status_code == 200
    assert after.headers["ETag"] == '"v2"' != before.headers["ETag"]
    assert after.get_json()["feed"] == rotated.get_json()["feed"]
    assert client.get(path_of(after.get_json()["feed"]["https"])).status_code == 200


@pytest.fixture
def unconfigured(database_url, tmp_path):
    """The app as deployed with no TRIAL_SCHEDULE_PUBLIC_BASE_URL."""
    app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                      "SITE_FEED_DIR": str(tmp_path), "FEED_SECRET": "test-feed-secret"})
    assert app.config["PUBLIC_BASE_URL"] is None
    yield app
    container(app).engine.dispose()


def test_without_a_public_base_url_links_use_the_request_scheme_and_host(unconfigured):
    key = container(unconfigured).api_keys.create("w", "admin")
    client = unconfigured.test_client()
    enrolled = enrol(client, bearer(key), base_url="https://schedule.test:8443")
    feed = enrolled.get_json()["feed"]
    assert feed["https"].startswith("https://schedule.test:8443/feeds/")
    assert feed["webcal"] == "webcal://" + feed["https"].removeprefix("https://")
    listed = client.get("/v1/participants", headers=bearer(key),
                        base_url="http://127.0.0.1:8123").get_json()
    assert listed["items"][0]["feed"]["https"].startswith("http://127.0.0.1:8123/feeds/")
    site = client.post("/v1/site/feed-token", headers=bearer(key),
                       base_url="http://10.0.0.5:9000").get_json()
    assert site["feed"]["https"].startswith("http://10.0.0.5:9000/feeds/site/")


def sources(data: bytes) -> list[str]:
    text = re.sub(r"\r\n[ \t]", "", data.decode())
    return re.findall(r"\r\nSOURCE;VALUE=URI:([^\r]*)\r\n", text)


HOSTS = ("https://schedule.test:8443", "http://127.0.0.1:8123")


def test_each_host_gets_a_feed_whose_source_is_its_own_url(unconfigured):
    """SOURCE is the feed's own URL on the host asked: the cached bodies and ETags of one host
    are never another's, and each still revalidates."""
    key = container(unconfigured).api_keys.create("w", "admin")
    client = unconfigured.test_client()
    enrolled = enrol(client, bearer(key)).get_json()
    site = client.post("/v1/site/feed-token", headers=bearer(key)).get_json()
    for link in (path_of(enrolled["feed"]["https"]), path_of(site["feed"]["https"])):
        served = {}
        for _ in range(2):  # the second round is answered from the caches the first filled
            for base in HOSTS:
                with client.get(link, base_url=base) as response:
                    assert response.status_code == 200
                    assert sources(response.data) == [base + link], (link, base)
                    served.setdefault(base, response.headers["ETag"])
                    assert response.headers["ETag"] == served[base]
        assert served[HOSTS[0]] != served[HOSTS[1]]
        for base in HOSTS:
            assert client.get(link, base_url=base,
                              headers={"If-None-Match": served[base]}).status_code == 304
        with client.get(link, base_url=HOSTS[1],
                        headers={"If-None-Match": served[HOSTS[0]]}) as other:
            assert other.status_code == 200 and sources(other.data) == [HOSTS[1] + link]


def test_forwarded_headers_are_ignored_unless_a_proxy_is_trusted(unconfigured):
    key = container(unconfigured).api_keys.create("w", "admin")
    client = unconfigured.test_client()
    enrolled = enrol(client, bearer(key), base_url="http://127.0.0.1:8000",
                     environ_overrides={"HTTP_X_FORWARDED_HOST": "evil.example",
                                        "HTTP_X_FORWARDED_PROTO": "https"})
    assert enrolled.get_json()["feed"]["https"].startswith("http://127.0.0.1:8000/feeds/")


def test_a_configured_public_base_url_wins_over_the_request(database_url, tmp_path):
    app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                      "SITE_FEED_DIR": str(tmp_path), "FEED_SECRET": "s",
                      "PUBLIC_BASE_URL": "https://trial.example.org/"})
    try:
        key = container(app).api_keys.create("w", "admin")
        enrolled = enrol(app.test_client(), bearer(key), base_url="http://10.0.0.5:9000")
        assert enrolled.get_json()["feed"]["https"].startswith(
            "https://trial.example.org/feeds/")
    finally:
        container(app).engine.dispose()


def test_a_cold_site_feed_is_assembled_from_events_rendered_at_write_time(
        db_app, client, keys, writer, monkeypatch):
    for code in ("ZS-001", "ZS-002"):
        enrolled = enrol(client, writer, code).get_json()
        assert client.post(f"/v1/participants/{enrolled['id']}/events", json={
            "type": "recovery_confirmed", "date": "2026-03-09"}, headers=writer).status_code \
            == 201
    link = path_of(client.post("/v1/site/feed-token", headers=bearer(keys["admin"]))
                   .get_json()["feed"]["https"])
    feeds = container(db_app).feeds
    feeds.cache.clear()  # nothing rendered in this process: a cold start

    def no_computing(*_args, **_kwargs):
        raise AssertionError("the site feed computed a schedule")

    monkeypatch.setattr(feeds.participants, "compute", no_computing)
    with client.get(link) as response:
        assert response.status_code == 200
        data = response.data
    assert data.count(b"X-TRIAL-VISIT-ID:C1D1") == 2
    assert sorted(set(re.findall(rb"SUMMARY:(ZS-\d+):", data))) == [b"ZS-001", b"ZS-002"]


def test_a_second_app_on_the_same_database_serves_each_write_at_once(
        db_app, client, writer, database_url, tmp_path):
    other = create_app({"DATABASE_URL": database_url, "TESTING": True,
                        "SITE_FEED_DIR": str(tmp_path / "other"),
                        "FEED_SECRET": "test-feed-secret"})
    try:
        reader = other.test_client()
        enrolled = enrol(client, writer).get_json()
        link = path_of(enrolled["feed"]["https"])
        first = reader.get(link)
        assert first.status_code == 200 and reader.get(link).data == first.data  # cached
        assert client.post(f"/v1/participants/{enrolled['id']}/events", json={
            "type": "recovery_confirmed", "date": "2026-03-09"}, headers=writer).status_code \
            == 201
        before = first.data.split(b"X-TRIAL-VISIT-ID:C1D1")[1].split(b"END:VEVENT")[0]
        assert b"X-TRIAL-VISIT-STATUS:provisional" in before
        after = reader.get(link, headers={"If-None-Match": first.headers["ETag"]})
        assert after.status_code == 200 and after.headers["ETag"] != first.headers["ETag"]
        assert b"X-TRIAL-VISIT-STATUS:provisional" not in after.data.split(
            b"X-TRIAL-VISIT-ID:C1D1")[1].split(b"END:VEVENT")[0]
        rotated = client.post(f"/v1/participants/{enrolled['id']}/feed-token", headers=writer)
        assert reader.get(link).status_code == 404
        assert reader.get(path_of(rotated.get_json()["feed"]["https"])).status_code == 200
    finally:
        container(other).engine.dispose()


def test_a_thread_s_held_connection_closes_with_the_thread_and_the_engine(db_app):
    reads = container(db_app).feeds.keys.__self__
    found = []
    worker = threading.Thread(target=lambda: found.append(reads.key("no-such-token")))
    worker.start()
    worker.join()
    assert found == [None]
    gc.collect()
    assert len(reads.opened) == 0  # the thread ended: its connection is closed
    assert reads.key("no-such-token") is None
    assert len(reads.opened) == 1
    container(db_app).engine.dispose()
    assert len(reads.opened) == 0
