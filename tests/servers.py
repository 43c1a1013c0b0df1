"""The service under gunicorn for tests, started as `make run` starts it, and Debian's nginx in
front of it with deploy/nginx.conf."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from tests.feed_readers import need

ROOT = Path(__file__).resolve().parents[1]
UPSTREAMS = ("server 127.0.0.1:8000 max_fails=1 fail_timeout=5s;",
             "server 127.0.0.1:8001 max_fails=1 fail_timeout=5s;")


def call(method: str, url: str, body: dict | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to a server the test started: status, headers and body, an error
    status included."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        **({"Content-Type": "application/json"} if data else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def path_of(link: str) -> str:
    """The path of an absolute link (a feed URL), to ask another host for it."""
    return "/" + link.split("://", 1)[1].split("/", 1)[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_gunicorn(env: dict[str, str], output: IO[bytes] | int) \
        -> tuple[subprocess.Popen[bytes], str]:
    """gunicorn with api/gunicorn_conf.py in its own session, once /healthz answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "api/gunicorn_conf.py", "api.wsgi:app"],
        cwd=ROOT, env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port),
                       "WEB_CONCURRENCY": "1", "TRIAL_SCHEDULE_FEED_SECRET": "test-feed-secret",
                       **env},
        stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=2).close()
            return process, base
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("gunicorn did not come up") from None
            time.sleep(0.1)


def nginx_binary() -> str:
    """Debian's nginx; the test skips without it (fails, with REQUIRE_ALL_READERS=1)."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None)
    need(found is not None, "nginx is not installed (make test installs Debian's nginx when "
                            "run as root)")
    assert found is not None
    return found


def site_config(listen_port: int, upstreams: list[str], folder: Path) -> str:
    """deploy/nginx.conf with the test's ports, its gunicorn instances (`host:port`, as many
    as given) and a log file of its own."""
    site = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    servers = "\n    ".join(f"server {upstream} max_fails=1 fail_timeout=5s;"
                            for upstream in upstreams)
    replaced = {"listen 80;": f"listen 127.0.0.1:{listen_port};", "listen [::]:80;": "",
                UPSTREAMS[0]: servers, UPSTREAMS[1]: "",
                "/var/log/nginx/trial-schedule.access.log": str(folder / "access.log")}
    for old, new in replaced.items():
        assert site.count(old) == 1, old
        site = site.replace(old, new)
    return site


def main_config(folder: Path, site: Path) -> str:
    temp = {name: folder / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    user = "user root;\n" if os.geteuid() == 0 else ""  # as the current user
    return (f"{user}daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
            f"error_log {folder / 'error.log'} info;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"  client_body_temp_path {temp['body']};\n  proxy_temp_path {temp['proxy']};\n"
            f"  fastcgi_temp_path {temp['fastcgi']};\n  uwsgi_temp_path {temp['uwsgi']};\n"
            f"  scgi_temp_path {temp['scgi']};\n"
            f"  access_log off;\n  include {site};\n}}\n")


def start_nginx(nginx: str, bases: list[str], folder: Path) \
        -> tuple[subprocess.Popen[bytes], int]:
    """nginx as the current user on loopback in front of the gunicorn instances at `bases`
    (`http://host:port`), with deploy/nginx.conf, once it accepts connections."""
    port = free_port()
    site = folder / "trial-schedule.conf"
    site.write_text(site_config(port, [base.removeprefix("http://") for base in bases], folder))
    config = folder / "nginx.conf"
    config.write_text(main_config(folder, site))
    proxy = subprocess.Popen([nginx, "-e", str(folder / "error.log"), "-p", str(folder),
                              "-c", str(config)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proxy, port
        except OSError:
            if proxy.poll() is not None or time.monotonic() > deadline:
                proxy.kill()
                proxy.wait()
                raise RuntimeError("nginx did not start: " + (folder / "error.log").read_text(
                    errors="replace")) from None
            time.sleep(0.1)
