"""The memo of verified signatures (relpromote.adapters.verified_cache) never makes an entry count that does not verify.

A real project, real keys, the console script; the memo lives in the cache folder the test
gives each project (XDG_CACHE_HOME). The attacker has write access to the project folder: they drop the ledger's
triggers and edit an old entry after `status` remembered every signature, or plant a memo of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relpromote import events
from relpromote.adapters.verified_cache import MAGIC, fact, read_facts
from relpromote.identity import load_identity
from relpromote.ledger import Entry, entry_hash, seal, utc_now
from relpromote.project import Project
from tests.helpers import Cli, git_run, make_app_source, make_project, write_manifest
from tests.unit.real_ledger import new_identity


@pytest.fixture
def runtime() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="rpv", dir="/tmp"))  # short: control_path wants room for SSH sockets
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def project(tmp_path: Path, runtime: Path) -> Cli:
    """1.0.0 built by alice, promoted to and accepted in qa, all through relpromote with the people's keys."""
    cli = make_project(tmp_path / "proj")
    cli.env["XDG_CACHE_HOME"] = str(runtime)
    git_run(cli.cwd, "add", "-A")
    git_run(cli.cwd, "commit", "-q", "-m", "people")
    source = make_app_source(tmp_path / "app")
    manifest = write_manifest(tmp_path / "m.yml", "1.0.0")
    cli.run("build", "1.0.0", "--source", str(source), "--manifest", str(manifest), identity="alice", check=True)
    digest = cli.json("show", "1.0.0")["digest"]
    record(cli, events.PROMOTION_FINISHED, "oscar",
           {"environment": "qa", "version": "1.0.0", "digest": digest, "result": "succeeded", "hosts": []})
    record(cli, events.VERDICT_ACCEPTED, "quinn",
           {"environment": "qa", "version": "1.0.0", "digest": digest, "evidence": [], "note": "fine"})
    return cli


def record(project: Cli, kind: str, actor: str, payload: dict[str, Any]) -> Entry:
    opened = Project.open(project.cwd / "relpromote.yml")
    try:
        return opened.ledger.append(kind, actor, load_identity(project.cwd / ".keys" / f"{actor}.key"), payload)
    finally:
        opened.close()


def memo_files(runtime: Path) -> list[Path]:
    return sorted((runtime / "relpromote" / "verified").glob("*.sigs"))


def rows(project: Cli) -> list[Entry]:
    opened = Project.open(project.cwd / "relpromote.yml")
    try:
        return opened.ledger.entries()
    finally:
        opened.close()


def attacker_sql(project: Cli, statement: str, params: tuple[Any, ...]) -> None:
    """What anyone who may write the project folder can do to the SQLite file: the triggers are no obstacle."""
    with sqlite3.connect(project.cwd / ".relpromote" / "ledger.db") as connection:
        connection.execute("DROP TRIGGER IF EXISTS entries_append_only_update")
        connection.execute(statement, params)


def answers(project: Cli) -> dict[str, Any]:
    """What status, history, audit verify and a gate say about the ledger."""
    status = project.json("status")
    history = project.json("history")
    audit = project.run("--json", "audit", "verify")
    gate = project.run("--json", "approve", "1.0.0", "--env", "production", "--ticket", "CHG-1", identity="carol")
    return {
        "status": sorted((p["seq"], p["reason"]) for p in status["ledger_problems"]),
        "history": sorted((e["seq"], e["not_counted"]) for e in history["entries"] if not e["counts"]),
        "audit": (audit.returncode, sorted((p["seq"], p["reason"]) for p in json.loads(audit.stdout)["problems"])),
        "gate": (gate.returncode, json.loads(gate.stdout).get("error", "")),
    }


def named_everywhere(found: dict[str, Any], seq: int, reason: str) -> None:
    assert any(s == seq and reason in why for s, why in found["status"]), found["status"]
    assert any(s == seq and reason in why for s, why in found["history"]), found["history"]
    assert found["audit"][0] == 1 and any(s == seq and reason in why for s, why in found["audit"][1]), found["audit"]
    assert found["gate"][0] == 3 and "rule 'ledger'" in found["gate"][1] and f"#{seq}" in found["gate"][1], found["gate"]


