"""`relpromote revise VERSION --drop CHANGE ... --new-version V`."""

from __future__ import annotations

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session
from relpromote.usecases.revise import revise


@click.command("revise")
@click.argument("version")
@click.option("--drop", "drop", multiple=True, required=True, metavar="CHANGE", help="A rejected change to leave out (repeat).")
@click.option("--new-version", "new_version", required=True, metavar="V", help="The version of the revised release.")
@pass_session
def revise_command(session: Session, version: str, drop: tuple[str, ...], new_version: str) -> None:
    """Build the next release without rejected changes: revert their commits on a release branch, build, link both."""
    identity, actor = session.actor()
    built, link = revise(session.project, identity, actor, version, drop, new_version)

    def human(console: Console) -> None:
        console.print(built.release.digest, markup=False)
        session.note(f"{new_version} = {version} without {', '.join(drop)} (reverted {len(link['reverted_commits'])} commit(s) on "
                     f"{link['branch']}); QA must re-test it with: {', '.join(link['retest']) or 'the usual evidence'}")

    # `dropped` is a list of change objects in every result (as in the release); the revision names their ids.
    revision = {**{k: v for k, v in link.items() if k != "dropped"}, "dropped_ids": list(link["dropped"])}
    session.emit({**built.as_data(), "revision": revision}, human)

