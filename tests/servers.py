"""The service under gunicorn for tests, started as `make run` starts it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]


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
