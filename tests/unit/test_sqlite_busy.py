"""A ledger another process keeps locked is busy (exit 4), not broken (exit 2)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from relpromote.adapters import sqlite_ledger
from relpromote.adapters.sqlite_ledger import SqliteLedger
from relpromote.errors import Busy, ExitCode


def test_a_ledger_held_in_an_exclusive_transaction_is_busy_not_broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ledger.db"
    SqliteLedger(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(sqlite_ledger, "BUSY_WAIT_SECONDS", 0.2)
    try:
        with pytest.raises(Busy) as busy:
            SqliteLedger(path)
        assert busy.value.code == ExitCode.BUSY and "stayed locked by another process" in busy.value.message
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    SqliteLedger(path).close()  # free again: opens
