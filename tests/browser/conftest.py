"""The web app in a real browser: Debian's chromium, headless, driven by Playwright.

No browser is downloaded: Playwright launches /usr/bin/chromium (`make test` installs it with
apt when it is missing and it runs as root). Without chromium, Playwright or axe-core the tests
skip, naming what is missing; with REQUIRE_ALL_READERS=1 or REQUIRE_BROWSER=1 (as CI sets) they
fail instead.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from werkzeug.serving import make_server

from api import create_app
from api.http.context import container
from api.persistence.migrate import upgrade
from api.web import backend
from api.web.backend import accounts_for
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "correct horse battery staple"
SITE_PHONE = "+86 21 6404 1990 (study nurse)"


def _required() -> bool:
    return os.environ.get("REQUIRE_ALL_READERS") == "1" or \
        os.environ.get("REQUIRE_BROWSER") == "1"


def _missing(reason: str) -> None:
    if _required():
        pytest.fail(f"{reason} (required: REQUIRE_ALL_READERS or REQUIRE_BROWSER is 1)")
    pytest.skip(reason)


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser():
    executable = chromium_path()
    if executable is None:
        _missing("chromium is not installed (Debian: apt-get install chromium)")
    if not AXE.is_file():
        _missing("axe-core is not installed (npm ci)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


def seed(app) -> None:
    """Three participants at different points, so the worklist has rows of each kind: one
    whose second cycle is overdue, one in the week ahead, one waiting for recovery."""
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()

    def ago(days: int) -> str:
        return (today - dt.timedelta(days=days)).isoformat()

    with app.test_request_context():
        for code, cryoablation, recovery, dose in (("ZS-090", 45, 38, 38),
                                                   ("ZS-092", 24, 17, 17),
                                                   ("ZS-093", 3, None, None)):
            enrolled = backend.enrol({"subject_code": code, "cryoablation_date": ago(cryoablation)},
                                     "seed@site.example")
            assert enrolled.ok, enrolled.errors
            version = 1
            for fields in ([{"type": "recovery_confirmed", "date": ago(recovery)}]
                           if recovery else []) + \
                    ([{"type": "dose_given", "cycle": "1", "date": ago(dose)}] if dose else []):
                recorded = backend.record_event(enrolled.value.id, fields, "seed@site.example",
                                                version)
                assert recorded.ok, recorded.errors
                version += 1


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The whole app served on loopback from a fresh SQLite database, with one account of
    each role."""
    directory = tmp_path_factory.mktemp("web")
    url = f"sqlite:///{directory / 'web.sqlite3'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app({"DATABASE_URL": url, "SITE_FEED_DIR": str(directory),
                      "FEED_SECRET": "test-feed-secret", "PUBLIC_BASE_URL": base,
                      "SITE_PHONE": SITE_PHONE})
    upgrade(container(app).engine)
    accounts = accounts_for(app)
    for role in ("coordinator", "viewer", "admin"):
        accounts.create(f"{role}@site.example", role, PASSWORD)
    seed(app)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base
    server.shutdown()
    thread.join()
    container(app).engine.dispose()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory):
    """docs/screenshots with UPDATE_SCREENSHOTS=1 (`make screenshots`), else a scratch
    folder, so a test run leaves the committed pictures alone."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")
