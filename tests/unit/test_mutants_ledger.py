"""relpromote/ledger.py: the entry format, the chain report, renames, history's filters and times, exactly
(the survivors of `make mutate` on relpromote.ledger, tests/MUTANTS.md).

Real ed25519 keys sign every entry; nothing is built by hand except the rows an attacker would write.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from relpromote.errors import BadInput
from relpromote.identity import verify_signature
from relpromote.ledger import (
    CORRUPT_KIND,
    GENESIS_HASH,
    RENAMED_KIND,
    ChainReport,
    Entry,
    Problem,
    canonical_json,
    corrupt_entry,
    entries_about,
    entry_hash,
    entry_problem,
    format_time,
    parse_moment,
    parse_time,
    seal,
    seal_append,
    signer_names,
    verify_chain,
)
from tests.unit.real_ledger import new_identity

ALICE, BOB, MALLORY = new_identity(), new_identity(), new_identity()
NOW = datetime(2026, 11, 26, 12, 30, 15, 123456, tzinfo=UTC)


def append(entries: list[Entry], kind: str, actor: str, payload: dict[str, object], identity: object = ALICE, at: datetime = NOW) -> Entry:
    entry = seal(entries[-1] if entries else None, kind, actor, identity, payload, at)  # type: ignore[arg-type]
    entries.append(entry)
    return entry


def test_the_canonical_form_sorts_keys_packs_separators_and_keeps_unicode() -> None:
    assert canonical_json({"b": [1, 2], "a": "ü"}) == '{"a":"ü","b":[1,2]}'.encode()


def test_times_are_utc_with_microseconds_and_read_back_exactly() -> None:
    assert format_time(NOW) == "2026-11-26T12:30:15.123456Z"
    assert format_time(datetime(2026, 11, 26, 13, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))) == "2026-11-26T12:30:15.123456Z"
    assert parse_time("2026-11-26T12:30:15.123456Z") == NOW and parse_time(format_time(NOW)).tzinfo is UTC


def test_a_sealed_entry_is_hashed_over_its_body_and_signed_by_its_key() -> None:
    entries: list[Entry] = []
    first = append(entries, "release.built", "alice", {"tuple": (1, 2), "z": None})
    assert (first.seq, first.prev_hash, first.recorded_at) == (1, GENESIS_HASH, "2026-11-26T12:30:15.123456Z")
    assert (first.kind, first.actor) == ("release.built", "alice")
    assert first.public_key == ALICE.public_key
    assert first.payload == {"tuple": [1, 2], "z": None}, "the payload is stored as a reader loads it back"
    assert first.body() == {"seq": 1, "recorded_at": "2026-11-26T12:30:15.123456Z", "kind": "release.built", "actor": "alice",
                            "public_key": ALICE.public_key, "payload": {"tuple": [1, 2], "z": None}, "prev_hash": GENESIS_HASH}
    assert first.hash == entry_hash(first.body()) and len(first.hash) == 64
    assert verify_signature(ALICE.public_key, first.hash.encode(), first.signature)
    assert first.as_data() == {**first.body(), "hash": first.hash, "signature": first.signature}
    second = append(entries, "release.built", "alice", {})
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert verify_chain(entries, {ALICE.public_key: "alice"}) == ChainReport(2, (), 2, second.hash)


def test_a_report_of_a_good_a_bad_and_an_empty_ledger() -> None:
    empty = verify_chain([])
    assert (empty.entries, empty.ok, empty.first_bad_seq, empty.reason, empty.bad_seqs, empty.head) == (0, True, None, "", frozenset(), f"0:{GENESIS_HASH}")
    entries: list[Entry] = []
    for n in range(4):
        append(entries, "release.built", "alice", {"n": n})
    entries[1] = dataclasses.replace(entries[1], payload={"n": 99})
    entries[2] = dataclasses.replace(entries[2], signature=MALLORY.sign(entries[2].hash.encode()))
    report = verify_chain(entries)
    assert report.problems == (Problem(2, "content does not match its hash (the row was edited)"),
                               Problem(3, "signature does not verify with the key in the row (forged or re-signed; recorded as alice)"))
    assert (report.ok, report.first_bad_seq, report.bad_seqs, report.head) == (False, 2, frozenset({2, 3}), f"4:{entries[3].hash}")
    assert report.reason == "content does not match its hash (the row was edited)"
    assert report.problems[0].line() == "#2: content does not match its hash (the row was edited)"
    assert report.problems[1].as_data() == {"seq": 3, "reason": "signature does not verify with the key in the row (forged or re-signed; recorded as alice)"}


def test_a_corrupt_row_never_counts_but_the_next_row_may_still_link_to_it() -> None:
    entries: list[Entry] = []
    for n in range(3):
        append(entries, "release.built", "alice", {"n": n})
    broken = corrupt_entry(2, entries[1].hash, "not JSON")
    assert broken.as_data() == {"seq": 2, "recorded_at": "", "kind": CORRUPT_KIND, "actor": "", "public_key": "", "payload": {}, "prev_hash": "",
                                "hash": entries[1].hash, "signature": ""}
    assert broken.corrupt == "not JSON"
    report = verify_chain([entries[0], broken, entries[2]], {ALICE.public_key: "alice"})
    assert report.problems == (Problem(2, "corrupt row: not JSON"),)
    assert signer_names([broken], {"": "nobody"}) == {"": frozenset({"nobody"})}, "a corrupt row renames no one"


# Renames: a key may sign under a former name only when that same key recorded and signed the rename.


def rename(entries: list[Entry], old: str, new: str, identity: object = ALICE) -> Entry:
    return append(entries, RENAMED_KIND, new, {"from": old, "to": new}, identity)


def test_a_signed_rename_lets_the_key_keep_its_former_names() -> None:
    entries: list[Entry] = []
    append(entries, "release.built", "al", {})
    rename(entries, "al", "ally")
    append(entries, "release.built", "ally", {})
    rename(entries, "ally", "alice")
    people = {ALICE.public_key: "alice", BOB.public_key: "bob"}
    assert signer_names(entries, people) == {ALICE.public_key: frozenset({"al", "ally", "alice"}), BOB.public_key: frozenset({"bob"})}
    assert verify_chain(entries, people).ok


def test_a_chain_of_renames_recorded_newest_first_is_still_followed_back() -> None:
    entries: list[Entry] = []
    append(entries, "release.built", "a", {})
    append(entries, "release.built", "b", {})
    rename(entries, "b", "c")  # b -> c is recorded before a -> b
    rename(entries, "a", "b")
    assert signer_names(entries, {ALICE.public_key: "c"})[ALICE.public_key] == frozenset({"a", "b", "c"})


@pytest.mark.parametrize(
    "case",
    ["never-used", "other-key", "not-the-actor", "edited", "bad-signature", "unknown-key", "from-not-text"],
)
def test_a_rename_that_claims_a_name_it_never_had_gives_nothing(case: str) -> None:
    entries: list[Entry] = []
    append(entries, "release.built", "bob", {}, BOB)
    append(entries, "release.built", "al", {})
    if case == "never-used":
        rename(entries, "bob", "alice")  # alice's key never signed as bob
    elif case == "other-key":
        rename(entries, "al", "alice", BOB)  # bob's key cannot rename alice's former name
    elif case == "not-the-actor":
        append(entries, RENAMED_KIND, "alice", {"from": "al", "to": "someone"})
    elif case == "edited":
        rename(entries, "bob", "alice")
        entries[-1] = dataclasses.replace(entries[-1], payload={"from": "al", "to": "alice"})
    elif case == "bad-signature":
        forged = seal(entries[-1], RENAMED_KIND, "alice", MALLORY, {"from": "al", "to": "alice"}, NOW)
        entries.append(dataclasses.replace(forged, public_key=ALICE.public_key, hash=entry_hash({**forged.body(), "public_key": ALICE.public_key})))
    elif case == "unknown-key":
        append(entries, "release.built", "x", {}, MALLORY)
        rename(entries, "x", "y", MALLORY)
    elif case == "from-not-text":
        append(entries, RENAMED_KIND, "alice", {"from": ["al"], "to": "alice"})
    people = {ALICE.public_key: "alice", BOB.public_key: "bob"}
    names = signer_names(entries, people)
    assert names == {ALICE.public_key: frozenset({"alice"}), BOB.public_key: frozenset({"bob"})}
    assert verify_chain(entries[:2], people).problems[-1] == Problem(2, "signed with alice's key but recorded as al")


def test_a_foreign_row_or_a_rename_that_does_not_verify_never_stops_the_renames_after_it() -> None:
    entries: list[Entry] = []
    append(entries, "release.built", "x", {}, MALLORY)  # a key the config gives no one
    append(entries, "release.built", "al", {})
    append(entries, "release.built", "ally", {})
    bad = rename(entries, "al", "alice")
    entries[-1] = dataclasses.replace(bad, signature=MALLORY.sign(bad.hash.encode()))
    rename(entries, "ally", "alice")
    assert signer_names(entries, {ALICE.public_key: "alice"}) == {ALICE.public_key: frozenset({"ally", "alice"})}


def test_a_rename_as_the_keys_first_entry_claims_nothing() -> None:
    entries: list[Entry] = []
    rename(entries, "al", "alice")
    append(entries, "release.built", "al", {})
    assert signer_names(entries, {ALICE.public_key: "alice"}) == {ALICE.public_key: frozenset({"alice"})}
    assert verify_chain(entries, {ALICE.public_key: "alice"}).problems == (Problem(2, "signed with alice's key but recorded as al"),)


def test_times_are_written_in_utc_whatever_the_machines_timezone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert format_time(datetime(2026, 11, 26, 21, 30, 15, 123456, tzinfo=timezone(timedelta(hours=9)))) == "2026-11-26T12:30:15.123456Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_each_signer_problem_is_named_and_the_committed_name_counts() -> None:
    entries: list[Entry] = []
    first = append(entries, "release.built", "robert", {}, BOB)
    signers = {BOB.public_key: frozenset({"bob", "rob"})}
    assert entry_problem(first, 1, GENESIS_HASH, signers) == "signed with bob/rob's key but recorded as robert"
    assert entry_problem(first, 1, GENESIS_HASH, {}) == "signed with a key the config gives no one (recorded as robert)"
    assert entry_problem(first, 1, GENESIS_HASH, signers, lambda e: "robert") is None
    assert entry_problem(first, 1, GENESIS_HASH, {}, lambda e: "robert") is None
    assert entry_problem(first, 1, GENESIS_HASH, signers, lambda e: None) == "signed with bob/rob's key but recorded as robert"
    assert entry_problem(first, 1, GENESIS_HASH, None) is None, "without the config only the chain is checked"
    assert entry_problem(first, 2, GENESIS_HASH, None) == "sequence jumps from 1 to 1 (entries are out of order)"
    assert entry_problem(first, 1, "f" * 64, None).startswith("does not link")  # type: ignore[union-attr]
    report = verify_chain(entries, {BOB.public_key: "bob"}, lambda e: "robert" if e.public_key == BOB.public_key else None)
    assert report.ok


# What `history` shows


def history_ledger() -> list[Entry]:
    entries: list[Entry] = []
    append(entries, "release.built", "alice", {"version": "1.0.0"}, at=datetime(2026, 11, 1, tzinfo=UTC))
    append(entries, "promotion.started", "alice", {"version": "1.0.0", "environment": "qa"}, at=datetime(2026, 11, 2, tzinfo=UTC))
    append(entries, "promotion.finished", "bob", {"version": "1.0.0", "environment": "qa"}, BOB, at=datetime(2026, 11, 3, tzinfo=UTC))
    append(entries, "promotions.pruned", "bob", {"version": "1.1.0", "environment": "production"}, BOB, at=datetime(2026, 11, 4, tzinfo=UTC))
    return entries


def seqs(entries: list[Entry]) -> list[int]:
    return [e.seq for e in entries]


def test_history_filters_each_field_and_combines_them() -> None:
    entries = history_ledger()
    assert seqs(entries_about(entries)) == [1, 2, 3, 4]
    assert seqs(entries_about(entries, "qa")) == [2, 3]
    assert seqs(entries_about(entries, version="1.0.0")) == [1, 2, 3]
    assert seqs(entries_about(entries, "qa", "1.1.0")) == []
    assert seqs(entries_about(entries, person="bob")) == [3, 4]
    assert seqs(entries_about(entries, kinds=["promotion"])) == [2, 3], "a family is a whole word: promotions.* is another"
    assert seqs(entries_about(entries, kinds=["promotion."])) == [2, 3]
    assert seqs(entries_about(entries, kinds=["release.built", "promotions.pruned"])) == [1, 4]
    assert seqs(entries_about(entries, kinds=["promotion.finished"])) == [3]
    assert seqs(entries_about(entries, since=datetime(2026, 11, 2, tzinfo=UTC))) == [2, 3, 4], "since includes its instant"
    assert seqs(entries_about(entries, until=datetime(2026, 11, 3, tzinfo=UTC))) == [1, 2], "until excludes its instant"
    assert seqs(entries_about(entries, "qa", person="alice", kinds=["promotion"], since=datetime(2026, 11, 1, tzinfo=UTC))) == [2]


def test_a_row_with_a_malformed_time_sorts_before_every_time() -> None:
    entries = history_ledger()
    broken = [*entries, corrupt_entry(5, "f" * 64, "not JSON"), dataclasses.replace(entries[0], seq=6, recorded_at="yesterday")]
    assert seqs(entries_about(broken, until=datetime(2026, 11, 2, tzinfo=UTC))) == [1, 5, 6]
    assert seqs(entries_about(broken, since=datetime(1970, 1, 1, tzinfo=UTC))) == [1, 2, 3, 4]


def test_moments_as_people_type_them() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert parse_moment(" 30m ", "--since", now=now) == now - timedelta(minutes=30)
    assert parse_moment("12h", "--since", now=now) == now - timedelta(hours=12)
    assert parse_moment("7d", "--since", now=now) == now - timedelta(days=7)
    assert parse_moment("2w", "--since", now=now) == now - timedelta(weeks=2)
    assert abs(parse_moment("1h", "--since") - (datetime.now(UTC) - timedelta(hours=1))) < timedelta(minutes=1)
    assert parse_moment("2026-11-30", "--until") == datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_moment("2026-11-30", "--until", end_of_day=True) == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_moment("2026-11-30T14:00", "--until", end_of_day=True) == datetime(2026, 11, 30, 14, 0, tzinfo=UTC), "a time is not a day"
    assert parse_moment("2026-11-30T14:00Z", "--since") == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    assert parse_moment("2026-11-30T14:00+02:00", "--since") == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "7x", "d", "-7d", "1yh"])
def test_what_is_not_a_moment_is_refused_naming_the_option_and_the_forms(text: str) -> None:
    with pytest.raises(BadInput) as refused:
        parse_moment(text, "--until")
    assert str(refused.value) == f"--until {text!r}: not a time; use a date (2026-11-30), a time (2026-11-30T14:00) or an age (7d, 12h)"


# What one append records: the rename and the authority it needs, then the entry, each linked to the one before.


def test_an_append_under_the_keys_former_name_records_the_rename_first() -> None:
    entries: list[Entry] = []
    append(entries, "release.built", "al", {})
    stamp = {"commit": "c" * 40, "committed": True}
    sealed = seal_append(entries[-1], "release.built", "alice", ALICE, {"n": 1, "config": stamp}, NOW,
                         last_name="al", authority=None, last_authority=lambda: None)
    assert [(e.seq, e.kind, e.actor) for e in sealed] == [(2, RENAMED_KIND, "alice"), (3, "release.built", "alice")]
    assert sealed[0].payload == {"from": "al", "to": "alice", "config": stamp} and sealed[0].recorded_at == format_time(NOW)
    assert (sealed[0].prev_hash, sealed[1].prev_hash) == (entries[-1].hash, sealed[0].hash)
    assert sealed[1].payload == {"n": 1, "config": stamp}
    assert verify_chain([*entries, *sealed], {ALICE.public_key: "alice"}).ok, "the entry made as al still verifies"
    unstamped = seal_append(None, "release.built", "alice", ALICE, {}, NOW, last_name="al", authority=None, last_authority=lambda: None)
    assert unstamped[0].payload == {"from": "al", "to": "alice"} and unstamped[0].seq == 1


@pytest.mark.parametrize("last_name", [None, "alice"])
def test_an_append_under_the_same_name_records_only_the_entry(last_name: str | None) -> None:
    sealed = seal_append(None, "release.built", "alice", ALICE, {}, NOW, last_name=last_name, authority=lambda last: None, last_authority=lambda: None)
    assert [(e.seq, e.kind) for e in sealed] == [(1, "release.built")]


def test_an_append_that_changes_who_may_do_what_records_the_authority_first() -> None:
    seen: list[object] = []

    def authority(last: dict[str, object] | None) -> dict[str, object] | None:
        seen.append(last)
        return {"digest": "new"}

    stamp = {"commit": "c" * 40, "committed": True}
    sealed = seal_append(None, "approval.granted", "alice", ALICE, {"config": stamp}, NOW, last_name="al", authority=authority,
                         last_authority=lambda: {"digest": "old"})
    assert [(e.seq, e.kind) for e in sealed] == [(1, RENAMED_KIND), (2, "authority.recorded"), (3, "approval.granted")]
    assert sealed[1].payload == {"digest": "new", "config": stamp} and sealed[1].actor == "alice" and sealed[1].prev_hash == sealed[0].hash
    assert seen == [{"digest": "old"}]
    assert verify_chain(sealed, {ALICE.public_key: "alice"}).ok


def test_the_signature_check_given_decides_for_entries_and_renames_alike() -> None:
    entries: list[Entry] = []
    append(entries, "release.built", "al", {})
    forged = rename(entries, "al", "alice")
    entries[-1] = dataclasses.replace(forged, signature=MALLORY.sign(forged.hash.encode()))
    people = {ALICE.public_key: "alice"}
    assert [p.seq for p in verify_chain(entries, people).problems] == [1, 2]
    asked: list[str] = []

    def remembered(key: str, message: bytes, signature: str) -> bool:  # a memo that (wrongly) vouches for every row
        asked.append(signature)
        return True

    assert verify_chain(entries, people, signature_ok=remembered).ok
    assert entries[1].signature in asked


def test_moments_beyond_the_calendar_or_with_digits_of_other_scripts_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for text, end_of_day in (("9999-12-31", True), ("99999999999d", False), ("0001-01-01T00:00+01:00", False)):
        with pytest.raises(BadInput) as beyond:
            parse_moment(text, "--until", end_of_day=end_of_day)
        assert str(beyond.value) == f"--until {text!r}: beyond the calendar; give a date from year 1 to 9998 or a shorter age"
    with pytest.raises(BadInput, match="not a time"):
        parse_moment("1\u0663h", "--since")  # an Arabic-Indic three: a digit to Python, not an age people type
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert parse_moment("9999-12-31T23:00Z", "--until") == datetime(9999, 12, 31, 23, 0, tzinfo=UTC), "whatever the machine's timezone"
    finally:
        monkeypatch.undo()
        time.tzset()
