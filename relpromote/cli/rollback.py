"""`relpromote rollback --env ENV [--to VERSION] --reason TEXT`."""

from __future__ import annotations

import click
from rich.console import Console

from relpromote.cli._common import Session, interruptible, pass_session
from relpromote.cli.progress import Progress
from relpromote.usecases.rollback import rollback


@click.command("rollback")
@click.option("--env", "environment", required=True, metavar="ENV")
@click.option("--to", "to", metavar="VERSION", help="The release to go back to (default: the one live before the current one).")
@click.option("--reason", required=True, metavar="TEXT")
@pass_session
def rollback_command(session: Session, environment: str, to: str | None, reason: str) -> None:
    """Put every host of ENV back on its last accepted release, in seconds."""
    identity, actor = session.actor()
    # A rollback is never cancelled half-way: a signal only gets a note, the run completes.
    with interruptible():
        result = rollback(session.project, identity, actor, environment, to, reason,
                          on_event=Progress(session.json_output, f"rollback {environment} → {to or 'previous release'}"))

    def human(console: Console) -> None:
        console.print(f"{environment} rolled back from {result['from_version']} to {result['version']} on "
                      f"{len(result['hosts'])} host(s) in {result['duration_s']:.1f}s", markup=False)

    session.emit(result, human)

