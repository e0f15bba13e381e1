"""`relpromote status [--env ENV]` and `relpromote history [--env ENV] [--version VERSION]`."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
from rich.cells import cell_len
from rich.console import Console
from rich.control import strip_control_codes
from rich.segment import Segment, Segments
from rich.style import Style
from rich.table import Table
from rich.text import Text

from relpromote.cli._common import Session, pass_session
from relpromote.cli.views import VERB_OF_KIND, current_blocked, history_row, outcome
from relpromote.freeze import active_freeze
from relpromote.ledger import Entry, LedgerStore, entries_about, parse_moment, utc_now
from relpromote.usecases.locking import look_at_holder, runs_in_doubt
from relpromote.usecases.status_state import (
    config_view,
    entries_to_show,
    freeze_windows,
    kept_rows,
    read_state,
    remember_board,
    remembered_board,
    shown_rows,
)

if TYPE_CHECKING:  # the project and its gates are loaded only when the board memo cannot answer
    from relpromote.project import Project
    from relpromote.state import ProjectState

# At most three lines of the outcome column at 80 columns: a table row, not a log.
OUTCOME_WIDTH = 90


def _when(iso: str | None) -> str:
    return (iso or "-")[:16].replace("T", " ")


@click.command()
@click.option("--env", "env_name", metavar="ENV", help="Only this environment.")
@click.option("--html", "html", type=click.Path(dir_okay=False, path_type=Path), help="Also write the board as one static page to FILE.")
@pass_session
def status(session: Session, env_name: str | None, html: Path | None) -> None:
    """The status board: which release each environment runs, and what needs attention."""
    # From the board memo when it holds exactly what the project would give now (relpromote.usecases.status_state):
    # no config schema, no gates, nothing verified. The locks, the runs' processes and the freezes are read live.
    board = remembered_board(session.config_option) if html is None else None
    if board is not None and env_name is not None and env_name not in board.view["environments"]:
        board.ledger.close()
        board = None  # an unknown name: the project says so (exit 2)
    state: ProjectState | None = None
    if board is None:
        project = session.project
        if env_name:
            project.config.environment(env_name)  # an unknown name is bad input (exit 2)
        read = read_state(project)  # this user's checkpoint of the verified state when the ledger's head is unchanged
        state = read.state
        facts = board_facts(project, state)
        remember_board(project, read, facts)
        view = config_view(project.config)
        ledger = project.ledger
    else:
        facts, view, ledger = board.facts, board.view, board.ledger
    try:
        rows = board_rows(facts, view, ledger, [env_name] if env_name else view["promotion_path"], utc_now())
    finally:
        if board is not None:
            board.ledger.close()

    def human(console: Console) -> None:
        # Fits 80 columns: the fixed columns never wrap, the attention column wraps.
        table = Table(box=None, pad_edge=False)
        for name in ("environment", "release", "digest", "since", "by"):
            table.add_column(name, no_wrap=True)
        table.add_column("attention", overflow="fold", min_width=16)
        for row in rows:
            table.add_row(row["environment"], row["current"] or "-", (row["digest"] or "-")[:8], _when(row["since"]),
                          row["by"] or "-", "; ".join(row["attention"]) or "", style="red" if row["attention"] else None)
        console.print(table)
        verified = [f"{row['environment']} {_when(row['last_verify']['at'])} ({row['last_verify']['result']})"
                    for row in rows if row["last_verify"]]
        if verified:
            console.print(f"last verified: {', '.join(verified)}", markup=False)

    if html is not None and state is not None:  # issue 13: the same board as a self-contained page (relpromote.usecases.board)
        from relpromote.usecases.board import write_board

        write_board(session.project, state, rows, html)
    session.emit({"project": view["project"], "environments": rows, "release_count": facts["release_count"],
                  "ledger_problems": facts["problems"]}, human)


def board_facts(project: Project, state: ProjectState) -> dict[str, Any]:
    """What the board shows that the verified state and the config decide, in plain values (kept as the board memo)."""
    from relpromote.policy import authority_gate

    environments = {}
    for name in project.config.promotion_path:
        refused = [gate for gate in authority_gate(state, name) if not gate.passed]
        environments[name] = {"row": state.environments[name].as_data(), "in_doubt": state.environments[name].in_doubt,
                              "blocked": current_blocked(state, name), "authority": refused[0].reason if refused else None}
    # Entries that do not count (signature, link, signer's key or role): the board says so, as every gate does.
    return {"environments": environments, "release_count": len(state.releases),
            "problems": [{"seq": problem.seq, "reason": problem.reason} for problem in state.ignored]}


@dataclass
class _LedgerOf:
    """What runs_in_doubt reads of a project: its ledger."""

    ledger: LedgerStore


def board_rows(facts: dict[str, Any], view: dict[str, Any], ledger: LedgerStore, names: list[str], now: datetime) -> list[dict[str, Any]]:
    """The board's rows: the facts, and what is read live (the locks and their processes, the runs, the freezes)."""
    problems = facts["problems"]
    ledger_line = ""
    if problems:
        count = f"{len(problems)} {'entry does' if len(problems) == 1 else 'entries do'} not count"
        ledger_line = f"LEDGER: {count} (#{problems[0]['seq']}: {problems[0]['reason']}): relpromote audit verify"
    rows = []
    for name in names:
        known = facts["environments"][name]
        row = dict(known["row"])
        blocked = known["blocked"]
        attention = []
        if ledger_line:
            protected = view["environments"][name]["protected"]
            attention.append(f"{ledger_line}; {'promotions and approvals are refused' if protected else 'gates ignore them'} "
                             "until the ledger verifies")
        if known["authority"]:
            attention.append(f"AUTHORITY: {known['authority']}")
        runs = runs_in_doubt(cast("Project", _LedgerOf(ledger)), name, known["in_doubt"])
        doubted = [run for run in runs if run["state"] == "in doubt"]
        row["in_doubt"] = doubted
        row["running"] = [run for run in runs if run["state"] == "running"]
        row["hosts_in_doubt"] = sorted({host for run in doubted for host in run["hosts"]})
        held = ledger.current(name)
        row["lock"] = held.as_data() if held is not None else None
        if held is not None and look_at_holder(held).alive is False:
            attention.append(f"locked by {held.holder}'s {held.purpose} (lock {held.lock_id}), whose process is gone: "
                             f"relpromote lock release --env {name} --lock-id {held.lock_id}")
        elif held is not None:  # a live run: the next promotion or rollback here waits for it (exit 4)
            attention.append(f"locked by {held.holder}'s {held.purpose} since {_when(held.since)} (lock {held.lock_id}, "
                             f"pid {held.pid} on {held.hostname})")
        window = active_freeze(freeze_windows(view, name), now)
        row["freeze"] = window.reason if window is not None else None
        if window is not None:
            attention.append(f"FROZEN: {window.reason} (promotions need --break-glass REASON)")
        if doubted:
            what = "; ".join(f"{run['run']} of {run['version'] or 'no release'} by {run['by']} at {_when(run['at'])} "
                             f"(lock {run['lock_id'] or '-'}): {run['why']}" for run in doubted)
            where = ", ".join(row["hosts_in_doubt"]) or "its hosts"
            attention.append(f"IN DOUBT: {what}; {where} may not run {row['current'] or 'the recorded release'}: "
                             f"relpromote reconcile --env {name}")
        if row["drifted"]:
            attention.append(f"DRIFT: {', '.join(row['drifted'])} run what the ledger does not say (relpromote verify "
                             f"{name} at {_when(row['last_verify']['at'])}): relpromote rollback --env {name} --version "
                             f"{row['current'] or 'V'}")
        if row["needs_a_person"]:
            attention.append(f"needs a person: {', '.join(row['needs_a_person'])}")
        if blocked:
            attention.append(f"may not be promoted again: {blocked}")
        rows.append({**row, "current_blocked": blocked, "attention": attention})
    return rows


