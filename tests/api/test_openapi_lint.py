"""openapi.yaml passes both OpenAPI linters a client generator or a reviewer would run, with no
error and no warning: Spectral with every rule of its recommended set (`.spectral.yaml`),
Redocly with its recommended rules (`redocly.yaml` turns off `info-license` alone, saying why;
`no-invalid-media-type-examples` checks every example against its schema). And every operation
has what a generated client is read by: a summary, a description, an operationId, and an
example of each body it takes and each success it answers."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from api.http.openapi import METHODS

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


def test_every_operation_has_a_summary_description_operation_id_and_examples():
    document = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue  # the path's own parameters
            where = f"{method.upper()} {path}"
            missing += [f"{where}: {key}" for key in ("summary", "description", "operationId")
                        if not str(operation.get(key, "")).strip()]
            bodies = {"request": operation.get("requestBody", {}).get("content", {})}
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    bodies[status] = response.get("content", {})
            for name, content in bodies.items():
                missing += [f"{where}: {name} {media} example" for media, body in content.items()
                            if "example" not in body and "examples" not in body]
    assert missing == []
