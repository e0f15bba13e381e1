"""relpromote/authority.py: which authority is in force over a ledger, and which decisions count where one is required.

Entries are sealed and signed with real keys; `authority_status` is the pure judgement every gate folds.
"""

from __future__ import annotations

import json
from typing import Any

from relpromote import events
from relpromote.authority import authority_digest, authority_document, authority_record, authority_status, beneficiaries, changes
from relpromote.config import Config, Person, parse_config
from relpromote.identity import Identity
from relpromote.ledger import Entry, seal
from tests.unit.real_ledger import NOW, new_identity

ADA, BOB, MAL = new_identity(), new_identity(), new_identity()
BASE = {"project": "shop", "promotion_path": ["qa", "production"],
        "environments": {"qa": {"inventory": "i/qa"}, "production": {"inventory": "i/p", "protected": True}},
        "authority": {"require_approval": ["production"]}}


def config(mal_roles: list[str], **extra: Any) -> Config:
    people = [Person(name="ada", key=ADA.public_key, roles=["admin"]), Person(name="bob", key=BOB.public_key, roles=["qa"]),
              Person(name="mal", key=MAL.public_key, roles=mal_roles)]
    return parse_config(json.dumps({**BASE, **extra}), "relpromote.yml").model_copy(update={"people": people})


class Chain:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.last_record: dict[str, Any] | None = None

    def act(self, kind: str, who: str, identity: Identity, under: Config, payload: dict[str, Any] | None = None) -> Entry:
        """As the ledger appends: the authority recorded first when it changed, the entry stamped with its digest."""
        record = authority_record(under, self.last_record)
        stamp = {"config": {"authority": authority_digest(authority_document(under)), "committed": False}}
        if record is not None:
            self.last_record = record
            self._seal(events.AUTHORITY_RECORDED, who, identity, {**record, **stamp})
        return self._seal(kind, who, identity, {**(payload or {"environment": "production"}), **stamp})

    def approve(self, who: str, identity: Identity, document_of: Config) -> Entry:
        document = authority_document(document_of)
        return self._seal(events.AUTHORITY_APPROVED, who, identity, {"digest": authority_digest(document), "document": document})

    def _seal(self, kind: str, who: str, identity: Identity, payload: dict[str, Any]) -> Entry:
        entry = seal(self.entries[-1] if self.entries else None, kind, who, identity, payload, NOW)
        self.entries.append(entry)
        return entry

    def status(self, current: Config) -> Any:
        def digest_of(entry: Entry) -> str | None:
            return str(entry.payload["config"]["authority"])
        return authority_status(self.entries, current, frozenset(), digest_of)


def test_no_setting_records_nothing_and_the_first_record_is_the_root() -> None:
    plain = config(["operator"]).model_copy(update={"authority": config([]).authority.model_copy(update={"require_approval": []})})
    assert authority_record(plain, None) is None
    chain = Chain()
    chain.act(events.VERDICT_ACCEPTED, "bob", BOB, config(["operator"]))
    status = chain.status(config(["operator"]))
    assert [e.kind for e in chain.entries] == [events.AUTHORITY_RECORDED, events.VERDICT_ACCEPTED]
    assert status.in_force is not None and status.in_force.root and status.in_force.seq == 1 and status.approved
    assert status.required == ("production",) and status.unapproved == []


def test_a_decision_counts_under_the_authority_in_force_then_or_the_one_approved_next() -> None:
    root, raised, reverted = config(["operator"]), config(["change_manager"]), config(["operator"])
    chain = Chain()
    chain.act(events.VERDICT_ACCEPTED, "bob", BOB, root)
    early = chain.act(events.APPROVAL_GRANTED, "mal", MAL, raised)  # before anyone approved `raised`
    status = chain.status(raised)
    assert not status.approved and [p.seq for p in status.unapproved] == [early.seq]
    assert "mal +change_manager" in status.unapproved_reason() and "an approver (ada)" in status.unapproved_reason()
    chain.approve("ada", ADA, raised)
    status = chain.status(raised)
    assert status.approved and status.unapproved == [] and status.in_force is not None and status.in_force.by == "ada"
    # The root, no longer in force: a decision made under it now counts nowhere that requires an approved authority.
    late = chain.act(events.VERDICT_ACCEPTED, "bob", BOB, reverted)
    status = chain.status(reverted)
    assert not status.approved and [p.seq for p in status.unapproved] == [late.seq]
    assert status.pending_changes() == ["mal +operator -change_manager"]


def test_only_an_approver_of_the_authority_in_force_who_gains_nothing_brings_a_change_into_force() -> None:
    root = config(["operator"])
    chain = Chain()
    chain.act(events.VERDICT_ACCEPTED, "bob", BOB, root)
    made_admin = config(["admin"])
    by_mal = chain.approve("mal", MAL, made_admin)  # not an admin of the root
    ada_gains = config(["operator"]).model_copy(update={"people": [
        Person(name="ada", key=ADA.public_key, roles=["admin", "change_manager"]), *config(["operator"]).people[1:]]})
    by_ada = chain.approve("ada", ADA, ada_gains)  # an admin, but she gains a role
    status = chain.status(made_admin)
    assert [(p.seq, p.reason.split(": ", 1)[1]) for p in status.problems] == [
        (by_mal.seq, "mal does not hold an approver role (admin) in the authority in force (approvers there: ada)"),
        (by_ada.seq, "ada gains a role (or is added) in this change and may not approve it; another approver must"),
    ]
    assert status.in_force is not None and status.in_force.root and not status.approved


def test_dropping_the_setting_is_still_judged_by_the_authority_in_force() -> None:
    root = config(["operator"])
    chain = Chain()
    chain.act(events.VERDICT_ACCEPTED, "bob", BOB, root)
    dropped = config(["change_manager"], authority={"require_approval": []})
    status = chain.status(dropped)
    assert status.required == ("production",) and not status.approved
    assert "the authority setting changed" in status.pending_changes()


def test_changes_in_words_and_who_gains_by_them() -> None:
    def document(people: list[tuple[str, str, list[str]]], **policy: Any) -> dict[str, Any]:
        text = {**BASE, "environments": {"qa": {"inventory": "i/qa"}, "production": {"inventory": "i/p", "protected": True, **policy}},
                "people": [{"name": n, "key": "ed25519:" + k * 43 + "=", "roles": r} for n, k, r in people]}
        return authority_document(parse_config(json.dumps(text), "x"))

    before = document([("ann", "A", ["admin"]), ("bob", "B", ["qa"]), ("cy", "C", ["operator"])])
    after = document([("ann", "A", ["admin"]), ("robert", "B", ["qa", "change_manager"]), ("dee", "D", ["admin"])],
                     freeze=[{"reason": "x", "start": "2026-12-20", "end": "2027-01-02"}])
    assert changes(before, after) == ["dee added (admin)", "bob renamed robert", "robert +change_manager", "cy removed",
                                      "production's freezes changed"]
    assert beneficiaries(before, after) == {"ed25519:" + "B" * 43 + "=", "ed25519:" + "D" * 43 + "="}
    assert changes(before, before) == [] and beneficiaries(before, before) == set()
    # The order people or roles are listed in is not a change.
    assert authority_digest(document([("bob", "B", ["qa", "admin"]), ("ann", "A", ["admin"])])) == authority_digest(
        document([("ann", "A", ["admin"]), ("bob", "B", ["admin", "qa"])]))