@click.command()
@click.option("--env", "env_name", metavar="ENV", help="Only entries about this environment.")
@click.option("--version", "version", metavar="VERSION", help="Only entries about this release.")
@click.option("--person", "person", metavar="NAME", help="Only entries this person recorded.")
@click.option("--kind", "kinds", multiple=True, metavar="KIND",
              help="Only entries of this kind (repeatable): promotion.finished, or a family such as promotion, verdict, approval.")
@click.option("--since", "since", metavar="WHEN", help="Only entries from then on: 2026-11-30, 2026-11-30T14:00, or 7d / 12h ago.")
@click.option("--until", "until", metavar="WHEN", help="Only entries before then (a date includes that whole day, UTC).")
@pass_session
def history(
    session: Session, env_name: str | None, version: str | None, person: str | None, kinds: tuple[str, ...],
    since: str | None, until: str | None,
) -> None:
    """Every recorded decision and run: what, who, when, and how it ended (result and reason), in order."""
    # The table from the board memo and the rows kept beside the checkpoint when they hold exactly what the project
    # would give now (relpromote.usecases.status_state): no config schema, no gates, nothing verified.
    board = remembered_board(session.config_option) if not session.json_output else None
    kept = None
    if board is not None:
        board.ledger.close()
        if env_name is None or env_name in board.view["environments"]:  # else the project says the name is unknown
            kept = kept_rows(board)
    if kept is None:
        project = session.project
        if env_name:
            project.config.environment(env_name)
    window = (parse_moment(since, "--since") if since else None, parse_moment(until, "--until", end_of_day=True) if until else None)
    if kept is not None and board is not None:
        # An entry that does not count (forged, copied, signed by a key the config does not give its actor) is shown as such.
        not_counted = {problem["seq"]: problem["reason"] for problem in board.facts["problems"]}
        if version is not None and not _about(kept, None, version):
            _unknown_version(session, version)
        entries = [shown_entry(row) for row in _about(kept, env_name, version)]
    else:
        read = read_state(project, shown_row)
        not_counted = {problem.seq: problem.reason for problem in read.state.ignored}
        if version is not None and version not in read.state.releases and not entries_about(entries_to_show(project, read.state, None, version), None, version):
            read.state.release(version)  # a version no entry names is bad input, in `show`'s words (exit 2)
        if session.json_output:  # every entry's payload: read from the ledger
            entries = entries_to_show(project, read.state, env_name, version)
        else:  # what the table shows of each entry, kept beside the checkpoint: no payload is read
            entries = [shown_entry(row) for row in _about(shown_rows(project, read, shown_row), env_name, version)]
            if read.kept:  # and the board, so that the next table needs no project
                remember_board(project, read, board_facts(project, read.state))
    rows = [{**(history_row(e) if session.json_output else shown_history_row(e)), "counts": e.seq not in not_counted,
             "not_counted": not_counted.get(e.seq)}
            for e in entries_about(entries, env_name, version, person=person, kinds=kinds, since=window[0], until=window[1])]

    def human(console: Console) -> None:
        # Fits 80 columns: what/who/when never wrap; the outcome (result: reason) wraps in the last column.
        table: list[tuple[list[str], str | None]] = []
        for row in rows:
            verb = VERB_OF_KIND.get(row["kind"], row["kind"])
            what = verb + (f"{' to' if verb == 'rollback' else ''} {row['version']}" if row["version"] else "")
            result = (row["result"] or "").replace("_", " ")
            outcome = f"{result}: {row['reason']}" if result and row["reason"] else (result or row["reason"] or "")
            if not row["counts"]:
                outcome = f"DOES NOT COUNT ({row['not_counted']}){'; ' + outcome if outcome else ''}"
            if len(outcome) > OUTCOME_WIDTH:  # the whole reason is in --json and in `show VERSION`
                outcome = outcome[: OUTCOME_WIDTH - 1].rstrip() + "…"
            failed = row["result"] in ("failed", "rolled_back", "interrupted", "rollback_failed", "rejected") or not row["counts"]
            table.append(([str(row["seq"]), _when(row["at"]), row["actor"], what, row["environment"] or "-", outcome],
                          "red" if failed else None))
        print_table(console, ["#", "when", "who", "what", "env", "outcome"], table)

    session.emit({"entries": rows}, human)


