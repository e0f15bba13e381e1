from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relpromote.adapters.sqlite_ledger import SqliteLedger
from relpromote.identity import Identity, public_key_line
from relpromote.ledger import Entry, seal, verify_chain


def identity() -> Identity:
    key = Ed25519PrivateKey.generate()
    return Identity(key, public_key_line(key.public_key()))


ALICE, MALLORY = identity(), identity()
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def chain(count: int) -> list[Entry]:
    entries: list[Entry] = []
    for index in range(count):
        entries.append(seal(entries[-1] if entries else None, "release.built", "alice", ALICE, {"n": index}, NOW))
    return entries


def test_a_sealed_chain_verifies() -> None:
    report = verify_chain(chain(5), {ALICE.public_key: "alice"})
    assert report.ok and report.entries == 5 and report.head_seq == 5


def test_edited_payload_is_named() -> None:
    entries = chain(4)
    entries[2] = dataclasses.replace(entries[2], payload={"n": 99})
    report = verify_chain(entries)
    assert not report.ok and report.first_bad_seq == 3 and "edited" in report.reason


def test_removed_entry_is_named() -> None:
    entries = chain(4)
    del entries[1]
    report = verify_chain(entries)
    assert not report.ok and report.first_bad_seq == 3


def test_resealed_by_another_key_is_caught() -> None:
    entries = chain(3)
    forged = seal(entries[0], "release.built", "alice", MALLORY, {"n": 1}, NOW)
    # Mallory re-signs with her key but keeps alice's public key in the row.
    forged = dataclasses.replace(forged, public_key=ALICE.public_key)
    report = verify_chain([entries[0], forged])
    assert not report.ok and report.first_bad_seq == 2


def test_signed_by_a_known_key_under_another_name() -> None:
    entries = [seal(None, "release.built", "carol", ALICE, {}, NOW)]
    report = verify_chain(entries, {ALICE.public_key: "alice"})
    assert not report.ok and "recorded as carol" in report.reason


def test_a_key_the_config_gives_no_one_does_not_count() -> None:
    report = verify_chain(chain(2), {})
    assert not report.ok and [p.seq for p in report.problems] == [1, 2]
    assert "a key the config gives no one (recorded as alice)" in report.reason


def test_sqlite_ledger_appends_and_is_append_only(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.db")
    for index in range(3):
        ledger.append("release.built", "alice", ALICE, {"n": index, "text": "ünïcode"})
    entries = ledger.entries()
    assert [e.seq for e in entries] == [1, 2, 3]
    assert verify_chain(entries).ok
    ledger.close()
    db = sqlite3.connect(tmp_path / "ledger.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE entries SET actor = 'mallory' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM entries WHERE seq = 3")
    assert db.execute("SELECT version FROM schema_version").fetchone() == (2,)


def test_reopening_keeps_the_chain(tmp_path: Path) -> None:
    SqliteLedger(tmp_path / "l.db").append("a", "alice", ALICE, {})
    ledger = SqliteLedger(tmp_path / "l.db")
    ledger.append("b", "alice", ALICE, {})
    assert verify_chain(ledger.entries()).ok and len(ledger.entries()) == 2
