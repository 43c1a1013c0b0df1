"""Shared fixtures: the packaged protocol and site, and helpers to vary them."""

from __future__ import annotations

import copy
import datetime as dt
import json
from importlib import resources
from typing import Any

import pytest

from scheduler import compute_schedule, load_protocol, load_site
from scheduler.model import ParticipantFacts, Recovery, Schedule
from scheduler.protocol import Protocol, parse_protocol


def D(text: str) -> dt.date:
    """A date from its ISO form, to keep expected dates readable."""
    return dt.date.fromisoformat(text)


V1_FILE, V2_FILE = "protocols/NCT07064876.json", "protocols/NCT07064876.v2.json"
V3_FILE = "protocols/NCT07064876.v3.json"


def protocol_document(name: str = V3_FILE) -> dict[str, Any]:
    text = resources.files("scheduler").joinpath(name).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def protocol_with(rule_id: str, name: str = V3_FILE, **params: Any) -> Protocol:
    """A packaged protocol (the newest by default) with some parameters of one rule
    overridden."""
    document = copy.deepcopy(protocol_document(name))
    for rule in document["rules"]:
        if rule["id"] == rule_id:
            rule["params"].update(params)
    return parse_protocol(document)


PROTOCOL = load_protocol()
PROTOCOL_V1 = load_protocol(version="2025-09-15.1")
PROTOCOL_V2 = load_protocol(version="2026-11-25.2")
SITE = load_site()


def schedule_for(cryoablation: str = "2026-03-02", recovered: str | None = "2026-03-09",
                 protocol: Protocol = PROTOCOL, **facts: Any) -> Schedule:
    recovery = facts.pop("recovery", None) or (
        Recovery("recovered", D(recovered)) if recovered else Recovery("pending"))
    return compute_schedule(protocol, ParticipantFacts(D(cryoablation), recovery, **facts), SITE)


@pytest.fixture
def protocol() -> Protocol:
    return PROTOCOL


@pytest.fixture
def shared_dir():
    """The design documents beside the project (../shared), when present."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1].parent / "shared"
    if not (path / "seed").is_dir():
        pytest.skip("../shared is not beside this checkout")
    return path
