"""`relpromote build VERSION --source DIR --manifest FILE`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session
from relpromote.release import BuildOutcome
from relpromote.usecases.build import build_release, read_manifest


@click.command()
@click.argument("version")
@click.option("--source", required=True, type=click.Path(path_type=Path), help="The application's source directory.")
@click.option("--manifest", "manifest_path", required=True, type=click.Path(path_type=Path), help="The release manifest (YAML).")
@click.option("--allow-dirty/--no-allow-dirty", default=None, help="Build from a git tree with uncommitted changes (recorded).")
@click.option("--tag/--no-tag", default=None, help="Tag the source commit with the version.")
@pass_session
def build(session: Session, version: str, source: Path, manifest_path: Path, allow_dirty: bool | None, tag: bool | None) -> None:
    """Package the source once, digest it (sha256), store it and record it; print the digest."""
    project = session.project
    manifest = read_manifest(manifest_path, version)
    identity, actor = session.actor()
    result = build_release(project, identity, actor, version, source, manifest, allow_dirty=allow_dirty, tag=tag)

    def human(console: Console) -> None:
        console.print(result.release.digest, markup=False)
        if result.outcome is BuildOutcome.SAME:
            session.note(f"{version} was already built with these exact bytes: nothing to do")

    session.emit(result.as_data(), human)

