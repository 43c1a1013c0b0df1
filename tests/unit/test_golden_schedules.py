"""Complete schedules against reviewed golden files (tests/golden/*.json).

After a deliberate change, regenerate with `UPDATE_GOLDEN=1 make test` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from api.http.schemas import schedule_dict
from scheduler.model import Discontinuation, DoseRecord, Lookbacks, Recovery
from tests.conftest import D, schedule_for

GOLDEN = Path(__file__).resolve().parents[1] / "golden"

SCENARIOS = {
    "on-time": dict(cryoablation="2026-03-02", recovered="2026-03-09"),
    "late-skipped-discontinued": dict(
        cryoablation="2026-03-02", recovered="2026-03-09", childbearing_potential=True,
        doses=(DoseRecord(1, "given", D("2026-03-09")), DoseRecord(2, "given", D("2026-04-03")),
               DoseRecord(3, "skipped", reason="grade 2 pneumonitis")),
        discontinuation=Discontinuation(D("2026-05-10"), "progression"),
        lookbacks=Lookbacks(major_surgery=D("2026-02-20"))),
    "pending": dict(cryoablation="2026-09-14", recovered=None),
    "complication": dict(cryoablation="2026-09-14", recovered=None,
                         recovery=Recovery("complication", D("2026-09-16"))),
}


def rendered(name: str) -> str:
    return json.dumps(schedule_dict(schedule_for(**SCENARIOS[name])), indent=2,
                      ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_schedule_matches_golden_file(name):
    path = GOLDEN / f"schedule-{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(rendered(name), encoding="utf-8")
    assert rendered(name) == path.read_text(encoding="utf-8")
