"""The `trial-schedule` command: compute a schedule offline, serve the API, manage the service."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from scheduler import ScheduleInputError, compute_schedule, load_protocol, load_site
from scheduler.model import Discontinuation, DoseRecord, ParticipantFacts, Recovery
from scheduler.notation import parse_date, parse_dose_given
from scheduler.outcomes import NO_OUTCOMES, with_outcomes
from scheduler.report import day_label, render_table, render_visits, table

if TYPE_CHECKING:
    from api.usecases.container import Container


def _date(value: str, option: str) -> dt.date:
    try:
        return parse_date(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from error


def _doses(given: tuple[str, ...], skipped: tuple[str, ...]) \
        -> tuple[tuple[DoseRecord, ...], list[str]]:
    """The doses, and for each the option that gave it (`--dose 1:2026-03-09`), so that an
    error names what was typed rather than a position counted from 0."""
    records, options = [], []
    for item in given:
        try:
            cycle, day = parse_dose_given(item)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--dose") from error
        records.append(DoseRecord(cycle, "given", day))
        options.append(f"--dose {item}")
    for item in skipped:
        cycle_text, _, reason = item.partition("=")
        if not (cycle_text.isascii() and cycle_text.isdigit()) or int(cycle_text) < 1:
            raise click.BadParameter(f"{item!r} is not CYCLE[=REASON] (cycle from 1)",
                                     param_hint="--skip")
        records.append(DoseRecord(int(cycle_text), "skipped", reason=reason or None))
        options.append(f"--skip {item}")
    return tuple(records), options


def _option_of(field: str, options: list[str]) -> str:
    """`doses.1.cycle` as the option that gave that dose."""
    parts = field.split(".")
    if len(parts) >= 2 and parts[0] == "doses" and parts[1].isdigit() \
            and int(parts[1]) < len(options):
        return options[int(parts[1])]
    return field


def _container() -> Container:
    """The use cases over the configured database, as the served app has them."""
    from api import create_app
    from api.http.context import container

    return container(create_app())


@click.group()
def main() -> None:
    """Dosing and visit schedules for trial NCT07064876."""


@main.command()
@click.option("--cryoablation", required=True, help="Cryoablation date, YYYY-MM-DD.")
@click.option("--recovered", help="Date recovery was confirmed, YYYY-MM-DD.")
@click.option("--complication", is_flag=True, help="A major complication is open: dosing held.")
@click.option("--childbearing-potential", is_flag=True, help="Schedule a pregnancy test.")
@click.option("--dose", "given", multiple=True,
              help="A dose given, as CYCLE:YYYY-MM-DD (CYCLE=YYYY-MM-DD also works).")
@click.option("--skip", "skipped", multiple=True, help="A dose skipped, as CYCLE[=REASON].")
@click.option("--discontinued", help="Discontinuation date, YYYY-MM-DD.")
@click.option("--as-of", "as_of", help="Compute as of this date (for overdue doses).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def schedule(cryoablation: str, recovered: str | None, complication: bool,
             childbearing_potential: bool, given: tuple[str, ...], skipped: tuple[str, ...],
             discontinued: str | None, as_of: str | None, as_json: bool) -> None:
    """Compute and print a participant's schedule; no server or database needed."""
    doses, dose_options = _doses(given, skipped)
    if recovered and complication:
        raise click.UsageError("--recovered and --complication exclude each other")
    recovery = Recovery("pending")
    if recovered:
        recovery = Recovery("recovered", _date(recovered, "--recovered"))
    elif complication:
        recovery = Recovery("complication")
    facts = ParticipantFacts(
        cryoablation_date=_date(cryoablation, "--cryoablation"),
        recovery=recovery,
        childbearing_potential=childbearing_potential,
        doses=doses,
        discontinuation=Discontinuation(_date(discontinued, "--discontinued"))
        if discontinued else None,
        as_of=_date(as_of, "--as-of") if as_of else None,
    )
    try:
        result = with_outcomes(compute_schedule(load_protocol(), facts, load_site()),
                               NO_OUTCOMES, facts.as_of)
    except ScheduleInputError as error:
        for item in error.errors:
            click.echo(f"error: {_option_of(item.field, dose_options)}: {item.message} "
                       f"(rule {item.rule})", err=True)
        sys.exit(2)
    if as_json:
        from api.http.schemas import schedule_dict

        click.echo(json.dumps(schedule_dict(result), indent=2, ensure_ascii=False))
    else:
        click.echo(render_table(result), nl=False)


