"""`relpromote releases` and `relpromote show VERSION`."""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from relpromote.cli._common import Session, pass_session
from relpromote.cli.views import release_standing, standing_summary


@click.command()
@pass_session
def releases(session: Session) -> None:
    """List the built releases, where each one is live, and what became of it."""
    project = session.project
    state = project.state()
    entries = list(project.ledger.entries())
    rows = []
    for release in state.releases.values():
        standing = release_standing(state, entries, release.version)
        rows.append({**release.as_data(), "live_in": state.where(release.version), **standing, "summary": standing_summary(standing)})

    def human(console: Console) -> None:
        if not rows:
            console.print("no releases yet: build one with `relpromote build VERSION --source DIR --manifest FILE`", markup=False)
            return
        # Fits 80 columns: the fixed columns never wrap, what became of the release wraps in the last one.
        table = Table(box=None, pad_edge=False)
        for name in ("version", "digest", "built", "by", "live in"):
            table.add_column(name, no_wrap=True)
        table.add_column("what became of it", overflow="fold", min_width=16)
        for row in rows:
            table.add_row(row["version"], row["digest"][:12], row["built_at"][:10], row["built_by"],
                          ", ".join(row["live_in"]) or "-", row["summary"] or "-")
        console.print(table)

    session.emit({"releases": rows}, human)


@click.command()
@click.argument("version")
@pass_session
def show(session: Session, version: str) -> None:
    """One release: its changes, where it is, and what became of it in each environment."""
    project = session.project
    state = project.state()
    release = state.release(version)
    standing = release_standing(state, project.ledger.entries(), version)
    data = {**release.as_data(), "live_in": state.where(version), **standing, "summary": standing_summary(standing)}

    def human(console: Console) -> None:
        def say(line: str, markup: bool = False, highlight: bool = False) -> None:
            # Wrapped at the terminal's width, continuation lines under the first word (readable at 80 columns).
            indent = len(line) - len(line.lstrip(" "))
            body = Text.from_markup(line.lstrip(" ")) if markup else Text(line.lstrip(" "))
            console.print(Padding(body, (0, 0, 0, indent), expand=False), soft_wrap=False, highlight=highlight)

        console.print(f"[bold]{escape(release.version)}[/]  sha256:{release.digest}", markup=True)
        say(f"built by {release.built_by} at {release.built_at}, {release.size} bytes", markup=False)
        source = release.source
        if source.get("commit"):
            dirty = " (with uncommitted changes)" if source.get("dirty") else ""
            say(f"source {source['path']} at commit {source['commit'][:12]}{dirty}", markup=False)
        say(f"live in: {', '.join(data['live_in']) or 'no environment'}", markup=False)
        if standing["refused_because"]:
            say(f"[red]may not be promoted again[/]: {escape(standing['refused_because'])}", markup=True)
        for promotion in standing["promotions"]:
            why = f": {promotion['reason']}" if promotion["reason"] and promotion["result"] != "succeeded" else ""
            say(f"  {promotion['at'][:16].replace('T', ' ')}  promoted to {promotion['environment']} by {promotion['by']}: "
                f"{promotion['result'].replace('_', ' ')}{why}", markup=False)
        for rejected in standing["rejected"]:
            what = f"changes {', '.join(rejected['change_ids'])}" if rejected["change_ids"] else "the whole release"
            say(f"  {rejected['at'][:16].replace('T', ' ')}  rejected in {rejected['environment']} by {rejected['by']} "
                f"({what}): {rejected['reason']}", markup=False)
        for failed in standing["failed_verification"]:
            say(f"  {failed['at'][:16].replace('T', ' ')}  failed verification in {failed['environment']}: "
                "rolled back automatically, never to be promoted again", markup=False)
        for withdrawn in standing["withdrawn"]:
            say(f"  {withdrawn['at'][:16].replace('T', ' ')}  withdrawn from {withdrawn['environment']} by {withdrawn['by']} "
                f"(rolled back to {withdrawn['back_to']}): {withdrawn['reason']}", markup=False)
        say("changes:", markup=False)
        for change in release.changes:
            say(f"  {change['id']} [{change['type']}] {change['title']} — {change['owner']}", markup=False)
            say(f"      why: {change['why']}")
            say(f"      how: {change['how']}")
        for dropped in data["dropped"]:
            say(f"  dropped {dropped['id']} (from {dropped['from_version']}): {dropped['reason']}", markup=False)

    session.emit(data, human)
