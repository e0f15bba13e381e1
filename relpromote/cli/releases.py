"""`relpromote releases` and `relpromote show VERSION`."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from relpromote.cli._common import Session, pass_session


@click.command()
@pass_session
def releases(session: Session) -> None:
    """List the built releases and where each one is live."""
    state = session.project.state()
    rows = [{**r.as_data(), "live_in": state.where(r.version)} for r in state.releases.values()]

    def human(console: Console) -> None:
        if not rows:
            console.print("no releases yet: build one with `relpromote build VERSION --source DIR --manifest FILE`")
            return
        table = Table("version", "digest", "changes", "built by", "built at", "live in", box=None)
        for row in rows:
            table.add_row(row["version"], row["digest"][:12], str(len(row["changes"])), row["built_by"], row["built_at"][:19], ", ".join(row["live_in"]) or "-")
        console.print(table)

    session.emit({"releases": rows}, human)


@click.command()
@click.argument("version")
@pass_session
def show(session: Session, version: str) -> None:
    """One release: its changes and where it is."""
    state = session.project.state()
    release = state.release(version)
    data = {**release.as_data(), "live_in": state.where(version)}

    def human(console: Console) -> None:
        console.print(f"[bold]{release.version}[/]  sha256:{release.digest}")
        console.print(f"built by {release.built_by} at {release.built_at}, {release.size} bytes", markup=False)
        source = release.source
        if source.get("commit"):
            dirty = " (with uncommitted changes)" if source.get("dirty") else ""
            console.print(f"source {source['path']} at commit {source['commit'][:12]}{dirty}", markup=False)
        console.print(f"live in: {', '.join(data['live_in']) or 'no environment'}", markup=False)
        for change in release.changes:
            console.print(f"  {change['id']} [{change['type']}] {change['title']} — {change['owner']}", markup=False)
            console.print(f"      why: {change['why']}\n      how: {change['how']}", markup=False)
        for dropped in data["dropped"]:
            console.print(f"  dropped {dropped['id']} (from {dropped['from_version']}): {dropped['reason']}", markup=False)

    session.emit(data, human)

