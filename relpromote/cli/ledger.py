"""`relpromote ledger init-db --url URL --grant ROLE` and `relpromote ledger migrate --url URL`."""

from __future__ import annotations

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session
from relpromote.errors import BadInput, RunFailed


@click.group()
def ledger() -> None:
    """Where the ledger lives: prepare a PostgreSQL ledger, move a SQLite ledger into it."""


@ledger.command("init-db")
@click.option("--url", metavar="URL", help="postgresql://OWNER@HOST/DB: connect as the role that will own the ledger (no password in it).")
@click.option("--grant", "role", required=True, metavar="ROLE", help="The role relpromote connects as: granted SELECT and INSERT, nothing more.")
@click.option("--sql", "print_sql", is_flag=True, help="Print the SQL instead of running it (for a DBA to run with psql).")
@pass_session
def init_db(session: Session, url: str | None, role: str, print_sql: bool) -> None:
    """Create the ledger's schema in a PostgreSQL database (as its owner) and grant ROLE read and append only."""
    from relpromote.adapters.pg_ledger import SCHEMA, init_database, schema_sql

    if print_sql:
        script = schema_sql(role)
        session.emit({"sql": script}, lambda console: console.print(script, markup=False, end=""))
        return
    if not url:
        raise BadInput("ledger init-db needs --url postgresql://OWNER@HOST/DB (or --sql to print the SQL)")
    if not url.startswith(("postgresql://", "postgres://")):
        raise BadInput(f"--url {url.split(':')[0]}:…: init-db prepares a PostgreSQL database; give --url postgresql://…")
    database = init_database(url, role)

    def human(console: Console) -> None:
        console.print(f"ledger schema {SCHEMA} ready in database {database}; {role} may SELECT and INSERT its entries, nothing more. "
                      f"Set ledger.url to connect as {role}.", markup=False)

    session.emit({"database": database, "schema": SCHEMA, "role": role}, human)


@ledger.command("migrate")
@click.option("--url", "to_url", required=True, metavar="URL", help="postgresql://ROLE@HOST/DB: the empty ledger init-db prepared, to move this one into.")
@pass_session
def migrate(session: Session, to_url: str) -> None:
    """Copy this project's SQLite ledger, entry for entry, into an empty PostgreSQL ledger; verify the whole chain there."""
    from relpromote.usecases.ledger_migrate import migrate_ledger

    result = migrate_ledger(session.project, to_url)
    if not result.ok:
        first = result.problems[0]
        raise RunFailed(f"the copied ledger does not verify: entry {first.line()}; keep using the SQLite ledger", detail=result.as_data())

    def human(console: Console) -> None:
        console.print(f"copied {result.entries} entries into PostgreSQL, head {result.head}; the whole chain verifies there. "
                      f"Now set `ledger: {{url: {to_url}}}` in relpromote.yml and commit it.", markup=False)

    session.emit(result.as_data(), human)