def _unknown_version(session: Session, version: str) -> None:
    """A version no kept row names: the project's state says so in `show`'s words (exit 2); the state, not the rows,
    lists the built releases (a built release's entry names its version: it never returns then)."""
    session.project.state().release(version)


def shown_row(entry: Entry) -> tuple[Any, ...]:
    """What the history table shows of an entry and its filters look at (plain values: kept beside the checkpoint)."""
    result, reason = outcome(entry)
    return (entry.seq, entry.recorded_at, entry.kind, entry.actor, entry.payload.get("environment"), entry.payload.get("version"),
            result, reason)


def _about(rows: list[tuple[Any, ...]], environment: str | None, version: str | None) -> list[tuple[Any, ...]]:
    """The rows of `shown_row` whose entry is about `environment` and `version` as entries_about judges it (from the
    same two values), taken before 10,000 rows become entries."""
    return [row for row in rows if (environment is None or row[4] == environment) and (version is None or row[5] == version)]


def shown_entry(row: tuple[Any, ...]) -> Entry:
    """A row of `shown_row` as an entry for `entries_about`: its payload holds only what history filters on, and it
    carries its outcome (shown_history_row reads it back)."""
    seq, at, kind, actor, environment, version, result, reason = row
    return _Shown(seq, at, kind, actor, "", {"environment": environment, "version": version}, "", "", "", result=result, reason=reason)


