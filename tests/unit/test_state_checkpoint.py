"""relpromote.adapters.state_checkpoint and the ledger reads `status` and `history` use with it.

The checkpoint file: believed only for exactly its key and only as the user's own intact 0600 file holding the state's
own classes. The SQLite store's fingerprint: changed by every write, an edit behind the triggers included. The
`entries_mentioning` pre-filter: a superset of the entries whose payload holds the text, escapes included.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relpromote.adapters.state_checkpoint import _HEADER, MAGIC, checkpoint_key, checkpoint_path, load_checkpoint, save_checkpoint
from relpromote.ledger import entries_about
from tests.unit.real_ledger import Ledger

LEDGER = "shop\n/srv/shop/.relpromote/ledger.db"
STAMP = {"sha256": "0" * 64, "commit": "a" * 40, "committed": True}


@pytest.fixture
def cache() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="rpc", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    made = Ledger(tmp_path / "ledger.db")
    made.build("1.0.0")
    made.promote("1.0.0", "qa")
    made.accept("1.0.0", "qa")
    return made


def key_of(ledger: Ledger) -> bytes:
    return checkpoint_key(LEDGER, ledger.store.fingerprint(), "config", STAMP, "code")


def test_a_saved_state_is_found_for_its_key_only(ledger: Ledger, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    path = checkpoint_path(LEDGER)
    assert path is not None and path.parent == cache / "relpromote" / "verified"
    state = ledger.state()
    save_checkpoint(path, key_of(ledger), state)
    assert (path.stat().st_mode & 0o777) == 0o600
    found = load_checkpoint(path, key_of(ledger))
    assert found is not None and found.environments["qa"].current == "1.0.0" and found.head == state.head
    for other in (checkpoint_key(LEDGER, ledger.store.fingerprint(), "another config", STAMP, "code"),
                  checkpoint_key(LEDGER, ledger.store.fingerprint(), "config", {**STAMP, "commit": "b" * 40}, "code"),
                  checkpoint_key(LEDGER, ledger.store.fingerprint(), "config", STAMP, "other code"),
                  checkpoint_key("shop\n/elsewhere", ledger.store.fingerprint(), "config", STAMP, "code")):
        assert load_checkpoint(path, other) is None
    assert load_checkpoint(path, key_of(ledger), now=os.path.getmtime(path) + 2 * 86400) is None  # too old


def test_every_write_to_the_sqlite_file_changes_the_fingerprint(ledger: Ledger) -> None:
    before = ledger.store.fingerprint()
    assert before == ledger.store.fingerprint()  # reading changes nothing
    entries = ledger.store.entries()
    assert before["head"] == [len(entries), entries[-1].seq, entries[-1].hash]
    with sqlite3.connect(ledger.path) as connection:  # the payload of an old entry edited; its hash column left alone
        connection.execute("DROP TRIGGER entries_append_only_update")
        edited = {**entries[0].payload, "size": 2}
        connection.execute("UPDATE entries SET payload = ? WHERE seq = ?", (json.dumps(edited, sort_keys=True), entries[0].seq))
    after = ledger.store.fingerprint()
    assert after["head"] == before["head"] and after != before
    ledger.accept("1.0.0", "deployment")
    assert ledger.store.fingerprint()["head"][0] == after["head"][0] + 1


def test_a_body_that_is_not_the_states_own_classes_is_never_unpickled(ledger: Ledger, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    path = checkpoint_path(LEDGER)
    assert path is not None
    marker = cache / "ran"
    evil = pickle.dumps(_Evil(str(marker)))
    path.write_bytes(MAGIC + _HEADER.pack(key_of(ledger), time.time(), hashlib.sha256(evil).digest()) + evil)
    path.chmod(0o600)
    assert load_checkpoint(path, key_of(ledger)) is None and not marker.exists()
    save_checkpoint(path, key_of(ledger), ledger.state())
    path.chmod(0o640)  # readable by the group: anyone in it could have been given write access too
    assert load_checkpoint(path, key_of(ledger)) is None


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("version", ["1.0.0", "1.0.0-é", 'v"q', "back\\slash"])
def test_entries_mentioning_holds_every_entry_about_the_text(tmp_path: Path, version: str) -> None:
    made = Ledger(tmp_path / "ledger.db")
    made.build(version)
    made.build("2.0.0")
    made.promote(version, "qa")
    made.accept("2.0.0", "qa")
    everything = made.store.entries()
    found = made.store.entries_mentioning([version])
    assert {e.seq for e in found} <= {e.seq for e in everything}
    assert entries_about(found, version=version) == entries_about(everything, version=version) != []
    assert entries_about(made.store.entries_mentioning(["qa", version]), "qa", version) == entries_about(everything, "qa", version)
    if version == "1.0.0":  # no escape anywhere: the other release's entries are not even read
        assert all(e.payload.get("version") != "2.0.0" for e in found)
