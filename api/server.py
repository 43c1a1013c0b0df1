"""Serve the app under gunicorn with the settings in gunicorn_conf.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

CONFIG = Path(__file__).with_name("gunicorn_conf.py")


def serve(host: str, port: int) -> None:
    """Replace this process with gunicorn (so signals reach it directly)."""
    os.environ["HOST"], os.environ["PORT"] = host, str(port)
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "--config", str(CONFIG),
                              "api.wsgi:app"])