def shown_history_row(entry: Entry) -> dict[str, Any]:
    assert isinstance(entry, _Shown)
    version = entry.payload.get("version")
    return {"seq": entry.seq, "at": entry.recorded_at, "kind": entry.kind, "actor": entry.actor,
            "version": None if version is None else str(version), "environment": entry.payload.get("environment"),
            "result": entry.result, "reason": entry.reason}


@dataclass(frozen=True)
class _Shown(Entry):
    result: Any = None
    reason: Any = None


def print_table(console: Console, header: list[str], rows: list[tuple[list[str], str | None]], min_last: int = 16) -> None:
    """Columns that never wrap (the first one right-aligned) and a last column that wraps in the width left, laid
    out as rich's Table(box=None) lays them out, in time linear in the rows: rich's Table measures and renders every
    cell (about 0.4 ms a row: 1 s for the 3,000 rows of a long ledger's history). Cells are plain text, never markup.

    Written as the segments rich makes of one Text holding every line (console.print(text, soft_wrap=True)): control
    codes stripped and tabs expanded as Text does, each line in its row's style, without Text's splitting of a
    3,000-line text (tests/cli/test_status_memo_table.py holds the two to the same bytes)."""
    fixed = [max(cell_len(cells[column]) for cells in [header, *(cells for cells, _ in rows)]) for column in range(len(header) - 1)]
    indent = sum(fixed) + 2 * len(fixed)
    last = max(min_last, console.width - indent)  # rich's Table too lets a too narrow terminal overflow, not the fixed columns
    segments: list[Segment] = []
    newline = Segment("\n")
    styles: dict[str | None, Style | None] = {None: None}
    for cells, style in [(header, "bold"), *rows]:
        if style is not None and style not in styles:
            styles[style] = console.get_style(style)
        lead = "  ".join(cell.rjust(fixed[0]) if column == 0 else cell + " " * (fixed[column] - cell_len(cell))
                         for column, cell in enumerate(cells[:-1]))
        outcome = cells[-1]
        if len(outcome) <= last and outcome.isprintable() and outcome.strip():  # what textwrap makes of it: one line
            wrapped = [outcome]
        else:
            wrapped = textwrap.wrap(outcome, last, break_on_hyphens=False) or [""]
        for line in [f"{lead}  {wrapped[0]}".rstrip(), *(" " * indent + more.rstrip() for more in wrapped[1:])]:
            for part in strip_control_codes(line).split("\n"):  # a line break in a cell breaks the line, as in a Text
                if "\t" in part:
                    spaced = Text(part)
                    spaced.expand_tabs(console.tab_size or 8)
                    part = spaced.plain
                segments += (Segment(part, styles[style]), newline)
    console.print(Segments(segments), end="", soft_wrap=True)
