from __future__ import annotations

import datetime as dt

import pytest

from api import create_app
from api.http.context import container
from api.persistence.database import create_db_engine
from api.persistence.migrate import upgrade


def migrated_app(directory):
    url = f"sqlite:///{directory / 'api.sqlite3'}"
    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()
    return create_app({"TESTING": True, "DATABASE_URL": url, "SITE_FEED_DIR": str(directory),
                       "FEED_SECRET": "test-feed-secret"})


# The site's today for the calculator's tests: the day before the reference participant's
# cryoablation, so nothing in its schedule is due yet unless a test sends `as_of`. Facts dated
# after it need an `as_of` on or after them (rule future-facts).
TODAY = dt.date(2026, 11, 25)


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    built = migrated_app(tmp_path_factory.mktemp("api"))
    container(built).clock.freeze(TODAY)
    return built


@pytest.fixture
def client(app):
    return app.test_client()


REFERENCE = {"cryoablation_date": "2026-03-02",
             "recovery": {"status": "recovered", "date": "2026-03-09"}}
