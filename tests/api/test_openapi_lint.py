"""openapi.yaml passes both OpenAPI linters a client generator or a reviewer would run, with no
error and no warning but the ones `.spectral.yaml`, `redocly.yaml` and
`.redocly.lint-ignore.yaml` switch off, each saying why."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "node_modules" / ".bin"
# Neither linter phones home from a test run.
QUIET = {**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
         "SCARF_ANALYTICS": "false", "NO_COLOR": "1"}


def linter(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed (make test runs npm ci when npm is present)")
    return str(path)


def test_spectral_finds_nothing_at_warning_or_above():
    run = subprocess.run([linter("spectral"), "lint", "openapi.yaml", "--ruleset",
                          ".spectral.yaml", "--fail-severity", "warn", "--format", "json"],
                         cwd=ROOT, env=QUIET, capture_output=True, text=True, timeout=300)
    findings, _ = json.JSONDecoder().raw_decode(run.stdout)  # a sentence may follow the JSON
    assert [(f["code"], f["path"], f["message"]) for f in findings] == []
    assert run.returncode == 0, run.stderr


def test_redocly_finds_no_error_and_no_warning():
    run = subprocess.run([linter("redocly"), "lint", "openapi.yaml", "--config", "redocly.yaml",
                          "--format", "json"],
                         cwd=ROOT, env=QUIET, capture_output=True, text=True, timeout=300)
    report = json.loads(run.stdout[run.stdout.index("{"):])
    problems = [(p["ruleId"], p["location"][0]["pointer"], p["message"])
                for p in report["problems"] if not p.get("ignored")]
    assert problems == []
    assert (report["totals"]["errors"], report["totals"]["warnings"]) == (0, 0)
    assert run.returncode == 0, run.stderr
