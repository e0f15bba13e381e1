"""The evidence pack, built from a real signed ledger (real ed25519 keys, each entry stamped with its config's commit
and sha256 as the project stamps it) and checked from its bytes alone: people, keys, roles and approval policy come
from the committed config files the signed entries cite, never from an index a forger could rebuild."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from relpromote import events
from relpromote.evidence import junit_report
from relpromote.evidence_pack import archive_bytes, build_pack, read_members, verify_pack
from tests.unit.real_ledger import CONFIG_TEXT, ROLES, Ledger, new_identity

REPORT = junit_report("regression", [("checkout", None), ("invoices", None)])
SHA = hashlib.sha256(REPORT).hexdigest()
CREATED = "2026-11-30T00:00:00.000000Z"


class Project:
    """A real ledger whose entries are stamped with the config file in force, as `Project.ledger` stamps them."""

    def __init__(self, path: Path) -> None:
        self.ledger = Ledger(path)
        self.configs: dict[str, bytes] = {}
        self.commit(ROLES)

    def config(self, roles: dict[str, list[str]], project: str = "shop", **environments: Any) -> bytes:
        data = yaml.safe_load(CONFIG_TEXT)
        data["project"] = project
        data["environments"].update(environments)
        data["people"] = [{"name": name, "key": self.ledger.identities[name].public_key, "roles": r} for name, r in roles.items()]
        return yaml.safe_dump(data, sort_keys=False).encode()

    def commit(self, roles: dict[str, list[str]], committed: bool = True, **environments: Any) -> str:
        """From now on entries are made under this config (committed at a new commit, or a working copy that is not)."""
        body = self.config(roles, **environments)
        sha = hashlib.sha256(body).hexdigest()
        commit = hashlib.sha1(body + str(len(self.configs)).encode()).hexdigest()
        if committed:
            self.configs[sha] = body
        self.ledger.store.stamp = lambda: {"sha256": sha, "commit": commit, "committed": committed}
        return commit

    def pack(self, environment: str = "production", evidence: dict[str, bytes] | None = None, project: str = "shop",
             configs: dict[str, bytes] | None = None) -> bytes:
        return build_pack(project, "1.4.0", environment, self.ledger.store.entries(), self.configs if configs is None else configs,
                          {SHA: REPORT} if evidence is None else evidence, CREATED)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path / "ledger.db")
    ledger = project.ledger
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
    return project


def problems(data: bytes) -> str:
    report = verify_pack(data)
    assert not report.ok
    return " | ".join(report.problems)


def test_a_pack_verifies_from_its_bytes_and_says_who_did_what(project: Project) -> None:
    data = project.pack()
    assert data == project.pack()  # deterministic
    report = verify_pack(data)
    assert report.ok, report.problems
    facts = "\n".join(report.facts)
    assert "built by alice" in facts and "accepted in qa by quinn" in facts and "regression 2/2 passed" in facts
    assert "approved for production by carol" in facts and "ticket CHG-7" in facts and "prod-1 -→1.4.0" in facts
    assert "approval: required in production by its config at" in facts and "neither built nor promoted it" in facts
    assert "not vouched for" not in facts
    members = dict(read_members(data))
    config_file = next(name for name in members if name.startswith("config/"))
    assert yaml.safe_load(members[config_file])["project"] == "shop"
    head = project.ledger.store.entries()[-1]
    assert verify_pack(data, (head.seq, head.hash)).ok
    assert not verify_pack(data, (head.seq + 3, head.hash)).ok  # a later checkpoint: the pack was cut short


def test_one_changed_byte_anywhere_is_refused(project: Project) -> None:
    data = project.pack()
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


def rebuilt(data: bytes, name: str, edit: bytes, **index_edits: Any) -> bytes:
    """The pack with one member replaced and pack.json's hash of it updated: a careful forger's pack."""
    members = dict(read_members(data))
    members[name] = edit
    index = json.loads(members["pack.json"])
    index["files"][name] = hashlib.sha256(edit).hexdigest()
    index.update(index_edits)
    members["pack.json"] = (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()
    return archive_bytes(list(members.items()))


def test_a_forger_who_updates_the_index_is_still_caught(project: Project) -> None:
    data = project.pack()
    lines = read_members(data)
    ledger_text = dict(lines)["ledger.jsonl"].decode()
    edited = ledger_text.replace('"ticket":"CHG-7"', '"ticket":"CHG-8"').replace('"ticket": "CHG-7"', '"ticket": "CHG-8"')
    assert edited != ledger_text
    assert "content does not match its hash" in problems(rebuilt(data, "ledger.jsonl", edited.encode()))
    assert "not the cited report" in problems(rebuilt(data, f"evidence/{SHA}.xml", REPORT.replace(b"invoices", b"invoicez")))
    assert "cited by the ledger but not in the pack" in problems(project.pack(evidence={}))


def people_edited(data: bytes, edit: Any) -> bytes:
    people = json.loads(dict(read_members(data))["people.json"])
    for described in people["configs"].values():
        edit(described["people"])
    return rebuilt(data, "people.json", (json.dumps(people, indent=2, sort_keys=True) + "\n").encode())


def test_people_json_is_checked_against_the_config_files(project: Project) -> None:
    """The index of people is for reading: a role given, a key added or a key swapped there is refused by name."""
    data = project.pack()
    mallory = new_identity().public_key

    def give_quinn_change_manager(people: list[dict[str, Any]]) -> None:
        next(p for p in people if p["name"] == "quinn")["roles"].append("change_manager")

    def add_mallory(people: list[dict[str, Any]]) -> None:
        people.append({"name": "mallory", "key": mallory, "roles": ["change_manager"]})

    def swap_carols_key(people: list[dict[str, Any]]) -> None:
        next(p for p in people if p["name"] == "carol")["key"] = mallory

    assert "people.json does not match the config files: it gives quinn the roles" in problems(people_edited(data, give_quinn_change_manager))
    assert "people.json does not match the config files: it lists mallory, whom the config at" in problems(people_edited(data, add_mallory))
    assert "people.json does not match the config files: it gives carol another key" in problems(people_edited(data, swap_carols_key))


def test_a_config_file_edited_inside_the_pack_is_refused(project: Project) -> None:
    data = project.pack()
    (name, body), = [(n, b) for n, b in read_members(data) if n.startswith("config/")]
    promoted = body.replace(b"qa\n", b"qa\n  - change_manager\n", 1)  # quinn: qa -> qa and change_manager
    assert promoted != body
    assert f"{name} is not the config file the signed entries stamp (its sha256 differs)" in problems(rebuilt(data, name, promoted))
    # The forger uses relpromote's own builder with the edited file under its old name: people.json then agrees with it.
    sha = name.removeprefix("config/").removesuffix(".yml")
    assert "its sha256 differs" in problems(project.pack(configs={sha: promoted}))
    # Or adds the file under the name of its new bytes: no signed entry cites that config.
    renamed = f"config/{hashlib.sha256(promoted).hexdigest()}.yml"
    assert f"{renamed} is a config file no entry of the pack was made under" in problems(rebuilt(data, renamed, promoted))
    # Or leaves the config out: nothing committed then says who signed, and the promotion's policy is unknown.
    assert "which is not in the pack: nothing committed says what approval it needed" in problems(project.pack(configs={}))


def test_the_project_name_comes_from_the_config_files(project: Project) -> None:
    forged = project.pack(project="bank")  # README.txt, pack.json and all rebuilt by relpromote's own builder
    assert "pack.json names the project bank, but the config at" in problems(forged)
    assert "names shop" in problems(forged)
    members = dict(read_members(project.pack()))
    assert "pack.json names the project bank" in problems(rebuilt(project.pack(), "README.txt",
                                                                  members["README.txt"].replace(b"project shop", b"project bank"),
                                                                  project="bank"))


def test_a_qa_pack_says_no_approval_was_required(project: Project) -> None:
    report = verify_pack(project.pack("qa"))
    assert report.ok, report.problems
    said = [f for f in report.facts if f.startswith("approval:")]
    assert len(said) == 1 and said[0].startswith("approval: not required in qa by its config at ") and "none was checked" in said[0]


def test_a_production_promotion_without_an_approval_is_refused(tmp_path: Path) -> None:
    project = Project(tmp_path / "ledger.db")
    project.ledger.build("1.4.0")
    project.ledger.promote("1.4.0", "production", actor="alice")
    assert "the promotion #2 cites no approval, but its config at" in problems(project.pack(evidence={}))
    assert "requires one for production" in problems(project.pack(evidence={}))


def test_an_environment_whose_config_turns_approval_off_verifies_and_says_so(tmp_path: Path) -> None:
    project = Project(tmp_path / "ledger.db")
    commit = project.commit(ROLES, production={"inventory": "i/production", "protected": True, "approval": {"required": False}})
    project.ledger.build("1.4.0")
    project.ledger.promote("1.4.0", "production", actor="alice")
    report = verify_pack(project.pack(evidence={}))
    assert report.ok, report.problems
    assert f"approval: not required in production by its config at {commit[:12]} (promotion #2)" in "\n".join(report.facts)


def test_an_approval_by_the_promoter_is_refused(tmp_path: Path) -> None:
    project = Project(tmp_path / "ledger.db")
    project.ledger.build("1.4.0")
    project.ledger.approve("1.4.0", "production", "bob", "2099-01-01T00:00:00.000000Z", ticket="CHG-9")
    project.ledger.promote("1.4.0", "production", actor="bob", approval={"ticket": "CHG-9", "approver": "bob"})
    assert "builder or its promoter (same key)" in problems(project.pack(evidence={}))


def test_the_approvers_roles_are_those_of_the_config_the_approval_was_made_under(tmp_path: Path) -> None:
    """carol approved as change manager, then moved on (no roles) before the promotion: she still approved as one. Had she
    held no such role under the approval's config, a later config making her one does not help."""
    project = Project(tmp_path / "ledger.db")
    project.ledger.build("1.4.0")
    project.ledger.approve("1.4.0", "production", "carol", "2099-01-01T00:00:00.000000Z", ticket="CHG-7")
    project.commit({**ROLES, "carol": []})
    project.ledger.promote("1.4.0", "production", actor="alice", approval={"ticket": "CHG-7", "approver": "carol"})
    report = verify_pack(project.pack(evidence={}))
    assert report.ok, report.problems
    assert len(project.configs) == 2 and len([n for n, _ in read_members(project.pack(evidence={})) if n.startswith("config/")]) == 2

    other = Project(tmp_path / "other.db")
    other.commit({**ROLES, "carol": ["qa"]})
    other.ledger.build("1.4.0")
    other.ledger.approve("1.4.0", "production", "carol", "2099-01-01T00:00:00.000000Z", ticket="CHG-7")
    other.commit(ROLES)
    other.ledger.promote("1.4.0", "production", actor="alice", approval={"ticket": "CHG-7", "approver": "carol"})
    assert "the approval #2 is signed by carol, who is not a change manager in the config at" in problems(other.pack(evidence={}))


