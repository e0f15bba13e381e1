"""`relpromote parity ENV_A ENV_B`: how far ENV_A is from mirroring ENV_B; exit 3 when it drifts."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from relpromote.cli._common import Session, interruptible, pass_session
from relpromote.cli.progress import Progress
from relpromote.errors import Refused
from relpromote.parity import ParityReport, table
from relpromote.usecases.parity import check_parity


def print_report(console: Console, report: ParityReport) -> None:
    if report.within:
        console.print(report.summary(), markup=False)
        return
    grid = Table(box=None, pad_edge=False)
    grid.add_column("group", no_wrap=True)
    grid.add_column("fact", no_wrap=True)
    grid.add_column(report.environment, overflow="fold")
    grid.add_column(report.reference, overflow="fold")
    for row in table(report):
        grid.add_row(*row)
    console.print(grid)


@click.command("parity")
@click.argument("environment", metavar="ENV_A")
@click.argument("reference", metavar="ENV_B")
@pass_session
def parity_command(session: Session, environment: str, reference: str) -> None:
    """How far ENV_A is from mirroring ENV_B: facts of both inventories' hosts, compared per group."""
    identity, actor = session.actor()
    with interruptible(session.json_output) as stop_asked:
        report = check_parity(session.project, identity, actor, environment, reference,
                              on_event=Progress(True, f"parity {environment} {reference}") if session.json_output else None,
                              should_cancel=stop_asked)
    if not report.within:
        if not session.json_output:
            print_report(session.console, report)
        raise Refused(report.summary(), detail={"parity": report.as_data()})
    session.emit({"parity": report.as_data()}, lambda console: print_report(console, report))
