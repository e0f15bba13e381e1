"""`relpromote refresh-qa [--dry-run]`: for scheduled jobs; prints one JSON summary line on stdout."""

from __future__ import annotations

import json
import sys

import click

from relpromote.cli._common import Session, pass_session
from relpromote.cli.progress import Progress
from relpromote.usecases.refresh_qa import refresh_qa


@click.command("refresh-qa")
@click.option("--dry-run", is_flag=True, help="Report tables, row counts, masked columns and unmasked personal-looking columns; change nothing.")
@pass_session
def refresh_qa_command(session: Session, dry_run: bool) -> None:
    """Refresh QA's database from production, with sensitive columns masked."""
    identity, actor = session.actor()
    summary = refresh_qa(session.project, identity, actor, dry_run, on_event=Progress(True, "refresh-qa") if session.json_output else None)
    # One line, whatever the mode: what a scheduler's log collects.
    sys.stdout.write(json.dumps({"ok": True, **json.loads(summary.json_line())}, sort_keys=True, separators=(",", ":")) + "\n")
    for warning in summary.warnings:
        session.note(f"warning: {warning}")
    verb = {"refreshed": "refreshed", "skipped": "skipped (refreshed recently)", "dry_run": "dry run"}.get(summary.result, summary.result)
    session.note(f"QA {verb}: {summary.rows} rows in {len(summary.tables)} tables, "
                 f"{sum(len(c) for c in summary.masked_columns.values())} masked columns, {summary.duration_seconds:.1f}s")

