"""The ledger: an append-only, hash-chained, signed log of every decision.

This module owns the entry format and the chain rules, with no I/O. Storage adapters
(`relpromote.adapters.sqlite_ledger`, PostgreSQL later) implement `LedgerStore`.

An entry's hash covers its sequence number, time, kind, actor, actor's public key, payload and
the previous entry's hash; the actor's ed25519 key signs that hash. So `verify_chain` proves
offline who recorded what, in which order, and that no row was edited, dropped or reordered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from relpromote.identity import Identity, verify_signature
from relpromote.lock import Lock

GENESIS_HASH = "0" * 64
SCHEMA_VERSION = 2


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    seq: int
    recorded_at: str
    kind: str
    actor: str
    public_key: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str
    signature: str

    def body(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "recorded_at": self.recorded_at,
            "kind": self.kind,
            "actor": self.actor,
            "public_key": self.public_key,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
        }

    def as_data(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash, "signature": self.signature}


def entry_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(body)).hexdigest()


def seal(
    previous: Entry | None, kind: str, actor: str, identity: Identity, payload: dict[str, Any], now: datetime
) -> Entry:
    """The next entry after `previous`, hashed and signed by `identity`."""
    body = {
        "seq": previous.seq + 1 if previous else 1,
        "recorded_at": format_time(now),
        "kind": kind,
        "actor": actor,
        "public_key": identity.public_key,
        # Round-trip so what we hash is exactly what a reader will load back.
        "payload": json.loads(canonical_json(payload)),
        "prev_hash": previous.hash if previous else GENESIS_HASH,
    }
    digest = entry_hash(body)
    return Entry(**body, hash=digest, signature=identity.sign(digest.encode()))


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str = ""
    unknown_signers: tuple[str, ...] = field(default=())


def verify_chain(entries: Iterable[Entry], known_keys: dict[str, str] | None = None) -> ChainReport:
    """Check order, hashes, links and signatures; name the first bad entry.

    `known_keys` maps public key -> person from the config; keys not in it are reported (a person
    may have left, so that alone does not break the chain).
    """
    previous_hash = GENESIS_HASH
    expected_seq = 1
    count = 0
    unknown: list[str] = []
    for entry in entries:
        count += 1
        if entry.seq != expected_seq:
            return ChainReport(False, count, entry.seq, f"sequence jumps from {expected_seq - 1} to {entry.seq} (an entry is missing)")
        if entry.prev_hash != previous_hash:
            return ChainReport(False, count, entry.seq, "does not link to the entry before it (an entry was removed or reordered)")
        if entry_hash(entry.body()) != entry.hash:
            return ChainReport(False, count, entry.seq, "content does not match its hash (the row was edited)")
        if not verify_signature(entry.public_key, entry.hash.encode(), entry.signature):
            return ChainReport(False, count, entry.seq, f"signature is not {entry.actor}'s (forged or re-signed)")
        if known_keys is not None:
            person = known_keys.get(entry.public_key)
            if person is None and entry.actor not in unknown:
                unknown.append(entry.actor)
            elif person is not None and person != entry.actor:
                return ChainReport(False, count, entry.seq, f"signed with {person}'s key but recorded as {entry.actor}")
        previous_hash = entry.hash
        expected_seq += 1
    return ChainReport(True, count, unknown_signers=tuple(unknown))


def entries_about(entries: Iterable[Entry], environment: str | None = None, version: str | None = None) -> list[Entry]:
    """The entries that concern an environment and/or a release (what `history` shows)."""
    return [
        e for e in entries
        if (environment is None or e.payload.get("environment") == environment)
        and (version is None or e.payload.get("version") == version)
    ]


class LedgerStore(Protocol):
    """Storage of the ledger. Appends are atomic: an entry is wholly written or not at all."""

    def append(self, kind: str, actor: str, identity: Identity, payload: dict[str, Any]) -> Entry: ...

    def entries(self, kinds: Sequence[str] | None = None) -> list[Entry]: ...

    def close(self) -> None: ...

    # Environment locks live beside the ledger so every process sharing the ledger sees them.
    def acquire(self, lock: Lock) -> Lock: ...

    def release(self, environment: str, lock_id: str) -> bool: ...

    def current(self, environment: str) -> Lock | None: ...
