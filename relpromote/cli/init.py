"""`relpromote init DIR`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session
from relpromote.usecases.init import init_project


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_session
def init(session: Session, directory: Path) -> None:
    """Scaffold a promotion project (config, inventories, playbooks, roles) in DIRECTORY."""
    result = init_project(directory)

    def human(console: Console) -> None:
        console.print(f"created promotion project in {directory}: {', '.join(result.written)}", markup=False)
        console.print(f"git: {result.next_step}", markup=False)
        console.print(f"next: relpromote keygen YOU --out ~/.config/relpromote/identity.key, then paste the printed entry "
                      f"under people: in {directory}/relpromote.yml", markup=False)

    session.emit({"directory": str(result.directory), "written": result.written, "repository": str(result.repository),
                  "committed": result.committed, "git": result.next_step}, human)