def test_an_entry_signed_with_a_key_its_config_gives_no_one_is_refused(project: Project) -> None:
    project.ledger.identities["mallory"] = new_identity()
    project.ledger.append(events.VERDICT_ACCEPTED, "mallory", {"version": "1.4.0", "environment": "qa", "note": "", "evidence": []})
    seq = project.ledger.store.entries()[-1].seq
    assert f"ledger entry #{seq}: signed with a key the config at" in problems(project.pack())
    assert "gives no one, but recorded as mallory" in problems(project.pack())


def test_entries_made_under_an_uncommitted_config_are_not_vouched_for(project: Project, tmp_path: Path) -> None:
    project.commit(ROLES, committed=False)
    project.ledger.accept("1.4.0", "production")  # after the promotion, under a working copy nobody committed
    seq = project.ledger.store.entries()[-1].seq
    report = verify_pack(project.pack())
    assert report.ok, report.problems
    said = next(f for f in report.facts if f.startswith("not vouched for:"))
    assert f"#{seq} {events.VERDICT_ACCEPTED} by quinn" in said
    assert any(f.startswith("accepted in production by quinn") and "not vouched for" in f for f in report.facts)

    dirty = Project(tmp_path / "dirty.db")
    dirty.ledger.build("1.4.0")
    dirty.commit(ROLES, committed=False)
    dirty.ledger.promote("1.4.0", "qa", actor="oscar")
    assert "the promotion #2 to qa was made under a config that was not committed" in problems(dirty.pack("qa", evidence={}))


def test_a_pack_of_the_first_format_is_refused_with_what_to_do(project: Project) -> None:
    data = project.pack()
    members = dict(read_members(data))
    index = json.loads(members["pack.json"])
    index["format"] = "relpromote-evidence/1"
    members["pack.json"] = (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()
    said = problems(archive_bytes(list(members.items())))
    assert "relpromote-evidence/1" in said and "make the pack again with `relpromote evidence VERSION --env ENV --out FILE`" in said
