"""The service's gunicorn settings (api/gunicorn_conf.py) with no access log, for the benchmark:
the service and the hello-world ceiling are measured alike, neither writing a line a request."""

from pathlib import Path

exec(compile((Path(__file__).resolve().parents[1] / "api" / "gunicorn_conf.py").read_text(),
             "api/gunicorn_conf.py", "exec"))
accesslog = None
