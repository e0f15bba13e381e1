"""The checkpoint of the verified, folded state (relpromote.adapters.state_checkpoint) that `status` and `history` read.

A real project, real keys, the console script; the checkpoint lives in the cache folder the test gives the project
(XDG_CACHE_HOME). Shown: status and history use it when nothing changed (a checkpoint rewritten by the test with another
answer is what status shows); anything that changes the ledger (an append, a row edited in place behind the triggers,
a forged entry), the config, or the checkpoint file itself makes them verify and fold the whole ledger again, so every
ledger problem is still named by status (LEDGER: ...) and history.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relpromote import events
from relpromote.adapters.state_checkpoint import _HEADER, MAGIC, SUFFIX, load_checkpoint
from relpromote.identity import load_identity
from relpromote.ledger import Entry, Problem, entry_hash, seal, utc_now
from relpromote.project import Project
from relpromote.state import ProjectState
from relpromote.usecases.status_state import read_state
from tests.helpers import Cli, git_run, make_app_source, make_project, write_manifest
from tests.unit.real_ledger import new_identity


@pytest.fixture
def cache() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="rpk", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made once: 1.0.0 built by alice, promoted to qa and accepted there, all recorded with the people's keys."""
    base = tmp_path_factory.mktemp("checkpoint")
    cli = make_project(base / "proj")
    cli.env["XDG_CACHE_HOME"] = str(base / "cache")
    git_run(cli.cwd, "add", "-A")
    git_run(cli.cwd, "commit", "-q", "-m", "people")
    source = make_app_source(base / "app")
    cli.run("build", "1.0.0", "--source", str(source), "--manifest", str(write_manifest(base / "m.yml", "1.0.0")),
            identity="alice", check=True)
    digest = cli.json("show", "1.0.0")["digest"]
    record(cli, events.PROMOTION_FINISHED, "oscar", {"environment": "qa", "version": "1.0.0", "digest": digest, "result": "succeeded", "hosts": []})
    record(cli, events.VERDICT_ACCEPTED, "quinn", {"environment": "qa", "version": "1.0.0", "digest": digest, "evidence": [], "note": "fine"})
    return cli.cwd


