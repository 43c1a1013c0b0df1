"""Every database test runs on SQLite, and on PostgreSQL too when TEST_DATABASE_URL is set.

For PostgreSQL a fresh database is created for the test run and dropped after it; tables are
emptied between tests.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from api import create_app
from api.http.context import container
from api.persistence.database import create_db_engine, scratch_database
from api.persistence.migrate import upgrade
from api.persistence.tables import metadata

# The site's today in these tests, unless a test sets the clock itself.
SITE_TODAY = "2026-11-25"
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


def migrated(url: str) -> str:
    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def postgres_url():
    with scratch_database(os.environ["TEST_DATABASE_URL"], "trial_schedule_test") as url:
        yield migrated(url)


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield migrated(f"sqlite:///{tmp_path / 'test.sqlite3'}")
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        names = ", ".join(table.name for table in reversed(metadata.sorted_tables))
        connection.exec_driver_sql(f"TRUNCATE {names} CASCADE")
    engine.dispose()


@pytest.fixture
def end_connections(database_url):
    """A call that ends every connection to the test database but its own, as a server
    restart or failover would, and returns how many it ended. PostgreSQL only: the test skips
    on SQLite."""
    if not database_url.startswith("postgresql"):
        pytest.skip("ending the server's connections is a PostgreSQL test")
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")

    def end() -> int:
        with admin.connect() as connection:
            return int(connection.exec_driver_sql(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()) AS ended"
            ).scalar_one())

    yield end
    admin.dispose()


@pytest.fixture
def db_app(database_url, tmp_path):
    app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                      "SITE_FEED_DIR": str(tmp_path), "FEED_SECRET": "test-feed-secret",
                      "TODAY": SITE_TODAY})
    yield app
    container(app).engine.dispose()


@pytest.fixture
def keys(db_app):
    issued = container(db_app).api_keys
    return {scope: issued.create(f"{scope}-key", scope) for scope in ("read", "write", "admin")}


@pytest.fixture
def client(db_app):
    return db_app.test_client()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


ENROL = {"subject_code": "ZS-001", "cryoablation_date": "2026-03-02"}


@pytest.fixture
def writer(keys):
    return bearer(keys["write"])


@pytest.fixture
def enrol_body():
    """What `participant` enrols; a test module overrides it to enrol someone else."""
    return ENROL


@pytest.fixture
def participant(client, writer, enrol_body):
    response = client.post("/v1/participants", json=enrol_body, headers=writer)
    assert response.status_code == 201
    return response.get_json()