@pytest.mark.parametrize("rehash", [False, True], ids=["content-edited", "content-edited-and-rehashed"])
def test_an_old_entry_edited_after_status_remembered_it_is_named_by_status_history_gates_and_audit(
    project: Cli, runtime: Path, rehash: bool,
) -> None:
    assert project.json("status")["ledger_problems"] == []
    [memo] = memo_files(runtime)
    assert (memo.stat().st_mode & 0o777) == 0o600 and len(read_facts(memo)) == len(rows(project))
    accepted = next(e for e in rows(project) if e.kind == events.VERDICT_ACCEPTED)
    edited = {**accepted.payload, "environment": "deployment"}  # the acceptance moved to another environment
    digest = entry_hash({**accepted.body(), "payload": edited}) if rehash else accepted.hash
    attacker_sql(project, "UPDATE entries SET payload = ?, hash = ? WHERE seq = ?", (json.dumps(edited, sort_keys=True), digest, accepted.seq))
    reason = "signature does not verify" if rehash else "content does not match its hash"
    found = answers(project)
    named_everywhere(found, accepted.seq, reason)
    for path in memo_files(runtime):  # without the memo: the very same answers
        path.unlink()
    assert answers(project) == found


def test_a_signature_column_swapped_for_another_remembered_signature_is_checked(project: Cli, runtime: Path) -> None:
    project.json("status")
    built, finished = rows(project)[0], next(e for e in rows(project) if e.kind == events.PROMOTION_FINISHED)
    attacker_sql(project, "UPDATE entries SET signature = ? WHERE seq = ?", (built.signature, finished.seq))
    named_everywhere(answers(project), finished.seq, "signature does not verify")


def forged_acceptance(project: Cli) -> Entry:
    """An acceptance in deployment claiming quinn (quinn's key in the row) but signed by someone else."""
    last = rows(project)[-1]
    digest = project.json("show", "1.0.0")["digest"]
    quinn = load_identity(project.cwd / ".keys" / "quinn.key")
    forged = seal(last, events.VERDICT_ACCEPTED, "quinn", new_identity(),
                  {"environment": "deployment", "version": "1.0.0", "digest": digest, "evidence": [], "note": ""}, utc_now())
    body = {**forged.body(), "public_key": quinn.public_key}
    digest = entry_hash(body)
    entry = Entry(**body, hash=digest, signature=forged.signature)
    with sqlite3.connect(project.cwd / ".relpromote" / "ledger.db") as connection:
        connection.execute("INSERT INTO entries (seq, recorded_at, kind, actor, public_key, payload, prev_hash, hash, signature) "
                           "VALUES (?,?,?,?,?,?,?,?,?)", (entry.seq, entry.recorded_at, entry.kind, entry.actor, entry.public_key,
                                                          json.dumps(entry.payload, sort_keys=True), entry.prev_hash, entry.hash,
                                                          entry.signature))
    return entry


@pytest.mark.parametrize("how", ["open-to-others", "another-users"])
def test_a_memo_planted_by_someone_else_is_ignored(project: Cli, runtime: Path, how: str) -> None:
    project.json("status")
    [memo] = memo_files(runtime)
    entry = forged_acceptance(project)
    planted = fact(entry.public_key, entry.hash.encode(), entry.signature)  # "quinn signed this": false
    memo.write_bytes(memo.read_bytes() + planted)
    if how == "open-to-others":
        memo.chmod(0o644)
    else:
        if os.geteuid() != 0:
            pytest.skip("giving a file to another user needs root")
        os.chown(memo, 65534, 65534)
    named_everywhere(answers(project), entry.seq, "signature does not verify")
    assert planted not in read_facts(memo_files(runtime)[0])  # replaced by the user's own memo of what verified


def test_the_gates_and_audit_verify_do_not_believe_even_the_users_own_memo(project: Cli, runtime: Path) -> None:
    """Only status and history read the memo; a false fact in the user's own file (which only they or root could write)
    changes nothing a gate or audit verify decides."""
    project.json("status")
    [memo] = memo_files(runtime)
    entry = forged_acceptance(project)
    memo.write_bytes(MAGIC + memo.read_bytes()[len(MAGIC):] + fact(entry.public_key, entry.hash.encode(), entry.signature))
    memo.chmod(0o600)
    audit = project.run("--json", "audit", "verify")
    assert audit.returncode == 1 and any(p["seq"] == entry.seq and "signature does not verify" in p["reason"]
                                         for p in json.loads(audit.stdout)["problems"])
    gate = project.run("--json", "approve", "1.0.0", "--env", "production", "--ticket", "CHG-1", identity="carol")
    assert gate.returncode == 3 and f"#{entry.seq}" in json.loads(gate.stdout)["error"]
