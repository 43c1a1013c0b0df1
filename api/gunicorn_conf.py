"""gunicorn settings; each can be set from the environment.

HOST, PORT: where to listen (127.0.0.1:8000). WEB_CONCURRENCY: worker processes (2).
GUNICORN_THREADS: threads per worker (4). GUNICORN_TIMEOUT: seconds (30).
GUNICORN_CONTROL_SOCKET: a path for gunicorn's control socket (gunicornc); none by default.

gunicorn alone is for this machine: a client sending its request slowly holds a worker thread,
so a handful of them stop the service. Anything reachable beyond the machine goes through nginx
(deploy/nginx.conf), which reads each request whole before passing it on.
"""

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
preload_app = True

# Request limits; gunicorn answers past them with its own small HTML pages (400, 414, 431),
# before the app sees the request. The longest URL the API documents is the calculator's .ics
# link with every look-back and six doses given and skipped: a 652-byte request line. 2048
# leaves room for that threefold and refuses the junk a scanner sends.
limit_request_line = 2048
# A client sends about a dozen headers (nginx adds five); 50 is ample and bounds the work.
limit_request_fields = 50
# The longest header a client has cause to send is Authorization with an API key (about 70
# bytes) or If-Match; no cookies. 4096 is ample; nginx's header buffers (8k) are larger.
limit_request_field_size = 4096

# A worker silent this long is killed and replaced. The slowest request is assembling the site
# feed: 19 s for 10,000 participants on SQLite (BENCHMARKS.md), so 30 s leaves room for it.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On a restart or a stop, requests in flight get this long to finish: well above the p99 of
# every endpoint (under 1 s), short enough that a deploy does not stall.
graceful_timeout = 10
# Idle keep-alive connections are closed after 5 s. nginx closes its pooled upstream
# connections after 4 s (deploy/nginx.conf), before gunicorn does, so it never sends a request
# on a connection gunicorn is closing.
keepalive = 5

# gunicorn's control socket defaults to one per-user path ($XDG_RUNTIME_DIR or ~/.gunicorn/
# gunicorn.ctl) that every instance of that user would share, each taking it from the last.
# Nothing here uses it: off, unless a per-instance path is given.
_control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
if _control_socket:
    control_socket = _control_socket
control_socket_disable = not _control_socket

# Access logs carry the path, and feed paths carry their secret token: log no query string
# (%(U)s is the path without it); api.gunicorn_logging cuts tokens out of the path and escapes
# control characters in every value.
accesslog: str | None = "-"
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
logger_class = "api.gunicorn_logging.RedactingLogger"
# TRIAL_SCHEDULE_LOG_FORMAT=json (api/logs.py): every line one JSON object; the app writes the
# access record itself (it knows the route template, the API key's name and the request id).
# (Read here without importing the app: prometheus_client must not be imported before
# PROMETHEUS_MULTIPROC_DIR is set, below. api.gunicorn_logging refuses any other value.)
if os.environ.get("TRIAL_SCHEDULE_LOG_FORMAT", "").strip().lower() == "json":
    accesslog = None

# Metrics (api/http/metrics.py): each worker writes its counters to files in
# PROMETHEUS_MULTIPROC_DIR, which /metrics adds up. One folder per instance (two instances
# sharing one would wipe each other's), emptied when the instance starts, so that counters from
# an earlier run are not added to this one's. Unset, the instance makes its own and removes it
# on exit. It must be set before prometheus_client is imported: here, before the app is loaded.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
_own_metrics_dir = not _metrics_dir
if _own_metrics_dir:
    _metrics_dir = tempfile.mkdtemp(prefix="trial-schedule-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server: Any) -> None:
    """Empty the metrics folder: a new instance counts from zero (Prometheus reads a counter
    that went back to zero as a restart)."""
    folder = Path(_metrics_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """A worker that exited: its live gauges are dropped (its counters stay counted)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
