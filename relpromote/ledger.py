"""The ledger: an append-only, hash-chained, signed log of every decision.

This module owns the entry format and the chain rules, with no I/O. Storage adapters
(`relpromote.adapters.sqlite_ledger`, `relpromote.adapters.pg_ledger`) implement `LedgerStore`.

An entry's hash covers its sequence number, time, kind, actor, actor's public key, payload and
the previous entry's hash; the actor's ed25519 key signs that hash. So `verify_chain` proves
offline who recorded what, in which order, and that no row was edited, dropped or reordered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from relpromote.errors import BadInput
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
    # Why a stored row could not be read as an entry (not JSON, wrong shape); such a row never counts.
    corrupt: str = field(default="", compare=False)

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


CORRUPT_KIND = "(corrupt)"
RENAMED_KIND = "person.renamed"  # mirrors relpromote.events.PERSON_RENAMED (events imports nothing)
AUTHORITY_KIND = "authority.recorded"  # mirrors relpromote.events.AUTHORITY_RECORDED


def seal_append(
    previous: Entry | None,
    kind: str,
    actor: str,
    identity: Identity,
    payload: dict[str, Any],
    now: datetime,
    *,
    last_name: str | None,
    authority: Callable[[dict[str, Any] | None], dict[str, Any] | None] | None,
    last_authority: Callable[[], dict[str, Any] | None],
) -> list[Entry]:
    """What one append records, in order, each sealed after the one before (every store calls this inside
    the transaction that serializes its appends, after re-checking the decision):

    - `person.renamed` when this key last signed under another name (`last_name`): the config now gives it
      another name, and the rename, signed by the key itself, keeps the entries made under the old name verifying;
    - `authority.recorded` when `authority` (given the last recorded authority, read by `last_authority`) says who
      may do what changed: recorded, signed by its first user;
    - the entry itself.
    """
    config = {"config": payload["config"]} if "config" in payload else {}
    sealed: list[Entry] = []
    if last_name is not None and last_name != actor:
        previous = seal(previous, RENAMED_KIND, actor, identity, {"from": last_name, "to": actor, **config}, now)
        sealed.append(previous)
    if authority is not None:
        changed = authority(last_authority())
        if changed is not None:
            previous = seal(previous, AUTHORITY_KIND, actor, identity, {**changed, **config}, now)
            sealed.append(previous)
    sealed.append(seal(previous, kind, actor, identity, payload, now))
    return sealed


def corrupt_entry(seq: int, stored_hash: str, why: str) -> Entry:
    """A stored row that is not an entry: kept in place (its hash may still be what the next row links to)."""
    return Entry(seq, "", CORRUPT_KIND, "", "", {}, "", stored_hash, "", corrupt=why)


@dataclass(frozen=True)
class Problem:
    """One entry that does not count, and why."""

    seq: int
    reason: str

    def line(self) -> str:
        return f"#{self.seq}: {self.reason}"

    def as_data(self) -> dict[str, Any]:
        return {"seq": self.seq, "reason": self.reason}


@dataclass(frozen=True)
class ChainReport:
    """The verdict on a whole ledger: every entry that does not count, and the head."""

    entries: int
    problems: tuple[Problem, ...] = ()
    head_seq: int = 0
    head_hash: str = GENESIS_HASH

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        return self.problems[0].seq if self.problems else None

    @property
    def reason(self) -> str:
        return self.problems[0].reason if self.problems else ""

    @property
    def bad_seqs(self) -> frozenset[int]:
        return frozenset(p.seq for p in self.problems)

    @property
    def head(self) -> str:
        return f"{self.head_seq}:{self.head_hash}"


SignatureCheck = Callable[[str, bytes, str], bool]
"""Whether a signature by a key over a message verifies: relpromote.identity.verify_signature, or a memo of it
(relpromote.adapters.verified_cache) that answers the same."""


def signer_names(
    entries: Iterable[Entry], people: dict[str, str], signature_ok: SignatureCheck = verify_signature
) -> dict[str, frozenset[str]]:
    """Which names each key may sign as: the name the config gives it (`people`: key -> name, retired
    people included), plus former names whose rename that same key recorded and signed in the ledger.

    A rename counts only for a name the key had already used: nobody can claim another's history.
    """
    names: dict[str, set[str]] = {key: {name} for key, name in people.items()}
    used: dict[str, set[str]] = {}
    renames: list[tuple[str, str, str]] = []
    for entry in entries:
        if entry.corrupt or entry.public_key not in people:
            continue
        if entry.kind == RENAMED_KIND:
            if entry_hash(entry.body()) != entry.hash or not signature_ok(entry.public_key, entry.hash.encode(), entry.signature):
                continue
            old, new = entry.payload.get("from"), entry.payload.get("to")
            if isinstance(old, str) and new == entry.actor and old in used.get(entry.public_key, set()):
                renames.append((entry.public_key, old, new))
        # Names a key was used under (an entry that does not verify gains nothing from this: a rename
        # must itself be signed by the key, and the entry is judged on its own).
        used.setdefault(entry.public_key, set()).add(entry.actor)
    # A chain of renames (a -> b -> c) is followed back from the name in the config.
    for _ in renames:
        for key, old, new in renames:
            if new in names.get(key, set()):
                names[key].add(old)
    return {key: frozenset(value) for key, value in names.items()}


def entry_problem(
    entry: Entry,
    expected_seq: int,
    previous_hash: str,
    signers: dict[str, frozenset[str]] | None,
    name_then: Callable[[Entry], str | None] | None = None,
    signature_ok: SignatureCheck = verify_signature,
) -> str | None:
    """Why this entry does not count at this place in the chain, or None when it does.

    The checks run in a fixed order and the first failing one is the reason, so each attack is
    named by the check that catches it: sequence, link, hash, signature, then the signer's key.
    """
    if entry.corrupt:
        return f"corrupt row: {entry.corrupt}"
    if entry.seq != expected_seq:
        missing = "an entry is missing" if entry.seq > expected_seq else "entries are out of order"
        return f"sequence jumps from {expected_seq - 1} to {entry.seq} ({missing})"
    if entry.prev_hash != previous_hash:
        return "does not link to the entry before it (an entry was removed or replaced, or the row was copied from another ledger)"
    if entry_hash(entry.body()) != entry.hash:
        return "content does not match its hash (the row was edited)"
    if not signature_ok(entry.public_key, entry.hash.encode(), entry.signature):
        return f"signature does not verify with the key in the row (forged or re-signed; recorded as {entry.actor})"
    if signers is not None:
        names = signers.get(entry.public_key)
        if names is not None and entry.actor in names:
            return None
        if name_then is not None and name_then(entry) == entry.actor:
            return None  # the committed config the entry was made under gave this key that name
        if names is None:
            return f"signed with a key the config gives no one (recorded as {entry.actor})"
        return f"signed with {'/'.join(sorted(names))}'s key but recorded as {entry.actor}"
    return None


def verify_chain(
    entries: Iterable[Entry], known_keys: dict[str, str] | None = None, name_then: Callable[[Entry], str | None] | None = None,
    signature_ok: SignatureCheck = verify_signature,
) -> ChainReport:
    """Check every entry's sequence, link, hash and signature, and (given `known_keys`: public key ->
    person, from the config, retired people included) that its key is the key of the person it names,
    now or (`name_then`) in the committed config the entry was made under.

    Every failing entry is reported, not only the first: each one does not count, and the rest of
    the chain is checked against the stored rows as they are.
    """
    rows = list(entries)
    signers = signer_names(rows, known_keys, signature_ok) if known_keys is not None else None
    previous_hash = GENESIS_HASH
    expected_seq = 1
    problems: list[Problem] = []
    for entry in rows:
        why = entry_problem(entry, expected_seq, previous_hash, signers, name_then, signature_ok)
        if why is not None:
            problems.append(Problem(entry.seq, why))
        previous_hash = entry.hash
        expected_seq = entry.seq + 1
    head = rows[-1] if rows else None
    return ChainReport(len(rows), tuple(problems), head.seq if head else 0, head.hash if head else GENESIS_HASH)


def entries_about(
    entries: Iterable[Entry],
    environment: str | None = None,
    version: str | None = None,
    *,
    person: str | None = None,
    kinds: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Entry]:
    """The entries `history` shows: about an environment and/or a release, by a person, of some kinds
    (`promotion` matches every `promotion.*`), recorded in [since, until)."""

    def kind_matches(kind: str) -> bool:
        return not kinds or any(kind == k or kind.startswith(k.rstrip(".") + ".") for k in kinds)

    return [
        e for e in entries
        if (environment is None or e.payload.get("environment") == environment)
        and (version is None or e.payload.get("version") == version)
        and (person is None or e.actor == person)
        and kind_matches(e.kind)
        and (since is None or _recorded(e) >= since)
        and (until is None or _recorded(e) < until)
    ]


def mention_needle(text: str) -> str:
    """What a stored payload (JSON text) must contain to hold the string `text` as a value, unless it contains a
    backslash: without any escape in the text, a JSON string equal to `text` is written `"text"` literally (a `text`
    that needs escaping forces a backslash). Stores filter on (backslash or needle), a superset of the entries whose
    payload holds `text`, so `entries_about` stays the judge of which entries are about it."""
    return f'"{text}"'


def _recorded(entry: Entry) -> datetime:
    """When the entry was recorded; a malformed time (a corrupt row, named by `audit verify`) sorts first."""
    try:
        return parse_time(entry.recorded_at)
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=UTC)


Precondition = Callable[[list[Entry]], None]
"""Re-checks a decision against every entry, inside the append's transaction; raises to refuse."""


