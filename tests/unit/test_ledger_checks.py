"""relpromote/ledger.py's chain checks, each on an attack only that check catches.

verify_chain runs its checks in order (sequence, link, hash, signature, signer) and names the first
that fails; each test below builds a row that passes every check but one, and asserts that check's
reason, so a chain with that one check removed would let the row count. (The hash check and the
signer checks have their own tests in test_ledger.py.)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from relpromote import events
from relpromote.ledger import GENESIS_HASH, Entry, entry_hash, seal, verify_chain
from relpromote.policy import ledger_gate, trusted_state
from tests.unit.real_ledger import NOW, Ledger, new_identity

ALICE, MALLORY = new_identity(), new_identity()
KEYS = {ALICE.public_key: "alice"}


def chain(count: int, start: Entry | None = None, tag: str = "a") -> list[Entry]:
    entries: list[Entry] = []
    previous = start
    for index in range(count):
        previous = seal(previous, "release.built", "alice", ALICE, {"n": index, "tag": tag}, NOW)
        entries.append(previous)
    return entries


def forged(previous: Entry | None, claimed: str, payload: dict[str, object], kind: str = "release.built", actor: str = "alice") -> Entry:
    """A row that names `claimed`'s key, with a hash recomputed over what it says, signed by Mallory."""
    body = {
        "seq": previous.seq + 1 if previous else 1, "recorded_at": "2026-11-26T12:00:00.000000Z", "kind": kind, "actor": actor,
        "public_key": claimed, "payload": payload, "prev_hash": previous.hash if previous else GENESIS_HASH,
    }
    digest = entry_hash(body)
    return Entry(**body, hash=digest, signature=MALLORY.sign(digest.encode()))  # type: ignore[arg-type]


def test_a_forged_row_with_a_recomputed_hash_is_caught_by_the_signature_alone() -> None:
    entries = chain(2)
    fake = forged(entries[-1], ALICE.public_key, {"n": 2, "tag": "evil"})
    assert entry_hash(fake.body()) == fake.hash, "the hash check passes: only the signature can tell"
    report = verify_chain([*entries, fake], KEYS)
    assert [p.seq for p in report.problems] == [3]
    assert report.reason == "signature does not verify with the key in the row (forged or re-signed; recorded as alice)"


def test_a_signature_that_is_not_base64_or_empty_does_not_verify() -> None:
    entries = chain(1)
    for signature in ("", "not base64!", entries[0].signature[:-8]):
        report = verify_chain([dataclasses.replace(entries[0], signature=signature)], KEYS)
        assert report.reason.startswith("signature does not verify"), signature


def test_a_row_from_another_ledger_is_caught_by_the_link_alone() -> None:
    ours, theirs = chain(3), chain(3, tag="b")
    # theirs[1] is a genuine, signed entry #2, but it follows another #1.
    report = verify_chain([ours[0], theirs[1]], KEYS)
    assert [p.seq for p in report.problems] == [2]
    assert report.reason.startswith("does not link to the entry before it (an entry was removed or replaced")


def test_an_entry_replaced_by_a_resealed_one_is_caught_by_the_link_of_the_next() -> None:
    entries = chain(3)
    replaced = seal(entries[0], "release.built", "alice", ALICE, {"n": 1, "tag": "rewritten"}, NOW)
    report = verify_chain([entries[0], replaced, entries[2]], KEYS)
    assert [(p.seq, p.reason.split(" (")[0]) for p in report.problems] == [(3, "does not link to the entry before it")]


def test_a_removed_entry_is_caught_by_the_sequence_first() -> None:
    entries = chain(4)
    report = verify_chain([entries[0], entries[2], entries[3]], KEYS)
    assert report.first_bad_seq == 3 and report.reason == "sequence jumps from 1 to 3 (an entry is missing)"


def test_swapped_entries_are_out_of_order() -> None:
    entries = chain(3)
    report = verify_chain([entries[0], entries[2], entries[1]], KEYS)
    assert report.problems[0].reason == "sequence jumps from 1 to 3 (an entry is missing)"
    assert report.problems[1].reason == "sequence jumps from 3 to 2 (entries are out of order)"


def test_a_truncated_tail_still_verifies_so_the_head_must_be_anchored() -> None:
    entries = chain(3)
    report = verify_chain(entries[:2], KEYS)
    assert report.ok and report.head == f"2:{entries[1].hash}" and report.head != f"3:{entries[2].hash}"


def test_a_forged_approval_never_lets_a_release_reach_production(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    digest = ledger.build("1.0.0")
    entries = ledger.store.entries()
    carol = ledger.identities["carol"].public_key
    # Mallory writes carol's approval with carol's key in the row and a correct hash, but cannot sign as carol.
    payload = {"version": "1.0.0", "digest": digest, "environment": "production", "ticket": "CHG-9", "expires_at": "2099-01-01T00:00:00.000000Z"}
    fake = forged(entries[-1], carol, payload, kind=events.APPROVAL_GRANTED, actor="carol")
    state = trusted_state([*entries, fake], ledger.config)
    assert state.approvals == [], "a forged approval never counts"
    assert [p.line() for p in state.ignored] == ["#2: signature does not verify with the key in the row (forged or re-signed; recorded as carol)"]
    refused = ledger_gate(state, "production", protected=True)
    assert not refused.passed and "production is protected and 1 ledger entries do not verify (#2: signature does not verify" in refused.reason
    elsewhere = ledger_gate(state, "qa", protected=False)
    assert elsewhere.passed and elsewhere.reason.startswith("ignoring 1 ledger entries that do not verify (#2: signature")