@main.command()
@click.option("--host", default=lambda: os.environ.get("HOST", "127.0.0.1"),
              show_default="127.0.0.1")
@click.option("--port", default=lambda: int(os.environ.get("PORT", "8000")), type=int,
              show_default="8000")
def serve(host: str, port: int) -> None:
    """Serve the API with gunicorn (settings in api/gunicorn_conf.py)."""
    from api.server import serve as run_server

    run_server(host, port)


@main.command()
def worker() -> None:
    """Deliver webhooks from the outbox and announce overdue visits, until SIGTERM or Ctrl-C
    (settings: TRIAL_SCHEDULE_WEBHOOK_*, docs/webhooks.md)."""
    import logging

    from api import create_app
    from api.worker import serve as run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run_worker(create_app())


@main.group()
def db() -> None:
    """The database: DATABASE_URL, or the embedded SQLite file in the instance folder."""


@db.command("upgrade")
@click.option("--bootstrap-admin-key", is_flag=True,
              help="On a database with no API keys, create a local admin key and print it.")
def db_upgrade(bootstrap_admin_key: bool) -> None:
    """Migrate the database to the latest schema."""
    from api.persistence.migrate import upgrade

    services = _container()
    upgrade(services.engine)
    url = services.engine.url.render_as_string(hide_password=True)
    click.echo(f"database at {url} is up to date")
    keys = services.api_keys
    if bootstrap_admin_key and keys.count() == 0:
        secret = keys.create("local-admin", "admin")
        click.echo("\nA local admin API key was created. It is shown only this once:\n\n"
                   f"    {secret}\n\nUse it as: Authorization: Bearer <key>\n")
    services.engine.dispose()  # no pooled connection left for the garbage collector


@db.command("downgrade")
@click.option("--to", "revision", default="-1", show_default=True,
              help="The revision to go back to; -1 is one step.")
def db_downgrade(revision: str) -> None:
    """Take the schema back (one step by default), to run the previous release again."""
    from api.persistence.migrate import current, downgrade

    services = _container()
    downgrade(services.engine, revision)
    click.echo(f"database schema now at {current(services.engine) or 'nothing'}")
    services.engine.dispose()


@db.command("current")
def db_current() -> None:
    """Print the schema's revision and the newest one this release knows."""
    from api.persistence.migrate import current, head

    services = _container()
    found = current(services.engine)
    services.engine.dispose()
    click.echo(f"database schema at {found or 'nothing'}; this release's head is {head()}")


@main.command()
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
def backup(destination: Path) -> None:
    """Write a backup of the whole database to DESTINATION, while the service serves (SQLite:
    its online backup API; PostgreSQL: pg_dump's custom format)."""
    from api.persistence.backup import BackupError
    from api.persistence.backup import backup as write_backup

    services = _container()
    try:
        write_backup(services.engine, destination)
    except BackupError as error:
        raise click.ClickException(str(error)) from error
    finally:
        services.engine.dispose()
    click.echo(f"backup written to {destination}")


@main.command()
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask before replacing the database.")
def restore(source: Path, yes: bool) -> None:
    """Replace the whole database with the backup in SOURCE. Stop the service (web and
    worker) first; afterwards run `trial-schedule db upgrade`."""
    from api.persistence.backup import BackupError
    from api.persistence.backup import restore as read_backup

    services = _container()
    url = services.engine.url.render_as_string(hide_password=True)
    try:
        if not yes:
            click.confirm(f"Replace everything in {url} with {source}?", abort=True)
        read_backup(services.engine, source)
    except BackupError as error:
        raise click.ClickException(str(error)) from error
    finally:
        services.engine.dispose()
    click.echo(f"{url} restored from {source}; now run: trial-schedule db upgrade")


