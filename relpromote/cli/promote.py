"""`relpromote promote VERSION --to ENV [--check] [--limit PATTERN] [--batch N|N%]`."""

from __future__ import annotations

from collections.abc import Callable

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from relpromote.cli._common import Session, interruptible, json_event, pass_session
from relpromote.cli.progress import Progress
from relpromote.policy import Verdict
from relpromote.promotion import PromotionOutcome
from relpromote.usecases.promote import PromoteRequest, promote


def render_gates(console: Console, verdict: Verdict) -> None:
    for gate in verdict.gates:
        mark = "[green]pass[/]" if gate.passed else "[red]FAIL[/]"
        console.print(f"  {mark}  {escape(f'{gate.rule:<22}')} ", end="", markup=True)
        console.print(gate.reason, markup=False)


def render_hosts(console: Console, outcome: PromotionOutcome) -> None:
    table = Table("host", "result", "changed", "before", "after", box=None)
    for host in outcome.hosts:
        result = "ok" if host.result.succeeded else ("unreachable" if host.result.unreachable else "failed")
        table.add_row(host.host, result, str(host.result.changed), host.previous or "-", host.current or "-")
    console.print(table)


@click.command("promote")
@click.argument("version")
@click.option("--to", "environment", required=True, metavar="ENV", help="The environment to promote to.")
@click.option("--check", is_flag=True, help="Dry run: Ansible check mode, nothing changes on the hosts.")
@click.option("--limit", metavar="PATTERN", help="Only these hosts (Ansible limit pattern).")
@click.option("--batch", metavar="N|N%", help="Roll out in batches of N hosts or N% of hosts.")
@click.option("--break-glass", "break_glass", metavar="REASON", help="Promote during a freeze window (allowed roles only; flagged in the ledger).")
@pass_session
def promote_command(
    session: Session, version: str, environment: str, check: bool, limit: str | None, batch: str | None, break_glass: str | None
) -> None:
    """Put VERSION live on every host of ENV."""
    with interruptible(session.json_output) as stop_asked:
        _promote(session, version, environment, check, limit, batch, break_glass, stop_asked)


def _promote(
    session: Session, version: str, environment: str, check: bool, limit: str | None, batch: str | None, break_glass: str | None,
    stop_asked: Callable[[], bool],
) -> None:
    project = session.project
    identity, actor = session.actor()
    mode = " (check mode: nothing changes)" if check else ""

    def show_plan(verdict: Verdict) -> None:
        if not check:
            return
        if session.json_output:
            for gate in verdict.gates:
                json_event("gate", rule=gate.rule, passed=gate.passed, reason=gate.reason)
        else:
            render_gates(session.console, verdict)

    outcome = promote(
        project, identity, actor, PromoteRequest(version, environment, check, limit, batch, break_glass),
        on_event=Progress(session.json_output, f"promote {version} → {environment}{mode}"),
        on_plan=show_plan,
        should_cancel=stop_asked,
    )

    def human(console: Console) -> None:
        render_hosts(console, outcome)
        verb = "would change" if check else "changed"
        console.print(
            f"{version} is live on {len(outcome.hosts)} host(s) of {environment}" if not check else f"check of {version} on {environment} passed",
            f"in {outcome.duration:.1f}s; {outcome.changed} task(s) {verb}",
        )

    session.emit(outcome.as_data(), human)

