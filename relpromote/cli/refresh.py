"""`relpromote refresh-qa [--dry-run]`: for scheduled jobs; prints one JSON summary line on stdout, on failure too."""

from __future__ import annotations

import json
import sys

import click

from relpromote.cli._common import Session, interruptible, pass_session
from relpromote.cli.progress import Progress
from relpromote.errors import Refused, RelpromoteError
from relpromote.usecases.refresh_qa import check_reader, refresh_qa

FAILURE_RESULT = {1: "failed", 2: "bad_input", 3: "refused", 4: "busy", 5: "failed"}


@click.command("refresh-qa")
@click.option("--dry-run", is_flag=True, help="Report tables, row counts, masked columns and unmasked personal-looking columns; change nothing.")
@click.option("--check-reader", is_flag=True,
              help="Only check that production's reader role can read and nothing more that matters (exit 3 if it can).")
@pass_session
def refresh_qa_command(session: Session, dry_run: bool, check_reader: bool) -> None:
    """Refresh QA's database from production, with sensitive columns masked."""
    if check_reader:
        _check_reader(session)
        return
    try:
        identity, actor = session.actor()
        with interruptible(session.json_output) as stop_asked:
            summary = refresh_qa(session.project, identity, actor, dry_run,
                                 on_event=Progress(True, "refresh-qa") if session.json_output else None,
                                 should_cancel=stop_asked)
    except RelpromoteError as exc:
        if not session.json_output:
            # The scheduler's log gets a JSON line for every run, with the real cause (stderr has it too).
            line = dict(exc.detail.get("summary") or {})
            line.update(ok=False, result=line.get("result") or FAILURE_RESULT.get(int(exc.code), "failed"),
                        exit_code=int(exc.code), message=exc.message)
            sys.stdout.write(json.dumps(line, sort_keys=True, separators=(",", ":"), default=str) + "\n")
            sys.stdout.flush()
        raise
    # One line, whatever the mode: what a scheduler's log collects.
    sys.stdout.write(json.dumps({"ok": True, **json.loads(summary.json_line())}, sort_keys=True, separators=(",", ":")) + "\n")
    for warning in summary.warnings:
        session.note(f"warning: {warning}")
    verb = {"refreshed": "refreshed", "skipped": "skipped (refreshed recently)", "dry_run": "dry run"}.get(summary.result, summary.result)
    session.note(f"QA {verb}: {summary.rows} rows in {len(summary.tables)} tables, "
                 f"{sum(len(c) for c in summary.masked_columns.values())} masked columns, {summary.duration_seconds:.1f}s")


def _check_reader(session: Session) -> None:
    identity, actor = session.actor()
    report = check_reader(session.project, identity, actor)
    problems = report["refused"] + report["findings"]
    result = "reader_refused" if report["refused"] else "reader_findings" if report["findings"] else "reader_ok"
    if problems:
        raise Refused(f"production's reader role {report['user']} can do more than read: " + "; ".join(problems),
                      detail={"result": result, **report})
    for note in report["notes"]:
        session.note(f"note: {note}")
    if session.json_output:
        session.emit({"result": result, **report}, lambda console: None)
    else:
        sys.stdout.write(json.dumps({"result": result, **report}, sort_keys=True, separators=(",", ":")) + "\n")
        session.note(f"production's reader role {report['user']} can read and nothing more that relpromote can take away")