@main.command("create-api-key")
@click.option("--name", required=True, help="Who or what uses the key; recorded on events.")
@click.option("--scope", required=True, type=click.Choice(["read", "write", "admin"]))
def create_api_key(name: str, scope: str) -> None:
    """Create an API key and print it; only its digest is stored."""
    keys = _container().api_keys
    try:
        click.echo(keys.create(name, scope))
    except ValueError as error:
        raise click.ClickException(str(error)) from error


@main.command("revoke-api-key")
@click.option("--name", required=True)
def revoke_api_key(name: str) -> None:
    """Revoke an API key at once."""
    if not _container().api_keys.revoke(name):
        raise click.ClickException(f"no live API key named {name!r}")
    click.echo(f"revoked {name}")


@main.command("list-api-keys")
def list_api_keys() -> None:
    """List API keys: name, scope, when created and revoked (never a secret)."""
    keys = _container().api_keys.listing()
    rows = [("NAME", "SCOPE", "CREATED", "REVOKED")] + [
        (key.name, key.scope, _moment(key.created_at),
         _moment(key.revoked_at) if key.revoked_at else "-") for key in keys]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[3]]))


def _moment(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _why(status: str, earliest: dt.date, latest: dt.date, rule: str) -> str:
    if status == "overdue":
        return f"window closed {latest.isoformat()} (rule {rule})"
    if status == "due":
        return f"window open until {latest.isoformat()} (rule {rule})"
    return f"window opens {earliest.isoformat()} (rule {rule})"


@main.command()
@click.option("--from", "start", help="First day, YYYY-MM-DD (default: the site's today).")
@click.option("--to", "end", help="Last day, YYYY-MM-DD (default: 7 days after --from).")
def worklist(start: str | None, end: str | None) -> None:
    """Print who is due, overdue or planned across all participants, by day."""
    services = _container()
    today = services.clock.today()
    first = _date(start, "--from") if start else today
    last = _date(end, "--to") if end else first + dt.timedelta(days=7)
    try:
        visits = services.worklist.visits(first, last, today)
    finally:
        services.engine.dispose()
    click.echo(f"Worklist {day_label(first)} to {day_label(last)}, as of {day_label(today)}: "
               f"{len(visits)} visits")
    if not visits:
        return
    rows = [["date", "subject", "visit", "title", "window", "status", "why"]]
    for item in visits:
        row = item.visit
        rows.append([day_label(row.date), row.subject_code, row.visit_id, row.title,
                     f"{row.earliest.isoformat()}..{row.latest.isoformat()}", item.status,
                     _why(item.status, row.earliest, row.latest, row.rule)])
    click.echo("\n".join(table(rows)))


@main.group()
def participant() -> None:
    """One participant, found by subject code."""


@participant.command("show")
@click.argument("subject_code")
def participant_show(subject_code: str) -> None:
    """Print a participant's visits as of the site's today."""
    services = _container()
    people = services.participants
    today = services.clock.today()
    try:
        found = people.by_subject_code(subject_code)
        schedule = people.schedule(found.id, today)[1] if found else None
    finally:
        services.engine.dispose()
    if found is None or schedule is None:
        raise click.ClickException(f"no participant with subject code {subject_code!r}")
    heading = (f"{subject_code} ({found.id}): {schedule.state}, as of {day_label(today)}; "
               f"protocol {schedule.protocol_id} version {schedule.protocol_version}")
    click.echo(render_visits(schedule, heading), nl=False)


@main.command("create-user")
@click.option("--email", required=True, help="The person's email; they sign in with it.")
@click.option("--role", required=True,
              type=click.Choice(["coordinator", "investigator", "viewer", "admin"]))
def create_user(email: str, role: str) -> None:
    """Create a web app account. The password comes from TRIAL_SCHEDULE_PASSWORD or standard
    input (prompted for on a terminal), never from an argument."""
    from api import create_app
    from api.web.backend import accounts_for

    password = os.environ.get("TRIAL_SCHEDULE_PASSWORD")
    if password is None:
        if sys.stdin.isatty():
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    try:
        user = accounts_for(create_app()).create(email, role, password)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"created {user.email} ({user.role})")


@main.command()
def openapi() -> None:
    """Print the OpenAPI document generated from the code."""
    from api.http.openapi import render_openapi

    click.echo(render_openapi(), nl=False)


if __name__ == "__main__":
    main()
