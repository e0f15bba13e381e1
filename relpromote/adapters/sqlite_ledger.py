"""The ledger in a SQLite file: the embedded default.

Each append is one IMMEDIATE transaction (re-checks the decision, reads the last entry, seals the
next, inserts it), so
concurrent writers queue and a process killed mid-write leaves the previous, consistent state
(WAL journal, synchronous=FULL). Triggers make the entries table append-only.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from relpromote import events
from relpromote.errors import BadInput, Busy
from relpromote.identity import Identity
from relpromote.ledger import SCHEMA_VERSION, Entry, Precondition, corrupt_entry, mention_needle, seal_append, utc_now
from relpromote.lock import Lock

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE entries (
        seq         INTEGER PRIMARY KEY,
        recorded_at TEXT NOT NULL,
        kind        TEXT NOT NULL,
        actor       TEXT NOT NULL,
        public_key  TEXT NOT NULL,
        payload     TEXT NOT NULL,
        prev_hash   TEXT NOT NULL,
        hash        TEXT NOT NULL UNIQUE,
        signature   TEXT NOT NULL
    );
    CREATE INDEX entries_kind ON entries(kind);
    CREATE TRIGGER entries_append_only_update BEFORE UPDATE ON entries
        BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
    CREATE TRIGGER entries_append_only_delete BEFORE DELETE ON entries
        BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
    """,
    2: """
    CREATE TABLE locks (
        environment TEXT PRIMARY KEY,
        lock_id     TEXT NOT NULL,
        holder      TEXT NOT NULL,
        purpose     TEXT NOT NULL,
        since       TEXT NOT NULL,
        pid         INTEGER NOT NULL,
        hostname    TEXT NOT NULL
    );
    """,
}

BUSY_WAIT_SECONDS = 30.0  # how long a command waits for another process's transaction on the ledger

_LOCK_COLUMNS = "environment, lock_id, holder, purpose, since, pid, hostname"
_COLUMNS = "seq, recorded_at, kind, actor, public_key, payload, prev_hash, hash, signature"


