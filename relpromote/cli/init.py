"""`relpromote init DIR`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session
from relpromote.usecases.init import init_project
from relpromote.usecases.sandbox import ADDRESS_BASE, FIRST_PORT


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--sandbox", is_flag=True,
              help="Point the inventories at six simulated hosts on this machine (folders under DIR/hosts/, apps on "
                   f"{ADDRESS_BASE}.11-16) and add the example app's source in DIR/app-source/: try the process by hand.")
@click.option("--port", "first_port", type=click.IntRange(1024, 65535), default=FIRST_PORT, show_default=True,
              help="With --sandbox: the first port tried for the apps; the first one free on all six addresses is taken.")
@pass_session
def init(session: Session, directory: Path, sandbox: bool, first_port: int) -> None:
    """Scaffold a promotion project (config, inventories, playbooks, roles) in DIRECTORY."""
    result = init_project(directory, sandbox_port=first_port if sandbox else None)

    def human(console: Console) -> None:
        console.print(f"created promotion project in {directory}: {', '.join(result.written)}", markup=False)
        console.print(f"git: {result.next_step}", markup=False)
        console.print(f"next: relpromote keygen YOU --out ~/.config/relpromote/identity.key, then paste the printed entry "
                      f"under people: in {directory}/relpromote.yml", markup=False)

    session.emit({"directory": str(result.directory), "written": result.written, "repository": str(result.repository),
                  "committed": result.committed, "git": result.next_step}, human)

