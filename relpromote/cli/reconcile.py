"""`relpromote reconcile --env ENV`: every host of ENV back on the recorded release, settling runs in doubt."""

from __future__ import annotations

import click
from rich.console import Console

from relpromote.cli._common import RUNS_TO_ITS_END, Session, interruptible, pass_session
from relpromote.cli.progress import Progress
from relpromote.usecases.rollback import reconcile


@click.command("reconcile")
@click.option("--env", "environment", required=True, metavar="ENV", help="The environment whose hosts to bring to the recorded release.")
@pass_session
def reconcile_command(session: Session, environment: str) -> None:
    """Bring every host of ENV to its recorded release, settling runs that never recorded their end."""
    with interruptible(session.json_output, first=RUNS_TO_ITS_END, again=RUNS_TO_ITS_END):
        identity, actor = session.actor()
        result = reconcile(session.project, identity, actor, environment,
                           on_event=Progress(session.json_output, f"reconcile {environment}"))

    def human(console: Console) -> None:
        moved = [h["host"] for h in result["hosts"] if h["switched"]]
        settled = f"; settled {len(result['settles'])} run(s) in doubt" if result["settles"] else ""
        console.print(f"every host of {environment} runs {result['version'] or 'no release'}, the recorded release "
                      f"({len(result['hosts'])} host(s), switched back: {', '.join(moved) or 'none'}){settled}", markup=False)

    session.emit(result, human)