class SqliteLedger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.stamp: Callable[[], dict[str, Any]] | None = None
        self.authority: Callable[[dict[str, Any] | None], dict[str, Any] | None] | None = None
        try:
            self._db = sqlite3.connect(path, timeout=BUSY_WAIT_SECONDS, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                # Another process holds the database (a long transaction): waited 30 s; a busy ledger, not a broken one.
                raise Busy(f"{path}: the ledger stayed locked by another process for {BUSY_WAIT_SECONDS:.0f} s ({exc}); wait for it, then retry "
                           f"(`fuser {path}` names the holder)") from None
            raise BadInput(f"{path}: not a usable ledger database ({exc}); check ledger.url in the config") from None
        except sqlite3.DatabaseError as exc:
            raise BadInput(f"{path}: not a usable ledger database ({exc}); check ledger.url in the config") from None

    def _migrate(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._db.execute("SELECT version FROM schema_version").fetchone()
            current = row[0] if row else 0
            if current > SCHEMA_VERSION:
                raise BadInput(
                    f"{self.path}: ledger schema {current} is newer than this relpromote understands ({SCHEMA_VERSION}); upgrade relpromote"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _statements(MIGRATIONS[version]):
                    self._db.execute(statement)
            if current == 0:
                self._db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif current < SCHEMA_VERSION:
                self._db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def append(
        self, kind: str, actor: str, identity: Identity, payload: dict[str, Any], precondition: Precondition | None = None
    ) -> Entry:
        """Seal and insert the next entry. `precondition` re-checks the decision against every entry
        inside the same IMMEDIATE transaction, so a check and its record cannot be split by another
        writer (two builds of one version, two approvals racing a rejection)."""
        if self.stamp is not None:
            payload = {**payload, "config": self.stamp()}
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if precondition is not None:
                precondition(self.entries())
            row = self._db.execute(f"SELECT {_COLUMNS} FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
            last_name = self._db.execute(
                "SELECT actor FROM entries WHERE public_key = ? ORDER BY seq DESC LIMIT 1", (identity.public_key,)
            ).fetchone()
            # The rename and authority entries this decision needs, then the entry (relpromote.ledger.seal_append).
            sealed = seal_append(_entry(row) if row else None, kind, actor, identity, payload, utc_now(),
                                 last_name=last_name[0] if last_name else None, authority=self.authority,
                                 last_authority=lambda: self._last_payload(events.AUTHORITY_RECORDED))
            for entry in sealed:
                self._insert(entry)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return entry

    def _last_payload(self, kind: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT payload FROM entries WHERE kind = ? ORDER BY seq DESC LIMIT 1", (kind,)).fetchone()
        try:
            data = json.loads(row[0]) if row else None
        except (TypeError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _insert(self, entry: Entry) -> Entry:
        self._db.execute(
            f"INSERT INTO entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.seq,
                entry.recorded_at,
                entry.kind,
                entry.actor,
                entry.public_key,
                json.dumps(entry.payload, sort_keys=True),
                entry.prev_hash,
                entry.hash,
                entry.signature,
            ),
        )
        return entry

    def entries(self, kinds: Sequence[str] | None = None) -> list[Entry]:
        if kinds:
            marks = ",".join("?" for _ in kinds)
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM entries WHERE kind IN ({marks}) ORDER BY seq", tuple(kinds))
        else:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM entries ORDER BY seq")
        return [_entry(row) for row in rows]

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint of the folded state is keyed by (relpromote.adapters.state_checkpoint), read without reading
        the entries: the head as stored (rows, last sequence number, its hash) and the database file's and its
        write-ahead log's identity, size, modification and change times. Any write to the file (an append, a row
        edited in place behind the triggers) changes the change time, which no one but root can set back."""
        row = self._db.execute("SELECT (SELECT count(*) FROM entries), seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        count, seq, digest = row if row is not None else (0, 0, "")
        files = []
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                info = os.stat(path)
            except OSError:
                info = None
            # An empty log holds nothing (each connection makes one, the last to close removes it): as good as none.
            files.append([info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns] if info and info.st_size else None)
        return {"head": [int(count), seq if isinstance(seq, int) else -1, digest if isinstance(digest, str) else ""], "files": files}

    def entries_mentioning(self, texts: Sequence[str]) -> list[Entry]:
        """The entries whose stored payload may hold each of `texts` as a JSON string (see ledger.mention_needle): a
        superset of those whose payload has such a value, in order; the caller filters them exactly."""
        needles = [mention_needle(text) for text in texts]
        where = " AND ".join("(instr(payload, char(92)) > 0 OR instr(payload, ?) > 0)" for _ in needles) or "1"
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM entries WHERE {where} ORDER BY seq", tuple(needles))
        return [_entry(row) for row in rows]

    # ---- environment locks (not part of the chain: the ledger records their manual release) ----
    def acquire(self, lock: Lock) -> Lock:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute(f"SELECT {_LOCK_COLUMNS} FROM locks WHERE environment = ?", (lock.environment,)).fetchone()
            if row is not None:
                self._db.execute("ROLLBACK")
                return Lock(*row)
            self._db.execute(
                f"INSERT INTO locks ({_LOCK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (lock.environment, lock.lock_id, lock.holder, lock.purpose, lock.since, lock.pid, lock.hostname),
            )
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return lock

    def release(self, environment: str, lock_id: str) -> bool:
        cursor = self._db.execute("DELETE FROM locks WHERE environment = ? AND lock_id = ?", (environment, lock_id))
        return cursor.rowcount == 1

    def current(self, environment: str) -> Lock | None:
        row = self._db.execute(f"SELECT {_LOCK_COLUMNS} FROM locks WHERE environment = ?", (environment,)).fetchone()
        return Lock(*row) if row else None

    def close(self) -> None:
        self._db.close()


def _entry(row: tuple[Any, ...]) -> Entry:
    """A stored row as an entry; a row that is not one (bad JSON, wrong types) becomes a corrupt entry
    that `audit verify` names and no gate counts, instead of a traceback in every command."""
    seq, recorded_at, kind, actor, public_key, payload, prev_hash, digest, signature = row
    stored_hash = digest if isinstance(digest, str) else ""
    if not isinstance(seq, int):
        return corrupt_entry(-1, stored_hash, f"sequence number {seq!r} is not an integer")
    try:
        data = json.loads(payload)
    except (TypeError, ValueError) as exc:
        return corrupt_entry(seq, stored_hash, f"payload is not JSON ({exc})")
    if not isinstance(data, dict):
        return corrupt_entry(seq, stored_hash, f"payload is a JSON {type(data).__name__}, not an object")
    texts = {"recorded_at": recorded_at, "kind": kind, "actor": actor, "public_key": public_key,
             "prev_hash": prev_hash, "hash": digest, "signature": signature}
    wrong = [name for name, value in texts.items() if not isinstance(value, str)]
    if wrong:
        return corrupt_entry(seq, stored_hash, f"column {wrong[0]} is not text")
    return Entry(seq, recorded_at, kind, actor, public_key, data, prev_hash, digest, signature)


def _statements(script: str) -> list[str]:
    """Split a migration on statement ends, keeping trigger bodies whole."""
    statements, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        if text.endswith(";") and (not text.upper().startswith("CREATE TRIGGER") or text.upper().endswith("END;")):
            statements.append(text)
            current = []
    return statements
