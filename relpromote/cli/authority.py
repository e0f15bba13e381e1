"""`relpromote authority show` and `relpromote authority approve [--commit REV]`."""

from __future__ import annotations

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session


@click.group()
def authority() -> None:
    """Who may do what (people, roles, approval policy, freezes): which version is in force, and approving a change."""


@authority.command("show")
@pass_session
def show(session: Session) -> None:
    """The authority in force, the config's, what changed between them and who may approve it."""
    from relpromote.usecases.authority import authority_report

    report = authority_report(session.project)

    def human(console: Console) -> None:
        force = report["in_force"]
        if force is None:
            console.print(f"no authority recorded yet; the config's ({report['digest'][:12]}) becomes the root on first use"
                          if report["require_approval"] else "no authority recorded (authority.require_approval is not set)", markup=False)
        else:
            how = "the root, trusted on first use" if force["root"] else f"approved by {force['by']}"
            console.print(f"in force: {force['digest'][:12]} ({how}, #{force['seq']})", markup=False)
            if report["current_in_force"]:
                console.print("the config is the authority in force", markup=False)
            else:
                console.print(f"the config's authority {report['digest'][:12]} is not approved: {'; '.join(report['changes'])}", markup=False)
                console.print(f"approvers: {', '.join(report['approvers']) or 'none'} (relpromote authority approve)", markup=False)
        if report["require_approval"]:
            console.print(f"required in: {', '.join(report['require_approval'])}", markup=False)
        for problem in [*report["problems"], *report["unapproved"]]:
            console.print(f"#{problem['seq']}: {problem['reason']}", markup=False)

    session.emit(report, human)


@authority.command("approve")
@click.option("--commit", "revision", metavar="REV", help="The config commit whose authority to approve (default HEAD).")
@pass_session
def approve(session: Session, revision: str | None) -> None:
    """Sign the config's authority at REV into force, as an approver of the one in force now."""
    from relpromote.usecases.authority import approve_authority

    identity, actor = session.actor()
    entry, summary = approve_authority(session.project, identity, actor, revision)

    def human(console: Console) -> None:
        if entry is None:
            console.print(f"authority {summary['digest'][:12]} (commit {summary['commit'][:12]}) is already in force", markup=False)
            return
        said = "; ".join(summary["changes"]) or "no change in people or roles"
        console.print(f"{actor.name} approved authority {summary['digest'][:12]} of commit {summary['commit'][:12]} "
                      f"(#{entry.seq}): {said}", markup=False)

    session.emit({"approved": entry is not None, "seq": entry.seq if entry else None, **summary}, human)
