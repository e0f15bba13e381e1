"""`relpromote audit verify`."""

from __future__ import annotations

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session
from relpromote.errors import RunFailed
from relpromote.ledger import verify_chain


@click.group()
def audit() -> None:
    """Check the signed, hash-chained ledger."""


@audit.command()
@pass_session
def verify(session: Session) -> None:
    """Verify every entry's hash, link and signature; name the first bad entry."""
    project = session.project
    known = {person.key: person.name for person in project.config.people}
    report = verify_chain(project.ledger.entries(), known)
    data = {"ok": report.ok, "entries": report.entries, "first_bad_seq": report.first_bad_seq,
            "reason": report.reason, "unknown_signers": list(report.unknown_signers)}
    if not report.ok:
        raise RunFailed(f"ledger entry #{report.first_bad_seq} is bad: {report.reason}", detail=data)

    def human(console: Console) -> None:
        console.print(f"ledger ok: {report.entries} entries, every hash, link and signature checks out", markup=False)
        if report.unknown_signers:
            console.print(f"note: signed by people no longer in the config: {', '.join(report.unknown_signers)}", markup=False)

    session.emit(data, human)

