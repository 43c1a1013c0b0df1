"""gunicorn settings; each can be set from the environment.

HOST, PORT: where to listen (127.0.0.1:8000). WEB_CONCURRENCY: worker processes (2).
GUNICORN_THREADS: threads per worker (4). GUNICORN_TIMEOUT: seconds (30).
"""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 10
keepalive = 5
preload_app = True
# Access logs carry the path, and feed paths carry their secret token: log no query or path
# beyond the route's name. %(U)s is the path without the query string.
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
logger_class = "api.gunicorn_logging.RedactingLogger"