@pytest.fixture
def project(built: Path, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A copy of that project of each test's own, with its own cache folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))  # the in-process reads below use the same cache as the CLI
    shutil.copytree(built, tmp_path / "proj", symlinks=True)
    cli = Cli(tmp_path / "proj")
    cli.env["XDG_CACHE_HOME"] = str(cache)
    return cli


def record(project: Cli, kind: str, actor: str, payload: dict[str, Any]) -> Entry:
    opened = Project.open(project.cwd / "relpromote.yml")
    try:
        return opened.ledger.append(kind, actor, load_identity(project.cwd / ".keys" / f"{actor}.key"), payload)
    finally:
        opened.close()


def checkpoints(cache: Path) -> list[Path]:
    return sorted((cache / "relpromote" / "verified").glob(f"*{SUFFIX}"))


def in_process(project: Cli) -> tuple[ProjectState, bool]:
    opened = Project.open(project.cwd / "relpromote.yml")
    try:
        read = read_state(opened)
        return read.state, read.from_checkpoint
    finally:
        opened.close()


def rewrite(path: Path, change: Any) -> None:
    """The user's own checkpoint with another state in it, its digest made to match (as only the user could)."""
    data = path.read_bytes()
    key, written, _ = _HEADER.unpack_from(data, len(MAGIC))
    state = pickle.loads(data[len(MAGIC) + _HEADER.size:])
    change(state)
    body = pickle.dumps(state)
    path.write_bytes(MAGIC + _HEADER.pack(key, written, hashlib.sha256(body).digest()) + body)


def board(project: Cli) -> dict[str, Any]:
    status = project.json("status")
    return {"qa": next(row["current"] for row in status["environments"] if row["environment"] == "qa"),
            "problems": [(p["seq"], p["reason"]) for p in status["ledger_problems"]]}


def attacker_sql(project: Cli, statement: str, params: tuple[Any, ...]) -> None:
    with sqlite3.connect(project.cwd / ".relpromote" / "ledger.db") as connection:
        connection.execute("DROP TRIGGER IF EXISTS entries_append_only_update")
        connection.execute(statement, params)


def test_status_and_history_read_the_checkpoint_while_nothing_changed_and_not_after_an_append(project: Cli, cache: Path) -> None:
    first = board(project)
    assert first == {"qa": "1.0.0", "problems": []}
    [path] = checkpoints(cache)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert in_process(project)[1] is True  # the second reader takes it
    # Proof that status answers from it: the user's own checkpoint, rewritten to say qa runs 0.9.9, is believed...
    rewrite(path, lambda state: setattr(state.environments["qa"], "current", "0.9.9"))
    assert board(project)["qa"] == "0.9.9"
    # ...and history takes the entries that do not count from it too.
    rewrite(path, lambda state: state.ignored.append(Problem(1, "planted")))
    assert [e["not_counted"] for e in project.json("history")["entries"] if not e["counts"]] == ["planted"]
    # Any append makes it stale: the whole ledger is verified and folded again, and the checkpoint replaced.
    record(project, events.VERIFY_FINISHED, "oscar", {"environment": "qa", "result": "ok", "drifted": []})
    assert board(project) == first
    assert [e for e in project.json("history")["entries"] if not e["counts"]] == []
    assert in_process(project)[1] is True


@pytest.mark.parametrize("how", ["body-flipped", "open-to-others", "foreign-class", "other-key", "too-old"])
def test_a_tampered_or_stale_checkpoint_is_ignored_and_replaced(project: Cli, cache: Path, how: str) -> None:
    first = board(project)
    [path] = checkpoints(cache)
    rewrite(path, lambda state: setattr(state.environments["qa"], "current", "0.9.9"))
    data = path.read_bytes()
    key, written, digest = _HEADER.unpack_from(data, len(MAGIC))
    body = data[len(MAGIC) + _HEADER.size:]
    marker = project.cwd / "ran"
    if how == "body-flipped":
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif how == "open-to-others":
        path.chmod(0o644)
    elif how == "foreign-class":  # a body that would run a command when unpickled: never looked up
        evil = pickle.dumps(_Evil(str(marker)))
        path.write_bytes(MAGIC + _HEADER.pack(key, written, hashlib.sha256(evil).digest()) + evil)
    elif how == "other-key":
        path.write_bytes(MAGIC + _HEADER.pack(bytes(32), written, digest) + body)
    else:
        path.write_bytes(MAGIC + _HEADER.pack(key, written - 2 * 86400, digest) + body)
    assert board(project) == first
    assert not marker.exists()
    [path] = checkpoints(cache)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert in_process(project)[0].environments["qa"].current == "1.0.0"


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("rehash", [False, True], ids=["content-edited", "content-edited-and-rehashed"])
def test_an_old_entry_edited_in_place_after_the_checkpoint_is_named_by_status_and_history(project: Cli, cache: Path, rehash: bool) -> None:
    assert board(project)["problems"] == []
    assert checkpoints(cache)
    opened = Project.open(project.cwd / "relpromote.yml")
    try:
        built = next(e for e in opened.ledger.entries() if e.kind == events.RELEASE_BUILT)
    finally:
        opened.close()
    edited = {**built.payload, "size": built.payload["size"] + 1}  # an old entry, not the head: the head is unchanged
    digest = entry_hash({**built.body(), "payload": edited}) if rehash else built.hash
    attacker_sql(project, "UPDATE entries SET payload = ?, hash = ? WHERE seq = ?", (json.dumps(edited, sort_keys=True), digest, built.seq))
    reason = "signature does not verify" if rehash else "content does not match its hash"
    found = board(project)
    assert any(seq == built.seq and reason in why for seq, why in found["problems"]), found
    status = project.run("status")
    assert "LEDGER:" in status.stdout and f"#{built.seq}" in status.stdout
    history = project.json("history", "--version", "1.0.0")
    assert any(e["seq"] == built.seq and not e["counts"] and reason in e["not_counted"] for e in history["entries"])
    assert board(project) == found  # and the same from the checkpoint made of it


def test_a_forged_entry_appended_after_the_checkpoint_is_named(project: Cli, cache: Path) -> None:
    board(project)
    opened = Project.open(project.cwd / "relpromote.yml")
    try:
        last = opened.ledger.entries()[-1]
    finally:
        opened.close()
    quinn = load_identity(project.cwd / ".keys" / "quinn.key")
    forged = seal(last, events.VERDICT_ACCEPTED, "quinn", new_identity(),
                  {"environment": "deployment", "version": "1.0.0", "digest": "0" * 64, "evidence": [], "note": ""}, utc_now())
    body = {**forged.body(), "public_key": quinn.public_key}
    entry = Entry(**body, hash=entry_hash(body), signature=forged.signature)
    with sqlite3.connect(project.cwd / ".relpromote" / "ledger.db") as connection:
        connection.execute("INSERT INTO entries (seq, recorded_at, kind, actor, public_key, payload, prev_hash, hash, signature) "
                           "VALUES (?,?,?,?,?,?,?,?,?)", (entry.seq, entry.recorded_at, entry.kind, entry.actor, entry.public_key,
                                                          json.dumps(entry.payload, sort_keys=True), entry.prev_hash, entry.hash,
                                                          entry.signature))
    for _ in range(2):  # first verified afresh, then from the checkpoint made of that
        found = board(project)
        assert any(seq == entry.seq and "signature does not verify" in why for seq, why in found["problems"]), found


def test_a_changed_config_is_verified_again(project: Cli, cache: Path) -> None:
    board(project)
    [path] = checkpoints(cache)
    rewrite(path, lambda state: setattr(state.environments["qa"], "current", "0.9.9"))
    config = project.cwd / "relpromote.yml"
    config.write_text(config.read_text() + "\n# edited\n")
    assert board(project)["qa"] == "1.0.0"
    assert load_checkpoint(checkpoints(cache)[0], bytes(32)) is None  # keyed: another key finds nothing


def test_history_shows_the_rows_kept_beside_the_checkpoint_only_for_the_same_key(project: Cli, cache: Path) -> None:
    first = project.run("history", check=True).stdout
    assert project.run("history", check=True).stdout == first
    [rows] = sorted((cache / "relpromote" / "verified").glob("*.rows"))
    assert (rows.stat().st_mode & 0o777) == 0o600
    rewrite(rows, lambda kept: kept.__setitem__(0, (*kept[0][:3], "mallory", *kept[0][4:])))  # the user's own file
    assert "mallory" in project.run("history").stdout  # the table is made from it...
    assert "mallory" not in project.run("history", "--env", "qa").stdout  # (#1 is not about qa)
    assert {e["actor"] for e in project.json("history")["entries"]} == {"alice", "oscar", "quinn"}  # ...JSON from the ledger
    data = rows.read_bytes()
    rows.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert project.run("history").stdout == first  # a damaged file: made again from the entries
    rewrite(rows, lambda kept: kept.__setitem__(0, (*kept[0][:3], "mallory", *kept[0][4:])))
    record(project, events.VERIFY_FINISHED, "oscar", {"environment": "qa", "result": "ok", "drifted": []})
    after = project.run("history").stdout
    assert "mallory" not in after and after.startswith(first.splitlines()[0]) and len(after.splitlines()) == len(first.splitlines()) + 1
