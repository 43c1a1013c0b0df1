"""The OpenAPI document, generated from the code (`trial-schedule openapi`, `make openapi`)."""

from __future__ import annotations

import yaml

from api import create_app


def render_openapi() -> str:
    """The spec as YAML, keys in the order the code declares them."""
    # Documentation needs no database or feed secret: an in-memory one, and no instance files.
    app = create_app({"DATABASE_URL": "sqlite://", "FEED_SECRET": "openapi"})
    with app.app_context():
        document = app.extensions["trial_schedule_api"].spec.to_dict()
    header = "# Generated from the code by `make openapi`; a test fails when it drifts.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
