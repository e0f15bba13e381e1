"""Who may do what changes only through an approved authority (authority.require_approval), as TUF rotates roots.

On a real project with real keys, committed in git: the first authority is the root, trusted on first use; an insider
who commits a config making themselves change manager gets their approval recorded, but production does not count it
(and says why) until an admin of the authority in force approves the change; an admin added by the same change, or one
who gains a role by it, cannot approve it. Entries a real run would record are appended through the library with the
people's real keys, as tests/integration/test_ledger_trust.py does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from relpromote import events
from relpromote.authority import authority_digest, authority_document
from relpromote.config import parse_config
from relpromote.identity import load_identity
from relpromote.ledger import Entry, utc_now
from relpromote.policy import promotion_verdict
from relpromote.project import Project
from relpromote.usecases.plan import current_plan
from tests.helpers import Cli, git_run, make_app_source, make_project, one_line_error, write_manifest

PEOPLE = {
    "alice": ["release_manager"], "oscar": ["operator"], "quinn": ["qa"], "carol": ["change_manager"],
    "boss": ["admin"], "ada": ["admin"], "mallory": ["operator"],
}
SETTING = {"require_approval": ["production"], "approvers": ["admin"]}


def commit(project: Cli, message: str) -> str:
    git_run(project.cwd, "add", "-A")
    git_run(project.cwd, "commit", "-q", "-m", message)
    return git_run(project.cwd, "rev-parse", "HEAD").strip()


def edit_config(project: Cli, change: Any) -> str:
    """Edit relpromote.yml as an insider with commit rights would, and commit it."""
    path = project.cwd / "relpromote.yml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return commit(project, "config change")


def give_roles(name: str, *roles: str) -> Any:
    def change(config: dict[str, Any]) -> None:
        for person in config["people"]:
            if person["name"] == name:
                person["roles"] = [*person["roles"], *roles]
    return change


def record(project: Cli, kind: str, actor: str, payload: dict[str, Any]) -> Entry:
    """What relpromote itself appends after a real run (signed by the actor's real key, its config stamped)."""
    opened = Project.open(project.cwd / "relpromote.yml")
    try:
        return opened.ledger.append(kind, actor, load_identity(project.cwd / ".keys" / f"{actor}.key"), payload)
    finally:
        opened.close()


@pytest.fixture
def project(tmp_path: Path) -> Cli:
    """Committed, with the setting on; 1.0.0 built by alice, live and accepted in qa and deployment."""
    cli = make_project(tmp_path / "proj", PEOPLE, authority=SETTING)
    commit(cli, "people")
    source = make_app_source(tmp_path / "app")
    manifest = write_manifest(tmp_path / "m.yml", "1.0.0")
    cli.run("build", "1.0.0", "--source", str(source), "--manifest", str(manifest), identity="alice", check=True)
    digest = cli.json("show", "1.0.0")["digest"]
    for environment in ("qa", "deployment"):
        record(cli, events.PROMOTION_FINISHED, "oscar", {"environment": environment, "version": "1.0.0", "digest": digest,
                                                         "result": "succeeded", "hosts": []})
        record(cli, events.VERDICT_ACCEPTED, "quinn", {"environment": environment, "version": "1.0.0", "digest": digest,
                                                       "evidence": [], "note": ""})
    return cli


def kinds(project: Cli) -> list[str]:
    return [row["kind"] for row in project.json("history")["entries"]]


def production_gates(project: Cli) -> dict[str, dict[str, Any]]:
    """The gates `promote 1.0.0 --to production` checks now, as alice (the plan the approval covers included)."""
    opened = Project.open(project.cwd / "relpromote.yml")
    try:
        state = opened.state()
        alice = opened.actor(load_identity(project.cwd / ".keys" / "alice.key"))
        verdict = promotion_verdict(opened.config, state, state.release("1.0.0"), "production", alice, utc_now(),
                                    plan=current_plan(opened, "production"))
        return {gate.rule: gate.as_data() for gate in verdict.gates}
    finally:
        opened.close()


def refusal(project: Cli, *args: str, identity: str) -> str:
    result = project.run(*args, identity=identity)
    assert result.returncode == 3, (result.stdout, result.stderr)
    return one_line_error(result)


def test_the_first_authority_is_the_root_trusted_on_first_use(project: Cli) -> None:
    assert kinds(project)[:2] == [events.AUTHORITY_RECORDED, events.RELEASE_BUILT]
    shown = project.json("authority", "show")
    assert shown["in_force"]["root"] is True and shown["in_force"]["seq"] == 1 and shown["in_force"]["by"] == "alice"
    assert shown["current_in_force"] is True and shown["require_approval"] == ["production"] and shown["approvers"] == ["ada", "boss"]
    config = parse_config((project.cwd / "relpromote.yml").read_text(), "relpromote.yml")
    assert shown["digest"] == shown["in_force"]["digest"] == authority_digest(authority_document(config))
    report = project.json("audit", "verify")
    assert report["ok"] and any("came into force, the root, trusted on first use (recorded by alice)" in n for n in report["notes"])
    # Every entry records the authority it was made under.
    history = project.json("history")["entries"]
    assert {row["payload"]["config"]["authority"] for row in history} == {shown["digest"]}
    assert production_gates(project)["authority"]["passed"]
    # Recorded once: the next decisions under the same authority add nothing.
    assert kinds(project).count(events.AUTHORITY_RECORDED) == 1


def test_an_insider_who_makes_themselves_change_manager_counts_only_once_an_admin_approves(project: Cli) -> None:
    edit_config(project, give_roles("mallory", "change_manager"))
    # mallory's approval is recorded (the committed config says she may), and so is the new authority, signed by her.
    result = project.run("approve", "1.0.0", "--env", "production", "--ticket", "CHG-1", identity="mallory")
    assert result.returncode == 0, result.stderr
    # ... and she is told at once that it does not count yet.
    assert "note: recorded, but it counts in production only once the authority is approved" in " ".join(result.stdout.split())
    assert kinds(project)[-2:] == [events.AUTHORITY_RECORDED, events.APPROVAL_GRANTED]
    # Production refuses: the rule, what changed, who may approve it and how.
    line = refusal(project, "promote", "1.0.0", "--to", "production", "--check", identity="alice")
    assert "refused by rule 'authority'" in line and "production requires an approved authority" in line
    assert "(mallory +change_manager)" in line and "an approver (ada, boss) runs `relpromote authority approve`" in line
    gates = production_gates(project)
    assert not gates["authority"]["passed"]
    assert not gates["approval"]["passed"] and "approval.granted by mallory was made under authority" in gates["approval"]["reason"]
    # audit verify names the decision made under the unapproved authority.
    report = project.json("audit", "verify", expect=1)
    approval_seq = len(kinds(project))
    assert any(p["seq"] == approval_seq and "which no approver approved (mallory +change_manager)" in p["reason"] for p in report["problems"])
    shown = project.json("authority", "show")
    assert shown["current_in_force"] is False and shown["changes"] == ["mallory +change_manager"]
    # The board says so where it matters, and only there.
    board = {row["environment"]: row["attention"] for row in project.json("status")["environments"]}
    assert any(a.startswith("AUTHORITY: production requires an approved authority") for a in board["production"]), board
    assert not any(a.startswith("AUTHORITY") for a in board["qa"])
    # mallory cannot approve her own change: she is no admin of the authority in force.
    line = refusal(project, "authority", "approve", identity="mallory")
    assert "mallory does not hold an approver role (admin) in the authority in force (approvers there: ada, boss)" in line
    # An admin of the authority in force approves it: now mallory's approval counts.
    approved = project.json("authority", "approve", identity="boss")
    assert approved["approved"] is True and approved["changes"] == ["mallory +change_manager"]
    gates = production_gates(project)
    assert gates["authority"]["passed"] and "approved by boss" in gates["authority"]["reason"]
    assert not any(a.startswith("AUTHORITY") for row in project.json("status")["environments"] for a in row["attention"])
    assert gates["approval"]["passed"] and "approved by mallory under CHG-1" in gates["approval"]["reason"], gates["approval"]
    assert project.json("audit", "verify")["ok"]
    # Approving again changes nothing and records nothing.
    count = len(kinds(project))
    assert project.json("authority", "approve", identity="ada")["approved"] is False and len(kinds(project)) == count


def test_an_admin_added_or_promoted_by_the_change_cannot_approve_it(project: Cli, tmp_path: Path) -> None:
    eve = project.json("keygen", "eve", "--out", str(project.cwd / ".keys" / "eve.key"))

    def add_eve_and_promote_boss(config: dict[str, Any]) -> None:
        config["people"].append({"name": "eve", "key": eve["key"], "roles": ["admin", "change_manager"]})
        give_roles("boss", "change_manager")(config)

    edit_config(project, add_eve_and_promote_boss)
    line = refusal(project, "authority", "approve", identity="eve")
    assert "eve does not hold an approver role (admin) in the authority in force" in line
    line = refusal(project, "authority", "approve", identity="boss")
    assert "boss gains a role (or is added) in this change and may not approve it; another approver must" in line
    assert events.AUTHORITY_APPROVED not in kinds(project)
    # An approval forged through the library by eve (her real key) does not count either, and is named.
    opened = Project.open(project.cwd / "relpromote.yml")
    status = opened.state().authority
    opened.close()
    assert status is not None
    forged = record(project, events.AUTHORITY_APPROVED, "eve", {"digest": status.current, "document": status.current_document,
                                                                 "commit": "", "previous": status.timeline[-1].digest, "changes": []})
    assert not production_gates(project)["authority"]["passed"]
    problems = project.json("audit", "verify", expect=1)["problems"]
    assert any(p["seq"] == forged.seq and "eve does not hold an approver role" in p["reason"] for p in problems)
    # ada, an admin before the change who gains nothing by it, may.
    assert project.json("authority", "approve", identity="ada")["approved"] is True


def test_reverting_to_an_older_authority_or_dropping_the_setting_needs_approval_too(project: Cli) -> None:
    root_commit = git_run(project.cwd, "rev-parse", "HEAD").strip()
    root = project.json("authority", "show")["digest"]
    # The admins take mallory's operator role away; approved.
    edit_config(project, lambda config: [p.update(roles=[]) for p in config["people"] if p["name"] == "mallory"])
    assert project.json("authority", "approve", identity="boss")["approved"] is True
    # She commits the root's config back: it was in force once, but no longer is.
    (project.cwd / "relpromote.yml").write_text(git_run(project.cwd, "show", f"{root_commit}:relpromote.yml"))
    commit(project, "back to the old config")
    assert project.json("authority", "show")["digest"] == root
    line = refusal(project, "promote", "1.0.0", "--to", "production", "--check", identity="alice")
    assert "refused by rule 'authority'" in line and "(mallory +operator)" in line
    # A decision made under it now does not count where an approved authority is required, and audit verify names it.
    digest = project.json("show", "1.0.0")["digest"]
    late = record(project, events.VERDICT_ACCEPTED, "quinn", {"environment": "deployment", "version": "1.0.0", "digest": digest,
                                                              "evidence": [], "note": ""})
    problems = project.json("audit", "verify", expect=1)["problems"]
    assert [p["seq"] for p in problems] == [late.seq] and f"made under authority {root[:12]}, which no approver approved" in problems[0]["reason"]
    # Dropping the setting in an unapproved change does not lift it: the authority in force still requires it.
    edit_config(project, lambda config: config.pop("authority"))
    line = refusal(project, "promote", "1.0.0", "--to", "production", "--check", identity="alice")
    assert "refused by rule 'authority'" in line and "the authority setting changed" in line
