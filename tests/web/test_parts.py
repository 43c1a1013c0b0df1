"""The parts behind the pages: accounts, the create-user command, the timeline picture, the
worklist's overdue rule, and the Chinese catalogue."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from click.testing import CliRunner

from api.cli import main
from api.http.context import container
from api.persistence.migrate import upgrade
from api.web import timeline
from api.web.accounts import Accounts
from api.web.backend import VisitRow, display_status
from scheduler.model import RuleRef, Visit, Window
from tests.conftest import D
from tests.web.conftest import PASSWORD

TRANSLATIONS = Path(__file__).resolve().parents[2] / "api" / "web" / "translations"


def visit(visit_id: str, kind: str, day: str, status: str, earliest: str | None = None,
          latest: str | None = None) -> Visit:
    window = Window(D(earliest), D(latest)) if earliest and latest else None
    return Visit(visit_id, kind, visit_id, None, D(day), window, status,  # type: ignore[arg-type]
                 RuleRef("rule", "record", "text", "anchor"))


def test_passwords_are_kept_as_argon2id_hashes_only(db_app):
    accounts = Accounts(container(db_app).engine)
    accounts.create("Nurse@Site.example", "coordinator", PASSWORD)
    with container(db_app).engine.connect() as connection:
        email, stored = connection.exec_driver_sql(
            "SELECT email, password_hash FROM users").one()
    assert email == "nurse@site.example"
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert PasswordHasher().verify(stored, PASSWORD)
    assert accounts.authenticate("NURSE@site.example ", PASSWORD).role == "coordinator"
    assert accounts.authenticate("nurse@site.example", PASSWORD + "x") is None


def test_accounts_refuse_short_passwords_unknown_roles_and_duplicates(db_app):
    accounts = Accounts(container(db_app).engine)
    with pytest.raises(ValueError, match="at least 12 characters"):
        accounts.create("a@site.example", "viewer", "short")
    with pytest.raises(ValueError, match="role must be one of"):
        accounts.create("a@site.example", "owner", PASSWORD)
    accounts.create("a@site.example", "viewer", PASSWORD)
    with pytest.raises(ValueError, match=r"an account for a@site\.example exists"):
        accounts.create("A@site.example", "admin", PASSWORD)


@pytest.fixture
def environment(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("TRIAL_SCHEDULE_FEED_SECRET", "test-feed-secret")
    monkeypatch.delenv("TRIAL_SCHEDULE_PASSWORD", raising=False)
    from api.persistence.database import create_db_engine

    engine = create_db_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_create_user_reads_the_password_from_standard_input(environment):
    result = CliRunner().invoke(main, ["create-user", "--email", "nurse@site.example",
                                       "--role", "coordinator"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert result.output == "created nurse@site.example (coordinator)\n"
    assert Accounts(environment).authenticate("nurse@site.example", PASSWORD) is not None


def test_create_user_reads_the_password_from_the_environment(environment, monkeypatch):
    monkeypatch.setenv("TRIAL_SCHEDULE_PASSWORD", PASSWORD)
    result = CliRunner().invoke(main, ["create-user", "--email", "pi@site.example",
                                       "--role", "investigator"])
    assert result.exit_code == 0, result.output
    assert Accounts(environment).authenticate("pi@site.example", PASSWORD).role == \
        "investigator"


def test_create_user_takes_no_password_argument_and_refuses_a_weak_one(environment):
    refused = CliRunner().invoke(main, ["create-user", "--email", "x@site.example", "--role",
                                        "viewer", "--password", PASSWORD])
    assert refused.exit_code == 2
    assert "No such option '--password'" in refused.output
    weak = CliRunner().invoke(main, ["create-user", "--email", "x@site.example", "--role",
                                     "viewer"], input="short\n")
    assert weak.exit_code == 1
    assert "the password needs at least 12 characters" in weak.output


def test_a_visit_shows_the_status_the_schedule_gives_it_for_the_day():
    """One day rule (scheduler.outcomes.on_day): the page shows what the schedule says, so a
    cycle projected after a held one, or a proved but unrecorded cryoablation, is not shown
    overdue though its window has passed."""
    assert display_status(visit("C2D1", "infusion", "2026-03-30", "overdue", "2026-03-27",
                                "2026-04-02")) == "overdue"
    assert display_status(visit("CRYO", "cryoablation", "2026-03-02", "planned", "2026-03-02",
                                "2026-03-02")) == "planned"
    assert display_status(visit("C2D1", "infusion", "2026-03-30", "done", "2026-03-27",
                                "2026-04-02")) == "done"


def labels() -> timeline.Labels:
    return timeline.Labels("Schedule of ZS-001", {name: name for name, _ in timeline.ROWS},
                           {}, "today", "window", lambda day: day.strftime("%b %Y"))


def row(visit_: Visit, status: str) -> VisitRow:
    return VisitRow("p", "ZS-001", visit_, status)


def test_the_timeline_draws_each_status_with_its_own_shape_and_a_line_for_today():
    rows = [row(visit("C1D1", "infusion", "2026-03-09", "done", "2026-03-09", "2026-03-12"),
                "done"),
            row(visit("C2D1", "infusion", "2026-03-30", "planned", "2026-03-27",
                      "2026-04-02"), "overdue"),
            row(visit("IMG-1", "response_imaging", "2026-04-20", "planned", "2026-04-13",
                      "2026-04-27"), "planned"),
            row(visit("EOT", "end_of_treatment", "2026-07-22", "planned"), "missed")]
    svg = str(timeline.render(rows, D("2026-04-10"), labels()))
    marks = re.findall(r"<title>([^<]*)</title>(<[a-z]+)", svg)
    assert [(title.split(" ")[0], shape) for title, shape in marks] == [
        ("C1D1", "<rect"), ("C2D1", "<path"), ("IMG-1", "<circle"), ("EOT", "<path")]
    assert 'fill="#1a7f37"' in svg and 'fill="#b54708"' in svg and 'stroke="#b42318"' in svg
    assert svg.count('stroke-dasharray="5 3"') == 1  # today
    assert '<title id="timeline-title">Schedule of ZS-001</title>' in svg
    assert "<script" not in svg and "style=" not in svg


def test_the_timeline_puts_cycles_scans_and_follow_up_on_their_own_rows():
    assert [timeline.row_of(kind) for kind in (
        "cryoablation", "infusion", "predose_labs", "baseline_imaging", "response_imaging",
        "survival_follow_up", "os_landmark")] == [
        "procedure", "cycles", "cycles", "scans", "scans", "follow_up", "follow_up"]


def test_every_interface_text_has_a_chinese_translation_and_the_mo_matches_the_po():
    with (TRANSLATIONS / "messages.pot").open("rb") as pot:
        template = read_po(pot)
    with (TRANSLATIONS / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        chinese = read_po(po)
    with (TRANSLATIONS / "zh_Hans_CN" / "LC_MESSAGES" / "messages.mo").open("rb") as mo:
        compiled = read_mo(mo)
    def key(value: str | tuple[str, ...] | list[str]) -> str | tuple[str, ...]:
        return value if isinstance(value, str) else tuple(value)

    wanted = {key(m.id) for m in template if m.id}
    translated = {key(m.id) for m in chinese
                  if m.id and not m.fuzzy and all(key(m.string) if isinstance(
                      m.string, (list, tuple)) else [m.string])}
    assert wanted - translated == set()
    assert {key(m.id): key(m.string) for m in chinese if m.id} == \
        {key(m.id): key(m.string) for m in compiled if m.id}


def test_weekday_days_are_written_in_the_page_language(db_app):
    from api.web.i18n import day

    with db_app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert day(dt.date(2026, 3, 2)) == "周一 2026-03-02"
    with db_app.test_request_context(headers={"Accept-Language": "en-GB"}):
        assert day(dt.date(2026, 3, 2)) == "Mon 2026-03-02"


def test_the_web_app_imports_no_start_up_module_so_it_sits_beside_api_http():
    from tests.unit.test_layers import FLOORS, floor, imported

    web = Path(__file__).resolve().parents[2] / "api" / "web"
    above = {path.name: sorted(name for name in imported(path)
                               if not name.startswith("api.web")
                               and (found := floor(name)) is not None
                               and found > FLOORS["api.http"])
             for path in sorted(web.glob("*.py"))}
    assert len(above) >= 7
    assert {name: found for name, found in above.items() if found} == {}


def test_the_last_active_admin_can_be_neither_demoted_nor_disabled(db_app):
    from api.web.accounts import AccountError

    accounts = Accounts(container(db_app).engine)
    first = accounts.create("first@site.example", "admin", PASSWORD)
    second = accounts.create("second@site.example", "admin", PASSWORD)
    accounts.disable(second.id)
    with pytest.raises(AccountError, match="the last active admin") as refused:
        accounts.set_role(first.id, "viewer")
    assert (refused.value.field, refused.value.code) == ("role", "last_admin")
    with pytest.raises(AccountError, match="the last active admin"):
        accounts.disable(first.id)
    accounts.enable(second.id)
    accounts.set_role(first.id, "viewer")
    assert {a.email: (a.role, a.disabled_at is None) for a in accounts.listing()} == {
        "first@site.example": ("viewer", True), "second@site.example": ("admin", True)}
    assert accounts.get(first.id).role == "viewer"
