"""`relpromote rollback --env ENV [--version VERSION] --reason TEXT`."""

from __future__ import annotations

import click
from rich.console import Console

from relpromote.cli._common import RUNS_TO_ITS_END, Session, interruptible, pass_session
from relpromote.cli.progress import Progress
from relpromote.errors import BadInput
from relpromote.usecases.rollback import rollback


def _refuse_to(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        # `--to` names an environment in every verb; a rollback's target release is --version.
        raise BadInput(f"rollback takes the target release as --version {value} (--to is always an environment); use --version")


@click.command("rollback")
@click.option("--env", "environment", required=True, metavar="ENV", help="The environment to roll back.")
@click.option("--version", "version", metavar="VERSION", help="The release to go back to (default: the one live before the current one).")
@click.option("--to", hidden=True, expose_value=False, callback=_refuse_to, is_eager=True)
@click.option("--reason", required=True, metavar="TEXT", help="Why (recorded in the ledger).")
@pass_session
def rollback_command(session: Session, environment: str, version: str | None, reason: str) -> None:
    """Put every host of ENV back on its last accepted release, in seconds."""
    # A rollback is never cancelled half-way: a signal only gets a note, the run completes.
    with interruptible(session.json_output, first=RUNS_TO_ITS_END, again=RUNS_TO_ITS_END):
        identity, actor = session.actor()
        result = rollback(session.project, identity, actor, environment, version, reason,
                          on_event=Progress(session.json_output, f"rollback {environment} → {version or 'previous release'}"))

    def human(console: Console) -> None:
        console.print(f"{environment} rolled back from {result['from_version']} to {result['version']} on "
                      f"{len(result['hosts'])} host(s) in {result['duration_s']:.1f}s", markup=False)

    session.emit(result, human)
