"""The web pages through Flask's test client, on every configured database."""

from __future__ import annotations

import re

import pytest

from api.web.backend import accounts_for
from tests.db import conftest as databases

# The database fixtures of tests/db: every page test runs on SQLite, and on PostgreSQL too
# when TEST_DATABASE_URL is set.
postgres_url = databases.postgres_url
database_url = databases.database_url
db_app = databases.db_app
keys = databases.keys

PASSWORD = "correct horse battery staple"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def token_of(page: str) -> str:
    found = TOKEN.search(page)
    assert found, "no CSRF token on the page"
    return found.group(1)


class Browser:
    """A test client signed in as one account, with the CSRF token of its session."""

    def __init__(self, client, email: str) -> None:
        self.client = client
        self.email = email
        self.token = token_of(client.get("/login").get_data(as_text=True))
        answer = client.post("/login", data={"email": email, "password": PASSWORD,
                                             "csrf_token": self.token})
        assert answer.status_code == 302, answer.get_data(as_text=True)

    def get(self, path: str, **kwargs):
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, str], **kwargs):
        return self.client.post(path, data={"csrf_token": self.token, **data}, **kwargs)

    def enrol(self, code: str = "ZS-001", cryoablation: str = "2026-03-02") -> str:
        answer = self.post("/participants", {"subject_code": code,
                                             "cryoablation_date": cryoablation})
        assert answer.status_code == 303, answer.get_data(as_text=True)
        return str(answer.headers["Location"]).rsplit("/", 1)[1]


@pytest.fixture
def accounts(db_app):
    made = accounts_for(db_app)
    for role in ("coordinator", "investigator", "viewer", "admin"):
        made.create(f"{role}@site.example", role, PASSWORD)
    return made


@pytest.fixture
def coordinator(db_app, accounts):
    return Browser(db_app.test_client(), "coordinator@site.example")


@pytest.fixture
def viewer(db_app, accounts):
    return Browser(db_app.test_client(), "viewer@site.example")


@pytest.fixture
def admin(db_app, accounts):
    return Browser(db_app.test_client(), "admin@site.example")
