"""The coordinator web app: server-rendered pages for site staff, beside the API in one app.

`init_app(app)` adds the pages, sign-in (Flask-Login, argon2 hashes), CSRF protection of every
form (Flask-WTF), a rate limit on sign-in (Flask-Limiter) and Chinese and English (Flask-Babel).
The pages reach the service only through `api.web.backend`.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import partial
from pathlib import Path

from flask import Flask, Request, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from api.web import backend
from api.web.accounts import Accounts, User
from api.web.i18n import select_locale
from api.web.views import blp

TRANSLATIONS = Path(__file__).with_name("translations")


# Paths that machines call: they never carry a session, so none is opened or saved for them.
MACHINE_PATHS = ("/v1/", "/feeds/", "/healthz", "/readyz", "/openapi")


class SessionCookies(SecureCookieSessionInterface):
    """The session cookie is HttpOnly and SameSite=Lax always, and Secure whenever the
    request came over https (directly, or through a proxy the app trusts). API and feed
    requests get no session at all."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith(MACHINE_PATHS):
            return self.null_session_class()
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    config = app.config
    if not config.get("SECRET_KEY"):
        # Sessions are signed under a key derived from the feed secret, which every worker
        # and node already shares; a separate derivation keeps the two uses apart.
        config["SECRET_KEY"] = hmac.new(backend.feed_secret_of(app), b"web-session",
                                        hashlib.sha256).hexdigest()
    config.setdefault("SITE_PHONE", "+86 21 0000 0000")
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config.setdefault("SESSION_COOKIE_NAME", "trial_schedule_session")
    config.setdefault("PERMANENT_SESSION_LIFETIME", 8 * 3600)
    # Forms are checked by the web pages themselves, so API requests are never asked for a
    # CSRF token. The token alone decides: pages send Referrer-Policy: no-referrer, so the
    # https Referer check would refuse every form.
    config["WTF_CSRF_CHECK_DEFAULT"] = False
    config.setdefault("WTF_CSRF_SSL_STRICT", False)
    config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    config.setdefault("LOGIN_RATE_LIMIT", "10 per minute;50 per hour")
    app.session_interface = SessionCookies()

    csrf = CSRFProtect(app)
    Babel(app, locale_selector=select_locale,
          default_translation_directories=str(TRANSLATIONS))
    # Sign-in is the only limited route, checked in its view; the hooks Flask-Limiter adds to
    # every request (API calls and feeds included: a check before, headers after, and a
    # teardown that builds its per-request state only to reset it) are taken off again, as
    # they have nothing to count there. That state lives on the request context, which ends
    # with the request.
    # The count is kept in memory (each process its own) unless RATELIMIT_STORAGE_URI names
    # a shared store such as redis://, which every node then counts in. While that store is
    # unreachable each process counts in memory again, so sign-in keeps working and limited.
    limiter = Limiter(get_remote_address, app=app, storage_uri=config["RATELIMIT_STORAGE_URI"],
                      default_limits=[], key_prefix="web", in_memory_fallback_enabled=True)
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    app.after_request_funcs[None] = [
        hook for hook in app.after_request_funcs[None]
        if not (isinstance(hook, partial) and limiter in hook.args)]
    app.teardown_request_funcs[None] = [
        hook for hook in app.teardown_request_funcs[None]
        if getattr(hook, "__self__", None) is not limiter]
    accounts = Accounts(backend.engine_of(app))
    backend.register(app, backend.WebParts(accounts, limiter, csrf))

    logins = LoginManager()
    # Only what Flask-Login needs is attached (LoginManager.init_app would also add an
    # after_request hook that touches the session on every API response, for remember-me
    # cookies, which the pages do not use).
    app.login_manager = logins  # type: ignore[attr-defined]
    logins.login_view = "web.login"
    logins.login_message = None
    logins.session_protection = "basic"

    def _load(user_id: str) -> User | None:
        return accounts.get(user_id)

    logins.user_loader(_load)

    app.register_blueprint(blp)
