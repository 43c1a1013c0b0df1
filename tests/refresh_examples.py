"""Rewrite api/http/example_responses.py from what the service answers now.

After a schema changes, Redocly's `no-invalid-media-type-examples` fails on the examples that
no longer fit (tests/api/test_openapi_lint.py). Run

    .venv/bin/python -m tests.refresh_examples && make openapi

and review the diff. The service runs in process on a scratch SQLite database, with the site's
today frozen at 2026-03-10; ids, times and feed tokens are replaced by fixed ones so the
document does not change from run to run, and long lists are cut to a few items.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from api import create_app
from api.http.context import container
from api.persistence.migrate import upgrade

TARGET = Path(__file__).resolve().parents[1] / "api" / "http" / "example_responses.py"
PARTICIPANT_ID = "3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c"
EVENT_IDS = ["9b1d3c2a-4e5f-4a6b-8c7d-0e1f2a3b4c5d", "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"]
TOKEN = "0f8e2d4c6b1a39578e2d4c6b1a395780.Xq3v9LrT0pWz7Yk2NcB5hJ8sDf1Gm4Qa6Ue0Ri9Ot3w"
HEAD = '''"""Response examples for the OpenAPI document: what the service answered on a run (the
site's today 2026-03-10), trimmed to a few items each, with fixed ids and times. Redocly checks
each against its schema (rule no-invalid-media-type-examples), so one that drifts from a schema
fails the lint test. Refreshed by `python -m tests.refresh_examples`."""

# ruff: noqa: E501 (feed links are longer than a line)

from __future__ import annotations

from typing import Any
'''
NAMES = {"enrol": "ENROLLED", "recorded": "RECORDED", "patch": "CORRECTED", "list": "PAGE",
         "one": "PARTICIPANT", "events": "HISTORY", "rotate": "PARTICIPANT_FEED",
         "site": "SITE_FEED", "worklist": "WORKLIST", "deviations": "DEVIATIONS",
         "dev_csv": "DEVIATIONS_CSV", "ics": "CALENDAR", "protocol": "PROTOCOL"}


def answers() -> dict[str, Any]:
    folder = tempfile.mkdtemp()
    app = create_app({"DATABASE_URL": f"sqlite:///{folder}/examples.sqlite3",
                      "FEED_SECRET": "examples", "TODAY": "2026-03-10",
                      "PUBLIC_BASE_URL": "https://schedule.example.org"})
    upgrade(container(app).engine)
    auth = {"Authorization": "Bearer " + container(app).api_keys.create("edc", "admin")}
    client = app.test_client()
    found: dict[str, Any] = {}
    found["enrol"] = client.post("/v1/participants", json={
        "subject_code": "ZS-001", "cryoablation_date": "2026-03-02"}, headers=auth).get_json()
    where = f"/v1/participants/{found['enrol']['id']}"
    found["recorded"] = client.post(f"{where}/events", json={
        "type": "recovery_confirmed", "date": "2026-03-09"}, headers=auth).get_json()
    found["patch"] = client.patch(where, json={
        "childbearing_potential": True, "reason": "CRF reviewed"},
        headers={**auth, "If-Match": '"v2"'}).get_json()
    found["list"] = client.get("/v1/participants?limit=1", headers=auth).get_json()
    found["one"] = client.get(where, headers=auth).get_json()
    found["events"] = client.get(f"{where}/events", headers=auth).get_json()
    found["rotate"] = client.post(f"{where}/feed-token", headers=auth).get_json()
    found["site"] = client.post("/v1/site/feed-token", headers=auth).get_json()
    found["worklist"] = client.get("/v1/worklist", headers=auth).get_json()
    found["deviations"] = client.get("/v1/deviations", headers=auth).get_json()
    found["dev_csv"] = client.get("/v1/deviations?format=csv",
                                  headers=auth).get_data(as_text=True)
    found["ics"] = client.get("/v1/schedules.ics?cryoablation_date=2026-03-02&recovery_status="
                              "recovered&recovery_date=2026-03-09").get_data(as_text=True)
    found["protocol"] = client.get("/v1/protocol").get_json()
    container(app).engine.dispose()
    return _fixed(found)


def _fixed(found: dict[str, Any]) -> dict[str, Any]:
    """Fixed ids, times and tokens; lists cut to a few items."""
    text = json.dumps(found).replace(found["enrol"]["id"], PARTICIPANT_ID)
    others = [i for i in dict.fromkeys(re.findall(r'"id": "([0-9a-f-]{36})"', text))
              if i != PARTICIPANT_ID]
    for index, old in enumerate(others):
        text = text.replace(old, EVENT_IDS[index])
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", "2026-03-10T02:15:00+00:00",
                  text)
    text = re.sub(r"/feeds/(site/)?[0-9a-f]{32}\.[A-Za-z0-9_-]+\.ics",
                  lambda m: f"/feeds/{m.group(1) or ''}{TOKEN}.ics", text)
    fixed: dict[str, Any] = json.loads(text)
    fixed["recorded"]["schedule"]["visits"] = fixed["recorded"]["schedule"]["visits"][:3]
    fixed["worklist"]["days"] = fixed["worklist"]["days"][:2]
    for item in fixed["deviations"]["items"]:
        item["deviations"] = item["deviations"][:2]
    fixed["dev_csv"] = "\r\n".join(fixed["dev_csv"].split("\r\n")[:3]) + "\r\n"
    calendar = fixed["ics"]
    first = calendar.index("BEGIN:VEVENT")
    end = calendar.index("END:VEVENT") + len("END:VEVENT\r\n")
    fixed["ics"] = calendar[:end] + "END:VCALENDAR\r\n"
    assert first < end
    fixed["protocol"]["rules"] = fixed["protocol"]["rules"][:2]
    return fixed


def literal(value: Any) -> str:
    """JSON as a Python literal."""
    text = json.dumps(value, indent=4, ensure_ascii=False)
    words = {"true": "True", "false": "False", "null": "None"}
    return re.sub(r'(?<![\w"])(true|false|null)(?![\w"])', lambda m: words[m.group(1)], text)


def module(found: dict[str, Any]) -> str:
    parts = [HEAD]
    for key, name in NAMES.items():
        value = found[key]
        if isinstance(value, str):
            lines = "\n    ".join(json.dumps(line) for line in value.splitlines(keepends=True))
            parts.append(f"{name} = (\n    {lines})\n")
        else:
            parts.append(f"{name}: dict[str, Any] = {literal(value)}\n")
    return "\n".join(parts)


if __name__ == "__main__":
    TARGET.write_text(module(answers()), encoding="utf-8")
    print(f"wrote {TARGET}")
