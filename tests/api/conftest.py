from __future__ import annotations

import pytest

from api import create_app


@pytest.fixture(scope="session")
def app():
    return create_app({"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


REFERENCE = {"cryoablation_date": "2026-03-02",
             "recovery": {"status": "recovered", "date": "2026-03-09"}}
