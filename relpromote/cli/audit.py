"""`relpromote audit verify [--hosts ENV] [--expect-head SEQ:HASH|FILE]` and `relpromote audit checkpoint`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console

from relpromote.cli._common import CHECK_STOPPING, Session, interruptible, pass_session
from relpromote.errors import RunFailed


@click.group()
def audit() -> None:
    """Check the signed, hash-chained ledger and anchor its head."""


@audit.command()
@click.option("--hosts", "hosts_env", metavar="ENV", help="Also compare the head the hosts of ENV witnessed.")
@click.option("--expect-head", metavar="SEQ:HASH|FILE", help="The ledger must still hold this head (a checkpoint).")
@pass_session
def verify(session: Session, hosts_env: str | None, expect_head: str | None) -> None:
    """Verify every entry (link, hash, signature, signer's key and role, config commit); name each bad one."""
    from relpromote.usecases.audit import audit_ledger

    report = audit_ledger(session.project, expect_head)
    if hosts_env is not None:
        from relpromote.usecases.witness import audit_witnesses

        with interruptible(session.json_output, first=CHECK_STOPPING, again=CHECK_STOPPING) as stop_asked:
            audit_witnesses(session.project, hosts_env, report, should_cancel=stop_asked)
    if hosts_env is None and expect_head is None:
        # A chain cut short, or an older copy of the whole file, verifies like a whole one: say what was not checked.
        report.notes.append("completeness not checked: entries removed from the end (or an older copy of the ledger) verify "
                            "like a whole ledger; compare with the hosts' witnesses (--hosts ENV) or a checkpoint (--expect-head)")
    data = report.as_data()
    if not report.ok:
        first = report.problems[0]
        more = f" (and {len(report.problems) - 1} more: see --json)" if len(report.problems) > 1 else ""
        raise RunFailed(f"ledger entry #{first.seq} is bad: {first.reason}{more}", detail=data)

    def human(console: Console) -> None:
        console.print(f"ledger ok: {report.entries} entries, head {report.head_seq}:{report.head_hash}; every hash, link, "
                      "signature, signer and role checks out", markup=False)
        for witness in report.witnesses:
            console.print(f"{witness['host']}: witnessed #{witness['seq']} ({witness['what']})", markup=False)
        for note in report.notes:
            console.print(f"note: {note}", markup=False)

    session.emit(data, human)


@audit.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the signed checkpoint to FILE.")
@pass_session
def checkpoint(session: Session, out: Path | None) -> None:
    """Sign the ledger's head now; keep it elsewhere and check it later with verify --expect-head."""
    from relpromote.usecases.audit import checkpoint as take

    identity, person = session.actor()
    data = take(session.project, identity, person.name)
    if out is not None:
        out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    def human(console: Console) -> None:
        console.print(data["head"], markup=False)

    session.emit({"ok": True, **data}, human)
