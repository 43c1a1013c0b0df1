"""scheduler/ is the domain: it never imports a web framework, serialiser or database."""

from __future__ import annotations

import ast
from pathlib import Path

import scheduler

FORBIDDEN = {"flask", "flask_smorest", "marshmallow", "sqlalchemy", "alembic", "psycopg",
             "werkzeug", "api"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_scheduler_imports_no_framework():
    package = Path(scheduler.__file__).parent
    files = sorted(package.rglob("*.py"))
    assert len(files) >= 6
    offending = {str(f.relative_to(package)): imported_roots(f) & FORBIDDEN for f in files}
    assert {name: found for name, found in offending.items() if found} == {}


def test_the_check_catches_a_forbidden_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import flask\nfrom sqlalchemy.orm import Session\n", encoding="utf-8")
    assert imported_roots(sample) & FORBIDDEN == {"flask", "sqlalchemy"}
