"""`relpromote status [--env ENV]` and `relpromote history [--env ENV] [--version VERSION]`."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from relpromote.cli._common import Session, pass_session
from relpromote.ledger import entries_about


@click.command()
@click.option("--env", "env_name", metavar="ENV", help="Only this environment.")
@pass_session
def status(session: Session, env_name: str | None) -> None:
    """The status board: which release each environment runs."""
    project = session.project
    if env_name:
        project.config.environment(env_name)  # an unknown name is bad input (exit 2)
    names = [env_name] if env_name else project.config.promotion_path
    state = project.state()
    rows = [state.environments[name].as_data() for name in names]

    def human(console: Console) -> None:
        table = Table("environment", "release", "digest", "since", "by", "attention", box=None)
        for row in rows:
            attention = f"needs a person: {', '.join(row['needs_a_person'])}" if row["needs_a_person"] else ""
            table.add_row(row["environment"], row["current"] or "-", (row["digest"] or "-")[:12], (row["since"] or "-")[:19], row["by"] or "-", attention)
        console.print(table)

    session.emit({"project": project.config.project, "environments": rows, "releases": len(state.releases)}, human)


@click.command()
@click.option("--env", "env_name", metavar="ENV", help="Only entries about this environment.")
@click.option("--version", "version", metavar="VERSION", help="Only entries about this release.")
@pass_session
def history(session: Session, env_name: str | None, version: str | None) -> None:
    """Every recorded decision: what, who, when, in order."""
    project = session.project
    if env_name:
        project.config.environment(env_name)
    entries = entries_about(project.ledger.entries(), env_name, version)
    rows = [
        {"seq": e.seq, "at": e.recorded_at, "kind": e.kind, "actor": e.actor, "version": e.payload.get("version"),
         "environment": e.payload.get("environment"), "payload": e.payload}
        for e in entries
    ]

    def human(console: Console) -> None:
        table = Table("#", "at", "what", "who", "version", "environment", box=None)
        for e in entries:
            table.add_row(str(e.seq), e.recorded_at[:19], e.kind, e.actor, e.payload.get("version") or "-", e.payload.get("environment") or "-")
        console.print(table)

    session.emit({"entries": rows}, human)

