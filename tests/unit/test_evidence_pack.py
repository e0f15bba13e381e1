"""The evidence pack, built from a real signed ledger and checked from its bytes alone."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from relpromote import events
from relpromote.evidence import junit_report
from relpromote.evidence_pack import archive_bytes, build_pack, read_members, verify_pack
from tests.unit.real_ledger import Ledger

REPORT = junit_report("regression", [("checkout", None), ("invoices", None)])
SHA = hashlib.sha256(REPORT).hexdigest()


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.db")
    ledger.build("1.4.0")
    ledger.promote("1.4.0", "qa", actor="oscar")
    ledger.append(events.VERDICT_ACCEPTED, "quinn", {"version": "1.4.0", "environment": "qa", "note": "", "evidence": [
        {"kind": "regression", "file": "reg.xml", "sha256": SHA, "tests": 2, "passed": 2, "failed": 0, "errors": 0, "skipped": 0}]})
    ledger.promote("1.4.0", "deployment", actor="oscar")
    ledger.accept("1.4.0", "deployment")
    ledger.approve("1.4.0", "production", "carol", "2099-01-01T00:00:00.000000Z", ticket="CHG-7")
    ledger.promote("1.4.0", "production", actor="alice", approval={"ticket": "CHG-7", "approver": "carol"},
                   gates=[{"rule": "approval", "passed": True, "reason": "approved by carol"}], project_commit="c" * 40,
                   hosts=[{"host": "prod-1", "previous": None, "current": "1.4.0", "switched": True}])
    return ledger


def pack_of(ledger: Ledger, evidence: dict[str, bytes] | None = None) -> bytes:
    people = [{"name": p.name, "key": p.key, "roles": list(p.roles)} for p in ledger.config.people]
    return build_pack("shop", "1.4.0", "production", ledger.store.entries(), people, {"commit": "c" * 40},
                      {SHA: REPORT} if evidence is None else evidence, "2026-11-30T00:00:00.000000Z")


def test_a_pack_verifies_from_its_bytes_and_says_who_did_what(ledger: Ledger) -> None:
    data = pack_of(ledger)
    assert data == pack_of(ledger)  # deterministic
    report = verify_pack(data)
    assert report.ok, report.problems
    facts = "\n".join(report.facts)
    assert "built by alice" in facts and "accepted in qa by quinn" in facts and "regression 2/2 passed" in facts
    assert "approved for production by carol" in facts and "ticket CHG-7" in facts and "prod-1 -→1.4.0" in facts
    head = ledger.store.entries()[-1]
    assert verify_pack(data, (head.seq, head.hash)).ok
    assert not verify_pack(data, (head.seq + 3, head.hash)).ok  # a later checkpoint: the pack was cut short


def test_one_changed_byte_anywhere_is_refused(ledger: Ledger) -> None:
    data = pack_of(ledger)
    # Every member's header, data and padding, and the end blocks: a byte every 37 bytes, plus each header's first bytes.
    offsets = set(range(0, len(data), 37))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for info in tar:
            offsets.update({info.offset, info.offset + 100, info.offset_data, info.offset_data + info.size - 1, info.offset_data + info.size})
    for offset in sorted(o for o in offsets if o < len(data)):
        changed = bytearray(data)
        changed[offset] ^= 0x01
        assert not verify_pack(bytes(changed)).ok, offset
    assert not verify_pack(data[:-512]).ok and not verify_pack(data + b"\0" * 512).ok


def rebuilt(data: bytes, name: str, edit: bytes) -> bytes:
    """The pack with one member replaced and pack.json's hash of it updated: a careful forger's pack."""
    members = dict(read_members(data))
    members[name] = edit
    index = json.loads(members["pack.json"])
    index["files"][name] = hashlib.sha256(edit).hexdigest()
    members["pack.json"] = (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()
    return archive_bytes(list(members.items()))


def test_a_forger_who_updates_the_index_is_still_caught(ledger: Ledger) -> None:
    data = pack_of(ledger)
    lines = read_members(data)
    ledger_text = dict(lines)["ledger.jsonl"].decode()
    edited = ledger_text.replace('"ticket":"CHG-7"', '"ticket":"CHG-8"').replace('"ticket": "CHG-7"', '"ticket": "CHG-8"')
    assert edited != ledger_text
    report = verify_pack(rebuilt(data, "ledger.jsonl", edited.encode()))
    assert not report.ok and "content does not match its hash" in " ".join(report.problems)
    swapped = verify_pack(rebuilt(data, f"evidence/{SHA}.xml", REPORT.replace(b"invoices", b"invoicez")))
    assert not swapped.ok and "not the cited report" in " ".join(swapped.problems)
    people = json.loads(dict(lines)["people.json"])
    for person in people["people"]:
        person["roles"] = ["qa"] if person["name"] == "carol" else person["roles"]
    demoted = verify_pack(rebuilt(data, "people.json", (json.dumps(people, indent=2, sort_keys=True) + "\n").encode()))
    assert not demoted.ok and "not a change manager" in " ".join(demoted.problems)
    missing = verify_pack(pack_of(ledger, evidence={}))
    assert not missing.ok and "cited by the ledger but not in the pack" in " ".join(missing.problems)


def test_an_approval_by_the_promoter_is_refused(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    ledger.build("1.4.0")
    ledger.approve("1.4.0", "production", "bob", "2099-01-01T00:00:00.000000Z", ticket="CHG-9")
    ledger.promote("1.4.0", "production", actor="bob", approval={"ticket": "CHG-9", "approver": "bob"})
    people = [{"name": p.name, "key": p.key, "roles": list(p.roles)} for p in ledger.config.people]
    data = build_pack("shop", "1.4.0", "production", ledger.store.entries(), people, {}, {}, "2026-11-30T00:00:00.000000Z")
    report = verify_pack(data)
    assert not report.ok and "builder or its promoter" in " ".join(report.problems)


def test_an_approver_who_has_since_moved_on_still_approved_as_a_change_manager(ledger: Ledger) -> None:
    """carol approved as change manager; today's config lists her retired (no roles). The pack carries the roles she held
    under the committed config of her approval (what the gate judged), so the release's pack can still be made and verified."""
    people: list[dict[str, Any]] = [{"name": p.name, "key": p.key, "roles": [] if p.name == "carol" else list(p.roles)}
                                    for p in ledger.config.people]
    approval = next(e for e in ledger.store.entries() if e.kind == events.APPROVAL_GRANTED)

    def pack(roles_when_signed: dict[str, list[str]] | None) -> bytes:
        return build_pack("shop", "1.4.0", "production", ledger.store.entries(), people, {"commit": "c" * 40}, {SHA: REPORT},
                          "2026-11-30T00:00:00.000000Z", None, roles_when_signed)

    assert "not a change manager" in " ".join(verify_pack(pack(None)).problems)  # what make_pack refused before
    report = verify_pack(pack({str(approval.seq): ["change_manager"]}))
    assert report.ok, report.problems
    assert any("carol approved" in fact and "config of that time" in fact for fact in report.facts), report.facts
    assert not verify_pack(pack({str(approval.seq): ["qa"]})).ok  # roles she did not hold then do not count
    assert pack(None) == pack_of_people(ledger, people)  # without the field the pack is as before (old packs still verify)


def pack_of_people(ledger: Ledger, people: list[dict[str, Any]]) -> bytes:
    return build_pack("shop", "1.4.0", "production", ledger.store.entries(), people, {"commit": "c" * 40}, {SHA: REPORT},
                      "2026-11-30T00:00:00.000000Z")
