"""`relpromote accept`, `reject` and `approve`."""

from __future__ import annotations

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session
from relpromote.policy import authority_note
from relpromote.usecases import verdicts


@click.command()
@click.argument("version")
@click.option("--env", "environment", required=True, metavar="ENV", help="The environment where VERSION was tested.")
@click.option("--evidence", "evidence", multiple=True, metavar="[KIND=]FILE", help="JUnit XML test report; repeat for each kind.")
@click.option("--note", default="", metavar="TEXT", help="A remark recorded with the acceptance.")
@pass_session
def accept(session: Session, version: str, environment: str, evidence: tuple[str, ...], note: str) -> None:
    """Record that VERSION passed its tests in ENV."""
    identity, actor = session.actor()
    entry = verdicts.accept(session.project, identity, actor, version, environment, evidence, note)

    def human(console: Console) -> None:
        kinds = ", ".join(f"{e['kind']} ({e['passed']}/{e['tests']} passed)" for e in entry.payload["evidence"]) or "no files"
        console.print(f"{actor.name} accepted {version} in {environment}; evidence: {kinds}", markup=False)

    session.emit(entry.as_data(), human)


@click.command()
@click.argument("version")
@click.option("--env", "environment", required=True, metavar="ENV", help="The environment where VERSION failed.")
@click.option("--change", "changes", multiple=True, metavar="ID", help="Reject only this change (repeat); none: the whole release.")
@click.option("--reason", required=True, metavar="TEXT", help="Why (recorded in the ledger, shown by history and show).")
@pass_session
def reject(session: Session, version: str, environment: str, changes: tuple[str, ...], reason: str) -> None:
    """Record that VERSION (or some of its changes) failed in ENV; it can never be promoted again."""
    identity, actor = session.actor()
    entry = verdicts.reject(session.project, identity, actor, version, environment, changes, reason)

    def human(console: Console) -> None:
        what = f"changes {', '.join(changes)} of {version}" if changes else version
        console.print(f"{actor.name} rejected {what} in {environment}: {reason}", markup=False)
        if changes:
            console.print(f"next: relpromote revise {version} --drop {' --drop '.join(changes)} --new-version NEW", markup=False)

    session.emit(entry.as_data(), human)


@click.command()
@click.argument("version")
@click.option("--env", "environment", required=True, metavar="ENV", help="The environment the approval is for.")
@click.option("--ticket", required=True, metavar="ID", help="The change ticket.")
@click.option("--expires", metavar="DURATION", help="How long the approval holds: 30m, 12h, 7d, 2w (default: the policy's maximum).")
@pass_session
def approve(session: Session, version: str, environment: str, ticket: str, expires: str | None) -> None:
    """Approve VERSION (these exact bytes) for ENV under a change ticket."""
    identity, actor = session.actor()
    entry = verdicts.approve(session.project, identity, actor, version, environment, ticket, expires)
    # Recorded, but where an approved authority is required and the config is not it yet, it counts only once it is.
    pending = next((gate.reason for gate in authority_note(session.project.state(), environment)), None)

    def human(console: Console) -> None:
        p = entry.payload
        until = p["expires_at"][:16]
        console.print(f"{actor.name} approved {version} (sha256 {p['digest'][:12]}) for {environment} under {ticket} until {until}Z", markup=False)
        if pending:
            console.print(f"note: {pending}", style="yellow", markup=False)

    session.emit({**entry.as_data(), "authority_pending": pending}, human)