class LedgerStore(Protocol):
    """Storage of the ledger. Appends are atomic: an entry is wholly written or not at all."""

    # Added to every payload under "config" when set: the config's commit and digest at the decision.
    stamp: Callable[[], dict[str, Any]] | None
    # Given the last authority.recorded payload, what to record before this entry (the config's authority changed), or None.
    authority: Callable[[dict[str, Any] | None], dict[str, Any] | None] | None

    def append(
        self, kind: str, actor: str, identity: Identity, payload: dict[str, Any], precondition: Precondition | None = None
    ) -> Entry: ...

    def entries(self, kinds: Sequence[str] | None = None) -> list[Entry]: ...

    def close(self) -> None: ...

    # Environment locks live beside the ledger so every process sharing the ledger sees them.
    def acquire(self, lock: Lock) -> Lock: ...

    def release(self, environment: str, lock_id: str) -> bool: ...

    def current(self, environment: str) -> Lock | None: ...


_AGO = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_moment(text: str, option: str, *, end_of_day: bool = False, now: datetime | None = None) -> datetime:
    """A point in time as people type it: a date (UTC), an ISO 8601 time (UTC unless it says otherwise), or
    `7d` / `12h` / `30m` / `2w` ago. With `end_of_day`, a bare date means the end of that day."""
    text = text.strip()
    beyond = BadInput(f"{option} {text!r}: beyond the calendar; give a date from year 1 to 9998 or a shorter age")
    if text[:-1].isascii() and text[:-1].isdigit() and text[-1:] in _AGO:
        try:
            return (now or datetime.now(UTC)) - timedelta(seconds=int(text[:-1]) * _AGO[text[-1]])
        except OverflowError:
            raise beyond from None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"{option} {text!r}: not a time; use a date (2026-11-30), a time (2026-11-30T14:00) or an age (7d, 12h)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        if end_of_day and len(text) == 10:
            moment += timedelta(days=1)
        moment.astimezone(UTC)  # an offset that leaves the calendar (0001-01-01T00:00+01:00) fails here, not later
    except OverflowError:
        raise beyond from None
    return moment
