"""What a view needs from outside the request: the container, who is asking, and today."""

from __future__ import annotations

import datetime as dt

from flask import Flask, current_app, g

from api.persistence.records import ApiKey
from api.usecases.container import Container

EXTENSION = "trial_schedule"  # the one key under which the container is kept


def register(app: Flask, built: Container) -> None:
    """Keep the container on the app, once; `container()` hands it back."""
    app.extensions["trial_schedule"] = built


def container(app: Flask | None = None) -> Container:
    """The container of `app`, or of the app handling the current request."""
    found = (app or current_app).extensions.get(EXTENSION)
    if not isinstance(found, Container):
        raise RuntimeError("this app was not built by api.create_app")
    return found


def api_key() -> ApiKey:
    """The key the current request was authenticated with."""
    key: ApiKey = g.api_key
    return key


def actor() -> str:
    """Who is recording: the API key's name."""
    return api_key().name


def site_today() -> dt.date:
    """Today at the site (the container's clock): decides whether an unrecorded dose is
    overdue, and refuses facts dated after it."""
    return container().clock.today()
