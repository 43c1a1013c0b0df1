"""Request and response examples for the OpenAPI document, computed by the engine itself so
they cannot drift from what the service answers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from api.http.schemas import schedule_dict
from scheduler import compute_schedule, load_protocol, load_site
from scheduler.model import ParticipantFacts, Recovery

SCHEDULE_REQUEST: dict[str, Any] = {
    "cryoablation_date": "2026-03-02",
    "recovery": {"status": "recovered", "date": "2026-03-09"},
}


def schedule_response() -> dict[str, Any]:
    facts = ParticipantFacts(dt.date(2026, 3, 2), Recovery("recovered", dt.date(2026, 3, 9)))
    return schedule_dict(compute_schedule(load_protocol(), facts, load_site()))


INVALID_INPUT: dict[str, Any] = {
    "type": "urn:trial-schedule:problem:invalid-input",
    "title": "The request is not valid",
    "status": 422,
    "detail": "recovery.date: Not a valid date.",
    "errors": {"recovery.date": ["Not a valid date."]},
}

PROTOCOL_RULE: dict[str, Any] = {
    "type": "urn:trial-schedule:problem:protocol-rule",
    "title": "The facts contradict the protocol",
    "status": 422,
    "detail": "cryoablation_date: 2025-01-06 is outside the study period 2025-10-31 to "
              "2027-09-30 (rule study-period)",
    "errors": {"cryoablation_date": [
        "2025-01-06 is outside the study period 2025-10-31 to 2027-09-30 (rule study-period)"]},
}


def http_problem(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}
