"""Complete schedules against reviewed golden files (tests/golden/*.json).

`schedule-NAME.json` is computed under the first protocol version (2025-09-15.1) and must never
change: a participant pinned to it keeps byte-identical schedules. `schedule-NAME.v2.json` is
computed under revision 2 (2026-11-25.2), `schedule-NAME.v3.json` under revision 3
(2026-12-04.3), the default for new computations.

After a deliberate change, regenerate with `UPDATE_GOLDEN=1 make test` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from api.http.schemas import schedule_dict
from scheduler.model import Discontinuation, DoseRecord, Lookbacks, Recovery
from tests.conftest import PROTOCOL, PROTOCOL_V1, PROTOCOL_V2, D, schedule_for

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
# Revision 2 only: the clinical review's two worked examples.
SCENARIOS_V2 = {
    **SCENARIOS,
    "cycles-three-weeks-late": dict(
        cryoablation="2026-03-02", recovered="2026-03-09", childbearing_potential=True,
        doses=(DoseRecord(1, "given", D("2026-03-09")), DoseRecord(2, "given", D("2026-04-20")),
               DoseRecord(3, "given", D("2026-06-01")))),
    "last-dose-near-completion": dict(
        cryoablation="2027-08-24", recovered="2027-08-31", childbearing_potential=True,
        doses=(DoseRecord(1, "given", D("2027-08-31")),),
        discontinuation=Discontinuation(D("2027-08-31"), "grade 3 colitis", "toxicity")),
}


# Revision 3 only: a dose held past its window (rule held-dose-projection) and a late
# enrolment whose cycles outlast the estimated completion (rule study-period).
SCENARIOS_V3 = {
    **SCENARIOS_V2,
    "held-dose": dict(
        cryoablation="2026-03-02", recovered="2026-03-09",
        doses=(DoseRecord(1, "given", D("2026-03-09")), DoseRecord(2, "given", D("2026-03-30"))),
        as_of=D("2026-05-18")),
    "late-enrolment": dict(cryoablation="2027-07-05", recovered="2027-07-12",
                           childbearing_potential=True),
}


def rendered(name: str, version: int = 1) -> str:
    if version == 1:
        schedule = schedule_for(protocol=PROTOCOL_V1, **SCENARIOS[name])
    elif version == 2:
        schedule = schedule_for(protocol=PROTOCOL_V2, **SCENARIOS_V2[name])
    else:
        schedule = schedule_for(protocol=PROTOCOL, **SCENARIOS_V3[name])
    return json.dumps(schedule_dict(schedule), indent=2, ensure_ascii=False) + "\n"


def check(path: Path, text: str) -> None:
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_first_version_schedule_stays_byte_identical(name):
    check(GOLDEN / f"schedule-{name}.json", rendered(name, 1))


@pytest.mark.parametrize("name", sorted(SCENARIOS_V2))
def test_revision_2_schedule_matches_golden_file(name):
    check(GOLDEN / f"schedule-{name}.v2.json", rendered(name, 2))


@pytest.mark.parametrize("name", sorted(SCENARIOS_V3))
def test_revision_3_schedule_matches_golden_file(name):
    check(GOLDEN / f"schedule-{name}.v3.json", rendered(name, 3))
