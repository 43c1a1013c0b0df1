"""The benchmark harness runs end to end on a tiny load (its figures mean nothing here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def on_postgresql(program: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a bench program against the suite's PostgreSQL (skipped without one); it must
    succeed."""
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL)")
    run = subprocess.run([sys.executable, *program], cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout, env={**os.environ, "BENCH_DATABASE_URL": server})
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_bench_harness_runs_on_a_tiny_load(tmp_path):
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (make bench installs it as root with apt-get)")
    out = tmp_path / "BENCHMARKS.md"
    run = subprocess.run([sys.executable, "bench/run.py", "--seconds", "1", "--rounds", "1",
                          "--sizes", "2,6", "--databases", "sqlite", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = out.read_text()
    for row in ("| scenario | req/s | ceiling req/s | ratio |", "| POST /v1/schedules [sqlite] |",
                "| participant feed revalidation (304) [sqlite] |",
                "| site feed, 6 participants [sqlite] |", "| GET /v1/worklist [sqlite] |",
                "| worklist page (/) [sqlite] |", "| POST …/events (record a dose) [sqlite] |",
                "| compute one participant's schedule |",
                "| POST …/events (a dose moving visits), no webhook endpoint [sqlite] |",
                "| POST …/events (a dose moving visits), one webhook endpoint [sqlite] |"):
        assert row in report, row
    assert "Webhooks [sqlite]: " in report and "Commit to receipt at 20 writes a second" in report
    missed = [line for line in report.splitlines()
              if line.startswith("| participant feed") and "MISSED" in line]
    for line in missed:  # each missed request target comes with its profile
        assert f"### {line.split(' | ')[0].removeprefix('| ')}" in report, line


def test_a_dose_run_with_repeated_doses_is_not_taken_for_a_rate():
    """A round that runs out of participants records doses twice: each a 409, cheap, which
    would raise the rate. Such a run is reported as not measured, not as met or missed."""
    sys.path.insert(0, str(ROOT))
    from bench.run import RECORD, RECORD_P99_MS, RECORD_RPS, Result, verdict

    name = f"{RECORD} [postgresql]"
    fast = Result(name, RECORD_RPS + 100, 10.0, RECORD_P99_MS / 2, 90.0)
    assert verdict(RECORD, name, fast).endswith(" met")
    repeated = Result(name, RECORD_RPS + 100, 10.0, RECORD_P99_MS / 2, 90.0, errors=64)
    assert verdict(RECORD, name, repeated).startswith("not measured: 64 answers")


def test_the_write_cost_program_records_doses_on_postgresql():
    """bench/write_cost.py counts, under callgrind, what this program does: record first doses
    in process on a scratch PostgreSQL database (valgrind itself is too slow for the suite)."""
    on_postgresql(["bench/write_cost.py", "--record", "3", "--pool", "5", "--tree", str(ROOT)],
                  300)


def test_the_notify_commits_bench_runs_each_way_on_postgresql():
    """bench/notify_commits.py, the measure behind waking the webhook workers after a write
    commits: one short round of each way, each counting commits."""
    run = on_postgresql(["bench/notify_commits.py", "--seconds", "0.3", "--rounds", "1",
                         "--connections", "2"], 120)
    for way in ("none", "inside", "after"):
        [line] = [line for line in run.stdout.splitlines()
                  if line.startswith(f"round 1 {way:>6}: ")]
        assert int(line.split(": ")[1].split(" ")[0].replace(",", "")) > 0, line
    assert "of none" in run.stdout


def test_the_delivery_cost_bench_delivers_every_message_on_postgresql():
    """bench/delivery_cost.py, the CPU a webhook delivery costs: a few deliveries, each sent
    to its receiver and recorded delivered (the program fails otherwise), and a row of
    figures."""
    run = on_postgresql(["bench/delivery_cost.py", "--deliveries", "20", "--batch", "4",
                         "--runs", "1"], 300)
    [row] = [line for line in run.stdout.splitlines() if line.startswith("| 1 | ")]
    assert all(float(cell) >= 0 for cell in row.strip("| ").split(" | ")[1:]), row
