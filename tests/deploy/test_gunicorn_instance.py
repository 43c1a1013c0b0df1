"""Housekeeping of one gunicorn instance: no control socket at the per-user default path every
instance would share, and a worker's temporary site-feed folder gone when the worker exits."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
import urllib.request
from pathlib import Path

from api.http.context import container
from tests.api.conftest import migrated_app
from tests.servers import start_gunicorn


def served(folder: Path, **env: str):
    app = migrated_app(folder)
    admin = container(app).api_keys.create("admin-key", "admin")
    container(app).engine.dispose()
    home, run, scratch = folder / "home", folder / "run", folder / "tmp"
    for made in (home, run, scratch):
        made.mkdir()
    log = (folder / "gunicorn.log").open("wb")
    server, base = start_gunicorn({"DATABASE_URL": f"sqlite:///{folder / 'api.sqlite3'}",
                                   "HOME": str(home), "XDG_RUNTIME_DIR": str(run),
                                   "TMPDIR": str(scratch), **env}, log)
    log.close()
    return server, base, admin


def stop(server) -> None:
    server.terminate()
    server.wait(timeout=20)


def test_no_control_socket_at_the_shared_per_user_default(tmp_path):
    server, _, _ = served(tmp_path)
    try:
        # gunicorn opens its control socket after booting the workers: give it time to.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert list(tmp_path.rglob("*.ctl")) == []
            time.sleep(0.1)
        assert "Control socket listening" not in (tmp_path / "gunicorn.log").read_text()
    finally:
        stop(server)


def test_a_control_socket_only_at_the_per_instance_path_given(tmp_path):
    path = tmp_path / "instance.ctl"
    server, _, _ = served(tmp_path, GUNICORN_CONTROL_SOCKET=str(path))
    try:
        deadline = time.monotonic() + 10
        while not path.exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert [p for p in tmp_path.rglob("*.ctl") if p != path] == []
    finally:
        stop(server)


def test_the_temporary_site_feed_folder_is_removed_when_the_worker_exits(tmp_path):
    server, base, admin = served(tmp_path, WEB_CONCURRENCY="1")
    try:
        issue = urllib.request.Request(f"{base}/v1/site/feed-token", method="POST",
                                       headers={"Authorization": f"Bearer {admin}"})
        with urllib.request.urlopen(issue, timeout=10) as answer:
            link = json.load(answer)["feed"]["https"]
        path = "/" + link.split("://", 1)[1].split("/", 1)[1]
        with urllib.request.urlopen(base + path, timeout=30) as answer:
            assert answer.status == 200
            assert answer.read().startswith(b"BEGIN:VCALENDAR\r\n")
        folders = list((tmp_path / "tmp").glob("site-feed-*"))
        assert len(folders) == 1 and [p.name[:5] for p in folders[0].iterdir()] == ["site-"]
    finally:
        stop(server)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert os.listdir(tmp_path / "run") == []


def status_of(base: str, raw: bytes) -> int:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(raw)
        return int(connection.recv(200).split(b" ")[1])


def test_request_limits_refuse_junk_and_pass_the_longest_documented_url(tmp_path):
    dates = "&".join(f"{name}=2026-02-01" for name in (
        "live_vaccine", "major_surgery", "systemic_antimicrobials_end", "radical_radiotherapy",
        "myocardial_infarction", "other_trial_last_dose"))
    longest = (f"/v1/schedules.ics?cryoablation_date=2026-03-02&recovery_status=recovered"
               f"&recovery_date=2026-03-09&childbearing_potential=true&{dates}"
               "&other_trial_half_life_days=2.5&as_of=2026-07-20"
               + "".join(f"&dose_given={cycle}:{day}" for cycle, day in enumerate((
                   "2026-03-09", "2026-03-30", "2026-04-20", "2026-05-11", "2026-06-01",
                   "2026-06-22"), start=1)))
    server, base, _ = served(tmp_path)
    try:
        def get(path: str, headers: bytes = b"") -> int:
            return status_of(base, f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + headers
                             + b"Connection: close\r\n\r\n")

        assert len(f"GET {longest} HTTP/1.1") < 1024
        assert get(longest) == 200
        assert get("/healthz?" + "a" * 2048) == 414  # limit_request_line = 2048
        assert get("/healthz", b"".join(b"X-%d: a\r\n" % i for i in range(50))) == 431
        assert get("/healthz", b"X-Long: " + b"a" * 4096 + b"\r\n") == 431
        assert get("/healthz", b"Authorization: Bearer " + b"k" * 3000 + b"\r\n") == 200
    finally:
        stop(server)
