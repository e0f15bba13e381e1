"""The project folder a group shares (relpromote/adapters/shared_folder.py) on a real file system, with real SQLite.

The group is `users` (gid 100 on Debian), which root is not in: every file must be given to it, none inherits it by
chance. Two real logins of one group are tests/integration/test_shared_project.py.
"""

from __future__ import annotations

import grp
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from relpromote.adapters.shared_folder import SharedFolder, shared_folder, wanted_mode
from relpromote.errors import BadInput, ExitCode

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="giving files to a group root is not in needs root")

GROUP = "users"


@pytest.fixture
def restored_umask() -> Iterator[None]:
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


@pytest.fixture
def gid() -> int:
    try:
        return grp.getgrnam(GROUP).gr_gid
    except KeyError:
        pytest.skip(f"no group {GROUP}")


def _shared(root: Path, **paths: Path) -> SharedFolder:
    state = root / ".relpromote"
    return shared_folder(GROUP, "relpromote.yml", state, state / "runs", paths.get("store", state / "store"),
                         paths.get("ledger", state / "ledger.db"))


def _look(path: Path) -> tuple[int, int]:
    info = os.lstat(path)
    return info.st_gid, stat.S_IMODE(info.st_mode)


def test_opening_makes_the_folders_and_the_ledger_the_groups(tmp_path: Path, gid: int, restored_umask: None) -> None:
    shared = _shared(tmp_path)

    assert shared.open() == []

    state = tmp_path / ".relpromote"
    for folder in (state, state / "runs", state / "store", state / "store" / "sha256"):
        assert _look(folder) == (gid, 0o2770), folder
    assert _look(state / "ledger.db") == (gid, 0o660)
    assert _look(tmp_path) != (gid, 0o2770)  # the project folder itself is left alone
    assert os.umask(0o022) == 0o007


def test_sqlite_gives_its_journal_files_the_group_and_mode_of_the_ledger(tmp_path: Path, gid: int, restored_umask: None) -> None:
    shared = _shared(tmp_path)
    shared.open()
    ledger = tmp_path / ".relpromote" / "ledger.db"

    with closing(sqlite3.connect(ledger, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE entries (seq INTEGER)")
        db.execute("INSERT INTO entries VALUES (1)")
        wal, shm = ledger.with_name("ledger.db-wal"), ledger.with_name("ledger.db-shm")
        assert _look(wal) == (gid, 0o660)
        assert _look(shm) == (gid, 0o660)
    assert _look(ledger) == (gid, 0o660)


def test_what_was_made_private_is_given_back_to_the_group(tmp_path: Path, gid: int, restored_umask: None) -> None:
    shared = _shared(tmp_path)
    shared.open()
    state = tmp_path / ".relpromote"
    run = state / "runs" / "20261201-promote-qa"
    run.mkdir()
    run.chmod(0o700)  # as ansible-runner leaves a run folder
    events = run / "artifacts" / "1" / "job_events"
    events.mkdir(parents=True)
    (events / "1.json").write_text("{}")
    (events / "1.json").chmod(0o600)
    script = run / "ansible-playbook"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o700)
    artifact = state / "store" / "sha256" / "ab.tar.gz"
    artifact.write_bytes(b"x")
    artifact.chmod(0o444)
    outside = tmp_path / "elsewhere"
    outside.write_text("not relpromote's")
    outside.chmod(0o644)
    (state / "runs" / "link").symlink_to(outside)
    for path in (run, events, events / "1.json", script, artifact):
        os.chown(path, -1, 0)

    assert shared.repair() == []

    assert _look(run) == (gid, 0o2770)
    assert _look(events) == (gid, 0o2770)
    assert _look(events / "1.json") == (gid, 0o660)
    assert _look(script) == (gid, 0o770)
    assert _look(artifact) == (gid, 0o440)  # read-only stays read-only, for the group only
    assert _look(outside) == (0, 0o644)  # a symbolic link is never followed


def test_a_store_and_ledger_outside_the_project_are_shared_without_their_parents(tmp_path: Path, gid: int,
                                                                               restored_umask: None) -> None:
    (tmp_path / "srv").mkdir(mode=0o755)
    shared = _shared(tmp_path / "proj", store=tmp_path / "srv" / "store", ledger=tmp_path / "srv" / "db" / "ledger.db")
    (tmp_path / "proj").mkdir()

    shared.open()

    assert _look(tmp_path / "srv" / "store") == (gid, 0o2770)
    assert _look(tmp_path / "srv" / "db") == (gid, 0o2770)
    assert _look(tmp_path / "srv" / "db" / "ledger.db") == (gid, 0o660)
    assert _look(tmp_path / "srv") == (0, 0o755)


@pytest.mark.parametrize(("mode", "wanted"), [(stat.S_IFDIR | 0o755, 0o2770), (stat.S_IFREG | 0o644, 0o660),
                                               (stat.S_IFREG | 0o444, 0o440), (stat.S_IFREG | 0o755, 0o770),
                                               (stat.S_IFLNK | 0o777, None), (stat.S_IFSOCK | 0o755, None)])
def test_the_mode_the_group_gets(mode: int, wanted: int | None) -> None:
    assert wanted_mode(mode) == wanted


def test_an_unknown_group_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as raised:
        shared_folder("rpnosuchgroup", "relpromote.yml", tmp_path / ".relpromote", tmp_path / "runs", tmp_path / "store", None)
    assert raised.value.code == ExitCode.BAD_INPUT
    assert "relpromote.yml: group: no group 'rpnosuchgroup'" in raised.value.message
