"""The WSGI entry point gunicorn serves; behind nginx (deploy/nginx.conf), with
TRIAL_SCHEDULE_TRUSTED_PROXIES=1, it trusts that one proxy's X-Forwarded-* headers."""

from api import create_app
from api.proxy import behind_proxy

app = behind_proxy(create_app())
