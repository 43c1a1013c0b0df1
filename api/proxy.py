"""Trust for a reverse proxy in front of gunicorn (deploy/nginx.conf).

With `TRIAL_SCHEDULE_TRUSTED_PROXIES=1`, the client address, scheme, host and port come from the
`X-Forwarded-*` headers the one proxy sets (werkzeug's ProxyFix, trusting exactly the last hop);
with 0, the default, those headers are ignored, since any client could send them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

SETTING = "TRIAL_SCHEDULE_TRUSTED_PROXIES"


def trusted_proxies(environ: Mapping[str, str]) -> int:
    """The number of proxies to trust: 0 or 1 (nginx on the same machine).

    >>> trusted_proxies({}), trusted_proxies({SETTING: "1"})
    (0, 1)
    """
    value = environ.get(SETTING, "0").strip() or "0"
    if value not in ("0", "1"):
        raise ValueError(f"{SETTING} must be 0 or 1 (one proxy, nginx, in front), not {value!r}")
    return int(value)


def behind_proxy(app: Flask, environ: Mapping[str, str] = os.environ) -> Flask:
    """The app, reading X-Forwarded-For/-Proto/-Host/-Port from one trusted proxy if set."""
    hops = trusted_proxies(environ)
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app,  # type: ignore[method-assign]
                                x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    return app
