"""Attacks on the record, as a hostile insider with file access would try them, on a real project
with real keys: each asserts the reason the gate refuses and the reason `audit verify` gives.

Entries a real run would record are appended through the library with the real keys of the people
(what `promote` records after its Ansible run); the hosts themselves are covered by
test_ledger_witness.py and test_change_management.py.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relpromote import events
from relpromote.adapters.sqlite_ledger import SqliteLedger
from relpromote.errors import Refused
from relpromote.identity import Identity, load_identity, public_key_line
from relpromote.ledger import Entry, entry_hash, format_time, seal, utc_now
from relpromote.project import Project
from relpromote.usecases import verdicts
from tests.helpers import BIN, PEOPLE, RELPROMOTE, Cli, git_run, make_app_source, make_project, one_line_error, write_manifest

PEOPLE_WITH_BOSS = {**PEOPLE, "boss": ["release_manager", "change_manager"]}


def commit(project: Cli, message: str) -> None:
    git_run(project.cwd, "add", "-A")
    git_run(project.cwd, "commit", "-q", "-m", message)


def key_of(project: Cli, name: str) -> Identity:
    return load_identity(project.cwd / ".keys" / f"{name}.key")


def record(project: Cli, kind: str, actor: str, payload: dict[str, Any]) -> Entry:
    """What relpromote itself appends (signed by the actor's real key, its config stamped)."""
    opened = Project.open(project.cwd / "relpromote.yml")
    try:
        return opened.ledger.append(kind, actor, key_of(project, actor), payload)
    finally:
        opened.close()


def db(project: Cli) -> sqlite3.Connection:
    return sqlite3.connect(project.cwd / ".relpromote" / "ledger.db")


def last_entry(project: Cli) -> Entry:
    ledger = SqliteLedger(project.cwd / ".relpromote" / "ledger.db")
    try:
        return ledger.entries()[-1]
    finally:
        ledger.close()


def insert(project: Cli, entry: Entry) -> None:
    """A row written straight into the ledger file, as anyone with file access can."""
    with db(project) as connection:
        connection.execute(
            "INSERT INTO entries (seq, recorded_at, kind, actor, public_key, payload, prev_hash, hash, signature) VALUES (?,?,?,?,?,?,?,?,?)",
            (entry.seq, entry.recorded_at, entry.kind, entry.actor, entry.public_key, json.dumps(entry.payload, sort_keys=True),
             entry.prev_hash, entry.hash, entry.signature),
        )


def forge(project: Cli, kind: str, actor: str, payload: dict[str, Any], signer: Identity, public_key: str | None = None) -> Entry:
    """A correctly chained and hashed entry, signed by `signer`, claiming `actor` (and `public_key`)."""
    previous = last_entry(project)
    entry = seal(previous, kind, actor, signer, payload, utc_now())
    if public_key is not None:
        body = {**entry.body(), "public_key": public_key}
        digest = entry_hash(body)  # recomputed correctly: only the signature can tell
        entry = Entry(**body, hash=digest, signature=signer.sign(digest.encode()))
    insert(project, entry)
    return entry


def mallory() -> Identity:
    key = Ed25519PrivateKey.generate()
    return Identity(key, public_key_line(key.public_key()))


@pytest.fixture
def project(tmp_path: Path) -> Cli:
    return new_project(tmp_path)


def new_project(tmp_path: Path) -> Cli:
    """A committed project with the usual people and boss (release and change manager), 1.0.0 built by alice."""
    cli = make_project(tmp_path / "proj", PEOPLE_WITH_BOSS)
    commit(cli, "people")
    source = make_app_source(tmp_path / "app")
    manifest = write_manifest(tmp_path / "m.yml", "1.0.0")
    cli.run("build", "1.0.0", "--source", str(source), "--manifest", str(manifest), identity="alice", check=True)
    return cli


def digest(project: Cli, version: str = "1.0.0") -> str:
    return str(project.json("show", version)["digest"])


def went_live(project: Cli, environment: str, version: str = "1.0.0") -> None:
    record(project, events.PROMOTION_FINISHED, "alice" if environment == "production" else "oscar",
           {"environment": environment, "version": version, "digest": digest(project, version), "result": "succeeded", "hosts": []})


def accepted(project: Cli, environment: str, version: str = "1.0.0") -> None:
    record(project, events.VERDICT_ACCEPTED, "quinn",
           {"environment": environment, "version": version, "digest": digest(project, version), "evidence": [], "note": ""})


def ready_for_production(project: Cli) -> None:
    for environment in ("qa", "deployment"):
        went_live(project, environment)
        accepted(project, environment)


def approval_payload(project: Cli) -> dict[str, Any]:
    now = utc_now()
    return {"version": "1.0.0", "digest": digest(project), "environment": "production", "ticket": "CHG-1",
            "approved_at": format_time(now), "expires_at": format_time(now.replace(year=now.year + 1))}


def refusal(project: Cli, *args: str, identity: str) -> str:
    result = project.run(*args, identity=identity)
    assert result.returncode == 3, result.stderr
    return one_line_error(result)


def audit_failure(project: Cli, *args: str) -> str:
    result = project.run("audit", "verify", *args)
    assert result.returncode == 1, result.stdout + result.stderr
    return one_line_error(result)


def test_a_genuine_ledger_verifies_and_records_the_config(project: Cli) -> None:
    ready_for_production(project)
    report = project.json("audit", "verify")
    assert report["ok"] and report["entry_count"] == 5 and report["problems"] == []
    stamp = last_entry(project).payload["config"]
    head = git_run(project.cwd, "rev-parse", "HEAD").strip()
    assert stamp["commit"] == head and stamp["committed"] is True and len(stamp["sha256"]) == 64


def test_forged_approval_with_an_unlisted_key_counts_nowhere(project: Cli) -> None:
    ready_for_production(project)
    forged = forge(project, events.APPROVAL_GRANTED, "carol", approval_payload(project), mallory())
    why = f"#{forged.seq}: signed with a key the config gives no one (recorded as carol)"
    assert why in refusal(project, "promote", "1.0.0", "--to", "production", "--check", identity="alice")
    assert "refused by rule 'ledger'" in refusal(project, "promote", "1.0.0", "--to", "production", "--check", identity="alice")
    assert audit_failure(project) == f"relpromote: ledger entry {why.replace(':', ' is bad:', 1)}"
    # The board and the history say so too: the forged row is shown as one that does not count.
    board = project.json("status")
    assert board["ledger_problems"] == [{"seq": forged.seq, "reason": "signed with a key the config gives no one (recorded as carol)"}]
    assert "LEDGER: 1 entry does not count" in " ".join(project.run("status").stdout.split())
    refused = {row["environment"]: row["attention"][0] for row in board["environments"]}
    assert "promotions and approvals are refused" in refused["production"] and "gates ignore them" in refused["qa"]
    rows = {row["seq"]: row for row in project.json("history")["entries"]}
    assert rows[forged.seq]["counts"] is False and "gives no one" in rows[forged.seq]["not_counted"]
    assert all(row["counts"] for seq, row in rows.items() if seq != forged.seq)
    assert "DOES NOT COUNT" in project.run("history", "--kind", "approval").stdout


def test_forged_acceptance_is_ignored_loudly_outside_production(project: Cli) -> None:
    went_live(project, "qa")
    forged = forge(project, events.VERDICT_ACCEPTED, "quinn",
                   {"environment": "qa", "version": "1.0.0", "digest": digest(project), "evidence": [], "note": ""}, mallory())
    result = project.run("--json", "promote", "1.0.0", "--to", "deployment", "--check", identity="oscar")
    assert result.returncode == 3
    gates = {g["rule"]: g for g in json.loads(result.stdout)["gates"]}
    assert not gates["order"]["passed"] and "was not accepted in qa" in gates["order"]["reason"]
    assert gates["ledger"]["passed"] and f"ignoring 1 ledger entries that do not verify (#{forged.seq}: signed with a key" in gates["ledger"]["reason"]


def test_forged_signature_under_a_real_key_is_caught_by_the_signature_check(project: Cli) -> None:
    went_live(project, "qa")
    quinn = key_of(project, "quinn")
    forged = forge(project, events.VERDICT_ACCEPTED, "quinn",
                   {"environment": "qa", "version": "1.0.0", "digest": digest(project), "evidence": [], "note": ""},
                   mallory(), public_key=quinn.public_key)
    assert audit_failure(project) == (
        f"relpromote: ledger entry #{forged.seq} is bad: signature does not verify with the key in the row "
        "(forged or re-signed; recorded as quinn)"
    )
    assert "was not accepted in qa" in refusal(project, "promote", "1.0.0", "--to", "deployment", "--check", identity="oscar")


def test_a_genuine_row_copied_from_another_project_fails_its_link(project: Cli, tmp_path: Path) -> None:
    ready_for_production(project)
    # Another project with the same people and keys, where carol genuinely approved.
    other = make_project(tmp_path / "other", PEOPLE_WITH_BOSS)
    shutil.rmtree(other.cwd / ".keys")
    shutil.copytree(project.cwd / ".keys", other.cwd / ".keys")
    shutil.copy(project.cwd / "relpromote.yml", other.cwd / "relpromote.yml")
    commit(other, "people")
    for _ in range(last_entry(project).seq):
        record(other, "note.padding", "alice", {})
    copied = record(other, events.APPROVAL_GRANTED, "carol", approval_payload(project))
    assert copied.seq == last_entry(project).seq + 1
    insert(project, copied)
    assert audit_failure(project) == (
        f"relpromote: ledger entry #{copied.seq} is bad: does not link to the entry before it "
        "(an entry was removed or replaced, or the row was copied from another ledger)"
    )
    assert "refused by rule 'ledger'" in refusal(project, "promote", "1.0.0", "--to", "production", "--check", identity="alice")


def test_a_removed_entry_is_named_by_the_sequence_check(project: Cli) -> None:
    ready_for_production(project)
    with db(project) as connection:
        connection.execute("DROP TRIGGER entries_append_only_delete")
        connection.execute("DELETE FROM entries WHERE seq = 3")
    assert audit_failure(project) == "relpromote: ledger entry #4 is bad: sequence jumps from 2 to 4 (an entry is missing)"


def test_a_listed_person_without_the_role_cannot_record_a_verdict(project: Cli) -> None:
    went_live(project, "qa")
    # oscar signs with his own real key, chained correctly: only the role check can tell.
    entry = record(project, events.VERDICT_ACCEPTED, "oscar",
                   {"environment": "qa", "version": "1.0.0", "digest": digest(project), "evidence": [], "note": ""})
    head = git_run(project.cwd, "rev-parse", "HEAD").strip()
    assert audit_failure(project) == (
        f"relpromote: ledger entry #{entry.seq} is bad: oscar (operator) could not accept in qa under the config of "
        f"commit {head[:12]}; allowed roles: qa"
    )
    assert "was not accepted in qa" in refusal(project, "promote", "1.0.0", "--to", "deployment", "--check", identity="oscar")


def test_an_entry_under_a_config_commit_not_in_history_fails(project: Cli) -> None:
    went_live(project, "qa")
    opened = Project.open(project.cwd / "relpromote.yml")
    opened.ledger.stamp = lambda: {"commit": "d" * 40, "sha256": "0" * 64, "committed": True}
    entry = opened.ledger.append(events.VERDICT_ACCEPTED, "quinn", key_of(project, "quinn"),
                                 {"environment": "qa", "version": "1.0.0", "digest": digest(project), "evidence": [], "note": ""})
    opened.close()
    assert audit_failure(project) == (
        f"relpromote: ledger entry #{entry.seq} is bad: recorded under config commit dddddddddddd, "
        "which is not in the project's git history"
    )


def test_corrupt_rows_are_named_in_one_line_and_never_crash_a_command(project: Cli) -> None:
    previous = last_entry(project)
    with db(project) as connection:
        connection.execute(
            "INSERT INTO entries (seq, recorded_at, kind, actor, public_key, payload, prev_hash, hash, signature) VALUES (?,?,?,?,?,?,?,?,?)",
            (previous.seq + 1, "x", events.APPROVAL_GRANTED, "carol", "k", "{not json", previous.hash, "h" * 64, "s"),
        )
    line = audit_failure(project)
    assert line.startswith(f"relpromote: ledger entry #{previous.seq + 1} is bad: corrupt row: payload is not JSON")
    for args in (("status",), ("releases",), ("history",), ("show", "1.0.0")):
        result = project.run(*args)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (args, result.stderr)
    # A well-signed entry of the wrong shape (a release without its digest) is named too.
    wrong = record(project, events.RELEASE_BUILT, "alice", {"version": "9.9.9"})
    result = project.json("audit", "verify", expect=1)
    assert {"seq": wrong.seq, "reason": "release.built entry has the wrong shape (KeyError: 'digest')"} in result["problems"]
    for args in (("status",), ("releases",), ("history",), ("show", "1.0.0"), ("notes", "1.0.0")):
        result = project.run(*args)
        assert result.returncode in (0, 2) and "Traceback" not in result.stderr, (args, result.stderr)


def test_checkpoint_detects_removing_1_5_or_all_entries(project: Cli, tmp_path: Path) -> None:
    ready_for_production(project)
    record(project, events.VERDICT_REJECTED, "quinn", {"environment": "deployment", "version": "1.0.0", "digest": digest(project),
                                                        "changes": [], "reason": "breaks invoices"})
    assert project.run("audit", "checkpoint", "--out", str(tmp_path / "cp.json"), identity="carol").returncode == 0
    checkpoint = json.loads((tmp_path / "cp.json").read_text())
    assert checkpoint["seq"] == 6 and project.json("audit", "verify", "--expect-head", checkpoint["head"])["ok"]
    assert project.json("audit", "verify", "--expect-head", str(tmp_path / "cp.json"))["ok"]
    pristine = sqlite3.connect(tmp_path / "pristine.db")
    db(project).backup(pristine)
    for removed in (1, 5, 6):
        restored = db(project)
        pristine.backup(restored)
        restored.close()
        with db(project) as connection:
            connection.execute("DROP TRIGGER entries_append_only_delete")
            connection.execute("DELETE FROM entries WHERE seq > ?", (6 - removed,))
        # Without an anchor a truncated ledger is a shorter, valid chain; with one it is caught.
        assert project.run("audit", "verify").returncode == 0
        line = audit_failure(project, "--expect-head", str(tmp_path / "cp.json"))
        assert f"witnessed entry #6, but the ledger ends at #{6 - removed}: entries were removed (truncated)" in line
        assert "checkpoint cp.json (signed by carol" in line
    # The removed rejection made the release look promotable; the anchor is what says otherwise.
    forged_checkpoint = {**checkpoint, "seq": 1}
    (tmp_path / "edited.json").write_text(json.dumps(forged_checkpoint))
    bad = project.run("audit", "verify", "--expect-head", str(tmp_path / "edited.json"))
    assert bad.returncode == 2 and "the checkpoint's signature does not verify" in one_line_error(bad)


def test_rename_keeps_the_ledger_verifying_and_separation_of_duties_holds_by_key(project: Cli, tmp_path: Path) -> None:
    ready_for_production(project)
    source = tmp_path / "app"
    manifest = write_manifest(tmp_path / "m2.yml", "2.0.0")
    project.run("build", "2.0.0", "--source", str(source), "--manifest", str(manifest), identity="boss", check=True)
    for environment in ("qa", "deployment"):
        went_live(project, environment, "2.0.0")
        accepted(project, environment, "2.0.0")
    config_path = project.cwd / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    for person in config["people"]:
        if person["name"] == "boss":
            person["name"] = "robert"  # same key, new name
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    commit(project, "boss is robert now")
    shutil.copy(project.cwd / ".keys" / "boss.key", project.cwd / ".keys" / "robert.key")
    # The builder, renamed, is still the builder: compared by key.
    line = refusal(project, "approve", "2.0.0", "--env", "production", "--ticket", "CHG-9", identity="robert")
    assert "refused by rule 'separation-of-duties'" in line and "(with the same key)" in line
    # Acting under the new name records the rename, signed by the key, so the old entries keep verifying.
    manifest = write_manifest(tmp_path / "m3.yml", "2.0.1")
    project.run("build", "2.0.1", "--source", str(source), "--manifest", str(manifest), identity="robert", check=True)
    report = project.json("audit", "verify")
    assert report["ok"], report
    assert any("boss is now robert (same key)" in note for note in report["notes"])
    kinds = [row[0] for row in db(project).execute("SELECT kind FROM entries ORDER BY seq DESC LIMIT 2")]
    assert kinds == [events.RELEASE_BUILT, events.PERSON_RENAMED]
    # Another change manager may approve it.
    assert project.run("approve", "2.0.0", "--env", "production", "--ticket", "CHG-9", identity="carol").returncode == 0


def test_uncommitted_config_cannot_make_a_change_manager(project: Cli, tmp_path: Path) -> None:
    ready_for_production(project)
    out = project.json("keygen", "mallory", "--out", str(project.cwd / ".keys" / "mallory.key"))
    config_path = project.cwd / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["people"].append({"name": "mallory", "key": out["key"], "roles": ["change_manager"]})
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))  # not committed
    line = refusal(project, "approve", "1.0.0", "--env", "production", "--ticket", "CHG-1", identity="mallory")
    assert "refused by rule 'committed'" in line and "relpromote.yml" in line
    line = refusal(project, "promote", "1.0.0", "--to", "production", "--check", identity="alice")
    assert "refused by rule 'committed'" in line and "relpromote.yml" in line


