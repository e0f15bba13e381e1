"""`relpromote verify ENV`: what runs on each host (link, file hashes, the app's version) against the ledger."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from relpromote.cli._common import CHECK_STOPPING, Session, interruptible, pass_session
from relpromote.cli.progress import Progress
from relpromote.errors import Refused
from relpromote.usecases.verify import verify


def _table(console: Console, result: dict[str, Any]) -> None:
    table = Table(box=None, pad_edge=False)
    for name in ("host", "current", "app"):
        table.add_column(name, no_wrap=True)
    table.add_column("differs from the ledger", overflow="fold", min_width=16)
    for host in result["hosts"]:
        table.add_row(host["host"], host["current"] or "-", host["app_version"] or "-", "; ".join(host["differences"]) or "",
                      style="red" if host["differences"] else None)
    console.print(table)


@click.command("verify")
@click.argument("environment", metavar="ENV")
@pass_session
def verify_command(session: Session, environment: str) -> None:
    """What runs on each host of ENV (link, file hashes, the app's version) against the ledger; exit 3 on drift."""
    identity, actor = session.actor()
    with interruptible(session.json_output, first=CHECK_STOPPING, again=CHECK_STOPPING) as stop_asked:
        result = verify(session.project, identity, actor, environment, on_event=Progress(session.json_output, f"verify {environment}"),
                        should_cancel=stop_asked)
    expected = result["expected"]["version"] or "nothing"
    if result["drift"]:
        if not session.json_output:
            _table(session.console, result)
        raise Refused(result["reason"], detail=result)

    def human(console: Console) -> None:
        _table(console, result)
        console.print(f"{environment}: every host runs {expected}, as the ledger says", markup=False)

    session.emit(result, human)
