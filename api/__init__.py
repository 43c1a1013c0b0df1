"""The trial-schedule service: `create_app()` builds the HTTP app (`api.app`); `api.http`
holds the views, `api.usecases` what they call, `api.persistence` where it is stored."""

from api.app import create_app

__all__ = ["create_app"]