def test_an_approval_checked_before_a_rejection_is_not_recorded_after_it(project: Cli) -> None:
    """Check-and-append is atomic: a rejection recorded between approve's check and its append wins."""
    ready_for_production(project)
    opened = Project.open(project.cwd / "relpromote.yml")
    quinn, carol = key_of(project, "quinn"), key_of(project, "carol")
    real_append = opened.ledger.append
    rejection = {"environment": "deployment", "version": "1.0.0", "digest": digest(project), "changes": [], "reason": "late finding"}

    def racing_append(*args: Any, **kwargs: Any) -> Entry:
        # Another process records its rejection right after approve's first check.
        other = Project.open(project.cwd / "relpromote.yml")
        other.ledger.append(events.VERDICT_REJECTED, "quinn", quinn, rejection)
        other.close()
        return real_append(*args, **kwargs)

    opened.ledger.append = racing_append  # type: ignore[method-assign]
    with pytest.raises(Refused, match="refused by rule 'not-rejected'"):
        verdicts.approve(opened, carol, opened.actor(carol), "1.0.0", "production", "CHG-1", "1d")
    opened.close()
    kinds = [row[0] for row in db(project).execute("SELECT kind FROM entries ORDER BY seq")]
    assert kinds[-1] == events.VERDICT_REJECTED and events.APPROVAL_GRANTED not in kinds


