"""`relpromote notes VERSION [--format md|html] [--out FILE]`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session


@click.command()
@click.argument("version")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True, help="Markdown or a self-contained HTML page.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the notes to FILE instead of stdout.")
@pass_session
def notes(session: Session, version: str, fmt: str, out: Path | None) -> None:
    """Release notes of VERSION: each change (what, who, how, why) and when it reached each environment."""
    from relpromote.usecases.notes import write_notes

    data, text = write_notes(session.project, version, fmt, out)

    def human(console: Console) -> None:
        if out is None:
            click.echo(text, nl=False)
        else:
            console.print(f"notes of {version} written to {out}", markup=False)

    session.emit({"version": version, "format": fmt, "out": str(out) if out else None, "release_notes": data,
                  **({} if out else {"text": text})}, human)
