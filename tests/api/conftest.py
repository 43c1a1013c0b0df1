from __future__ import annotations

import pytest

from api import create_app
from api.persistence.database import create_db_engine
from api.persistence.migrate import upgrade


def migrated_app(directory):
    url = f"sqlite:///{directory / 'api.sqlite3'}"
    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()
    return create_app({"TESTING": True, "DATABASE_URL": url, "SITE_FEED_DIR": str(directory),
                       "FEED_SECRET": "test-feed-secret"})


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    return migrated_app(tmp_path_factory.mktemp("api"))


@pytest.fixture
def client(app):
    return app.test_client()


REFERENCE = {"cryoablation_date": "2026-03-02",
             "recovery": {"status": "recovered", "date": "2026-03-09"}}