def test_two_builds_of_one_version_with_different_bytes_at_once(project: Cli, tmp_path: Path) -> None:
    sources = []
    for name in ("a", "b"):
        source = make_app_source(tmp_path / f"src-{name}")
        (source / "variant.txt").write_text(name)
        git_run(source, "add", "-A")
        git_run(source, "commit", "-q", "-m", name)
        sources.append(source)
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "RELPROMOTE_IDENTITY": str(project.cwd / ".keys" / "alice.key"), "HOME": str(tmp_path)}
    for round_ in range(3):
        version = f"3.0.{round_}"
        manifest = write_manifest(tmp_path / f"m-{version}.yml", version)
        runs = [subprocess.Popen([RELPROMOTE, "build", version, "--source", str(s), "--manifest", str(manifest)], cwd=project.cwd,
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in sources]
        results = [(run.wait(timeout=120), run.stderr.read() if run.stderr else "") for run in runs]
        assert sorted(code for code, _ in results) == [0, 3], results
        assert "a version is immutable" in next(err for code, err in results if code == 3)
        built = [r for r in db(project).execute("SELECT payload FROM entries WHERE kind = 'release.built'") if version in r[0]]
        assert len(built) == 1
    assert project.json("audit", "verify")["ok"]


def test_two_lock_releases_of_one_lock_at_once(project: Cli, tmp_path: Path) -> None:
    with db(project) as connection:
        connection.execute("INSERT INTO locks VALUES ('qa', 'abc123', 'oscar', 'promotion of 1.0.0', '2026-11-30T00:00:00Z', 1, 'h')")
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "RELPROMOTE_IDENTITY": str(project.cwd / ".keys" / "oscar.key"), "HOME": str(tmp_path)}
    runs = [subprocess.Popen([RELPROMOTE, "lock", "release", "--env", "qa", "--lock-id", "abc123"], cwd=project.cwd, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = sorted(run.wait(timeout=60) for run in runs)
    assert codes == [0, 2]
    released = list(db(project).execute("SELECT seq FROM entries WHERE kind = 'lock.released'"))
    assert len(released) == 1


def test_an_approval_covers_the_exact_plan(project: Cli) -> None:
    ready_for_production(project)
    hosts_file = project.cwd / "inventories" / "production" / "hosts.yml"
    hosts_file.write_text(yaml.safe_dump({"all": {"children": {"app": {"hosts": {"production-app-1": {"ansible_host": "127.0.0.1"}}}}}}))
    commit(project, "production hosts")
    project.run("approve", "1.0.0", "--env", "production", "--ticket", "CHG-7", "--expires", "2h", identity="carol", check=True)
    approved = json.loads(next(iter(db(project).execute("SELECT payload FROM entries WHERE kind = 'approval.granted'")))[0])["plan"]
    assert approved["hosts"] == ["production-app-1"] and len(approved["roles"]) == 64
    # promote --check shows the plan the approval covers (the run itself then fails to reach the fake host).
    result = project.run("--json", "promote", "1.0.0", "--to", "production", "--check", identity="alice")
    gates = {g["rule"]: g for g in map(json.loads, result.stderr.splitlines()) if g.get("event") == "gate"}
    assert gates["approval"]["passed"] and "it covers 1 hosts (production-app-1), config " in gates["approval"]["reason"]
    # Another host in the inventory, committed: the approval no longer counts, and the refusal names what changed.
    hosts_file.write_text(yaml.safe_dump({"all": {"children": {"app": {"hosts": {
        "production-app-1": {"ansible_host": "127.0.0.1"}, "production-app-9": {"ansible_host": "127.0.0.9"}}}}}}))
    commit(project, "one more host")
    line = refusal(project, "promote", "1.0.0", "--to", "production", "--check", identity="alice")
    assert "refused by rule 'approval'" in line
    assert "approval CHG-7 covers another plan: since it, hosts (+production-app-9), inventory changed; approve again" in line
    # A new commit of a role does the same.
    hosts_file.write_text(yaml.safe_dump({"all": {"children": {"app": {"hosts": {"production-app-1": {"ansible_host": "127.0.0.1"}}}}}}))
    (project.cwd / "roles" / "release_deploy" / "tasks" / "extra.yml").write_text("---\n[]\n")
    commit(project, "a role changes")
    line = refusal(project, "promote", "1.0.0", "--to", "production", "--check", identity="alice")
    assert "covers another plan: since it, roles changed; approve again" in line
