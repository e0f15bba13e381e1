"""The board memo (`status` and `history` without loading the project) against an insider who can write the project's
SQLite ledger: an old entry edited in place behind the triggers, the file's size unchanged and its modification time
put back. The memo must miss (the file's change time, which only root sets back, moved): status names the entry that
does not count and never shows what the edited entry claims, history marks it, and `audit verify` still fails on it.
A real project, real keys, the console script; assertions read status's document and the ledger."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relpromote import events
from relpromote.identity import load_identity
from relpromote.project import Project
from tests.helpers import Cli, git_run, make_app_source, make_project, write_manifest


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    base = tmp_path_factory.mktemp("memoattack")
    cli = make_project(base / "proj")
    cache = Path(tempfile.mkdtemp(prefix="rpa", dir="/tmp"))  # short: the cache folder is made 0700 and checked
    cli.env["XDG_CACHE_HOME"] = str(cache)
    git_run(cli.cwd, "add", "-A")
    git_run(cli.cwd, "commit", "-q", "-m", "people")
    cli.run("build", "1.0.0", "--source", str(make_app_source(base / "app")), "--manifest",
            str(write_manifest(base / "m.yml", "1.0.0")), identity="alice", check=True)
    digest = cli.json("show", "1.0.0")["digest"]
    opened = Project.open(cli.cwd / "relpromote.yml")
    try:
        for kind, actor, payload in [
            (events.PROMOTION_FINISHED, "oscar", {"environment": "qa", "result": "succeeded", "hosts": []}),
            (events.VERDICT_ACCEPTED, "quinn", {"environment": "qa", "evidence": [], "note": "fine"}),
        ]:
            opened.ledger.append(kind, actor, load_identity(cli.cwd / ".keys" / f"{actor}.key"),
                                 {"version": "1.0.0", "digest": digest, **payload})
    finally:
        opened.close()
    try:
        yield cli
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def qa_row(status: dict[str, Any]) -> dict[str, Any]:
    return next(row for row in status["environments"] if row["environment"] == "qa")


def test_an_entry_edited_in_place_with_its_files_times_put_back_is_seen_by_status_history_and_audit(project: Cli) -> None:
    before = project.json("status")
    assert qa_row(before)["current"] == "1.0.0" and before["ledger_problems"] == []
    assert project.run("history", check=True).returncode == 0  # the board memo and history's rows are kept now
    memos = sorted((Path(project.env["XDG_CACHE_HOME"]) / "relpromote" / "verified").glob("*.board"))
    assert memos, "the board memo the attack must defeat"

    ledger = project.cwd / ".relpromote" / "ledger.db"
    times = {path: os.stat(path) for path in (ledger, ledger.with_name("ledger.db-wal")) if path.exists()}
    with sqlite3.connect(ledger) as connection:
        [(seq, payload)] = connection.execute("SELECT seq, payload FROM entries WHERE kind = ?", (events.PROMOTION_FINISHED,))
        connection.execute("DROP TRIGGER IF EXISTS entries_append_only_update")
        # The same length: qa now claims 9.9.9, the row's hash and signature kept.
        connection.execute("UPDATE entries SET payload = ? WHERE seq = ?", (payload.replace('"1.0.0"', '"9.9.9"'), seq))
    connection.close()
    for path, info in times.items():
        if path.exists():
            os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert ledger.stat().st_size == times[ledger].st_size and ledger.stat().st_mtime_ns == times[ledger].st_mtime_ns

    after = project.json("status")
    assert qa_row(after)["current"] != "9.9.9"
    assert [(problem["seq"], "content does not match its hash" in problem["reason"]) for problem in after["ledger_problems"]] == [(seq, True)]
    text = project.run("status")  # the human board, from whatever the memo now holds
    assert text.returncode == 0 and f"LEDGER: 1 entry does not count (#{seq}:" in text.stdout
    history = project.json("history", "--version", "9.9.9")["entries"]
    assert [(entry["seq"], entry["counts"]) for entry in history] == [(seq, False)]
    audit = project.run("--json", "audit", "verify")
    assert audit.returncode != 0 and f"ledger entry #{seq} is bad" in audit.stdout
