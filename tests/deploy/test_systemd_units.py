"""deploy/systemd: the units systemd itself accepts (`systemd-analyze verify`, with the checkout
standing in for /opt/trial-schedule), each starting a command `trial-schedule` has."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from api.cli import main
from tests.feed_readers import need
from tests.servers import ROOT

UNITS = ROOT / "deploy" / "systemd"
# The unit file, and the name an instance of it is started as.
STARTED_AS = {"trial-schedule-web@.service": "trial-schedule-web@8000.service",
              "trial-schedule-worker.service": "trial-schedule-worker.service"}


def installed(unit: str, folder: Path) -> Path:
    """The unit as installed from this checkout: /opt/trial-schedule is ROOT."""
    text = (UNITS / unit).read_text(encoding="utf-8").replace("/opt/trial-schedule", str(ROOT))
    path = folder / STARTED_AS[unit]
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("unit", sorted(STARTED_AS))
def test_systemd_accepts_the_unit_without_a_warning(unit, tmp_path):
    analyze = shutil.which("systemd-analyze")
    need(analyze is not None, "systemd-analyze is not installed (Debian package systemd)")
    assert analyze is not None
    path = installed(unit, tmp_path)
    run = subprocess.run([analyze, "verify", "--man=no", str(path)], capture_output=True,
                         text=True, timeout=60, check=False)
    # systemd-analyze exits 0 on an unknown key or a bad value; it says so on stderr.
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


@pytest.mark.parametrize("unit", sorted(STARTED_AS))
def test_each_unit_starts_a_command_trial_schedule_has(unit):
    lines = (UNITS / unit).read_text(encoding="utf-8").splitlines()
    [start] = [line for line in lines if line.startswith("ExecStart=")]
    program, command = start.removeprefix("ExecStart=").split()
    assert program == "/opt/trial-schedule/.venv/bin/trial-schedule"
    if command == "worker" and command not in main.commands:
        pytest.skip("`trial-schedule worker` comes with the webhook delivery, not in this tree")
    assert command in main.commands


def test_the_web_instances_are_the_ones_nginx_balances():
    nginx = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    web = (UNITS / "trial-schedule-web@.service").read_text(encoding="utf-8")
    assert "Environment=HOST=127.0.0.1 PORT=%i" in web
    for port in ("8000", "8001"):
        assert f"server 127.0.0.1:{port} " in nginx
        assert f"trial-schedule-web@{port}" in web
