"""Imports run one way, down the floors: the entry points (api.http, api.cli, the start-up
files) use the use cases, which use persistence, which uses the domain. Nothing imports a
floor above its own."""

from __future__ import annotations

import ast
from pathlib import Path

import api
import scheduler

ROOT = Path(api.__file__).parent.parent
# Floors, from the ground up; a module not listed under api/ is a start-up file (the top).
FLOORS = {"scheduler": 0, "api.persistence": 1, "api.usecases": 2, "api.http": 3}
TOP = 4


def floor(module: str) -> int | None:
    """The floor of a module of this project; None for anything else (the library)."""
    if module.split(".")[0] not in ("api", "scheduler"):
        return None
    for prefix in sorted(FLOORS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return FLOORS[prefix]
    return TOP


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from api import http` imports the module api.http; `from api.x import y`, api.x
            for alias in node.names:
                whole = f"{node.module}.{alias.name}"
                names.add(whole if is_module(whole) else node.module)
    return names


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def upward_imports(paths: list[Path]) -> dict[str, list[str]]:
    """Each module's imports of a module on a higher floor than its own."""
    found = {}
    for path in paths:
        name = module_name(path)
        own = floor(name)
        assert own is not None
        upward = sorted(target for target in imported(path)
                        if (target_floor := floor(target)) is not None and target_floor > own)
        if upward:
            found[name] = upward
    return found


def project_files() -> list[Path]:
    return sorted([*Path(api.__file__).parent.rglob("*.py"),
                   *Path(scheduler.__file__).parent.rglob("*.py")])


def test_no_module_imports_a_floor_above_its_own():
    files = project_files()
    assert len(files) >= 30
    assert upward_imports(files) == {}


def test_the_floors_are_ground_persistence_usecases_http_then_start_up():
    assert [floor(m) for m in ("scheduler.engine", "api.persistence.sql", "api.usecases.feeds",
                               "api.http.auth", "api.cli", "api.wsgi", "api")] == \
        [0, 1, 2, 3, 4, 4, 4]
    assert floor("flask") is None


def test_the_check_catches_persistence_importing_a_use_case(tmp_path):
    package = tmp_path / "api" / "persistence"
    package.mkdir(parents=True)
    sample = package / "sample.py"
    sample.write_text("from api.usecases.participants import Participants\n"
                      "from api.persistence.records import bumped\nimport flask\n",
                      encoding="utf-8")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert upward_imports([sample]) == {"api.persistence.sample": [
            "api.usecases.participants"]}
    finally:
        ROOT = saved
