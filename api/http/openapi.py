"""The OpenAPI document, generated from the views (`trial-schedule openapi`, `make openapi`)."""

from __future__ import annotations

import yaml
from flask import Flask

from api import http


def render_openapi() -> str:
    """The spec as YAML, keys in the order the code declares them. Documenting needs the views
    only: no database, feed secret or instance files."""
    app = Flask("api")
    app.config.from_mapping(http.DEFAULTS)
    api = http.install(app, None)
    with app.app_context():
        document = api.spec.to_dict()
    header = "# Generated from the code by `make openapi`; a test fails when it drifts.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
