"""`trial-schedule schedule` prints a schedule with no server or database."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from api.cli import main


def run(*args):
    return CliRunner().invoke(main, ["schedule", *args])


def test_table_for_the_reference_participant():
    result = run("--cryoablation", "2026-03-02", "--recovered", "2026-03-09")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == ("Protocol NCT07064876 version 2026-12-04.3: scheduled, first dose "
                        "2026-03-09")
    c2 = next(line for line in lines if line.split()[2:3] == ["C2D1"])
    assert c2.split()[:9] == ["2026-03-30", "Mon", "C2D1", "Serplulimab", "300", "mg", "IV,",
                              "cycle", "2"]
    assert "2026-03-27..2026-04-02" in c2 and "cycle-chaining [typical]" in c2
    safety = next(line for line in lines if line.split()[2:3] == ["SAFETY-FU"])
    assert safety.split()[:3] == ["2026-09-20", "Sun", "SAFETY-FU"]
    assert safety.endswith("(Sunday 2026-09-20 is a working day: National Day make-up day)")


def test_recorded_doses_and_json_output():
    result = run("--cryoablation", "2026-03-10", "--recovered", "2026-03-17",
                 "--dose", "1=2026-03-24", "--dose", "2=2026-04-14", "--json")
    assert result.exit_code == 0
    schedule = json.loads(result.output)
    c3 = next(v for v in schedule["visits"] if v["id"] == "C3D1")
    assert (c3["date"], c3["rule"]["shifted_from"]) == ("2026-05-06", "2026-05-05")


def test_impossible_facts_exit_2_naming_the_field():
    result = run("--cryoablation", "2026-03-02", "--recovered", "2026-03-01")
    assert result.exit_code == 2
    assert "recovery.date" in result.output and "recovery-gate" in result.output


def test_malformed_dates_are_usage_errors():
    result = run("--cryoablation", "2026-02-30")
    assert result.exit_code == 2
    assert "--cryoablation" in result.output


def test_a_dose_takes_cycle_colon_date_and_cycle_equals_date_alike():
    args = ("--cryoablation", "2026-03-10", "--recovered", "2026-03-17", "--json")
    colon = run(*args, "--dose", "1:2026-03-24", "--dose", "2:2026-04-14")
    equals = run(*args, "--dose", "1=2026-03-24", "--dose", "2=2026-04-14")
    assert colon.exit_code == equals.exit_code == 0
    assert colon.output == equals.output


def test_a_dose_error_names_the_option_as_typed_not_a_position_from_zero():
    result = run("--cryoablation", "2026-03-02", "--recovered", "2026-03-09",
                 "--dose", "1:2026-03-09", "--dose", "1:2026-03-30")
    assert result.exit_code == 2
    assert "error: --dose 1:2026-03-30: cycle 1 is recorded more than once (rule serplulimab)" \
        in result.output


@pytest.mark.parametrize(("dose", "message"), [
    ("0:2026-03-09", "'0:2026-03-09': cycles count from 1"),
    ("first:2026-03-09", "'first:2026-03-09' is not CYCLE:YYYY-MM-DD (cycle from 1)"),
])
def test_a_malformed_dose_says_the_syntax(dose, message):
    result = run("--cryoablation", "2026-03-02", "--dose", dose)
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize("text", ["20260302", "2026-W10-1"])
def test_a_date_in_another_iso_form_is_refused_saying_the_form(text):
    result = run("--cryoablation", text)
    assert result.exit_code == 2
    assert f"'{text}' is not a date in the form YYYY-MM-DD" in result.output
