"""`relpromote verify ENV` on real sshd hosts: a release put live behind relpromote's back (plain ansible-playbook, a file
edited in the live release) is drift: named per host, exit 3, recorded, shown by `status`; `rollback --version` the
recorded release brings the hosts back, and verify agrees again (exit 0)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import BIN, Cli, make_app_source, make_project, one_line_error
from tests.integration.conftest import write_inventories
from tests.integration.test_promote import build, health, ledger_payloads, live_version

QA = ("qa-app-1", "qa-app-2")


def plain_ansible_playbook(project: Cli, version: str, digest: str, limit: str) -> None:
    """What an operator with the roles and no relpromote does: ansible-playbook promote.yml against the inventory."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "ANSIBLE_CONFIG": str(project.cwd / "ansible.cfg")}
    artifact = project.cwd / ".relpromote" / "store" / "sha256" / f"{digest}.tar.gz"
    done = subprocess.run(
        [str(Path(BIN) / "ansible-playbook"), "-i", "inventories/qa", "playbooks/promote.yml", "--limit", limit,
         "-e", f"release_version={version}", "-e", f"release_digest={digest}", "-e", f"release_artifact={artifact}"],
        cwd=project.cwd, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_a_release_switched_by_plain_ansible_playbook_is_drift_until_rolled_back(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    source = make_app_source(tmp_path / "app")
    build(project, source, "1.0.0", "Hello")
    digest = build(project, source, "1.1.0", "Hi")
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)

    agrees = project.json("verify", "qa", identity="oscar")
    assert agrees["drift"] is False and agrees["result"] == "agrees"
    assert {h["host"]: (h["current"], h["app_version"], h["integrity"]) for h in agrees["hosts"]} == {
        host: ("1.0.0", "1.0.0", []) for host in QA}

    plain_ansible_playbook(project, "1.1.0", digest, "qa-app-2")
    assert live_version(farm, "qa-app-2") == "1.1.0" and health(farm, "qa-app-2")["version"] == "1.1.0"

    drift = project.run("verify", "qa", identity="oscar")
    assert drift.returncode == 3, drift.stderr
    line = one_line_error(drift)
    assert "qa-app-2: current is 1.1.0, the ledger says 1.0.0" in line and "qa-app-1" not in line
    assert "qa-app-2" in drift.stdout  # the per-host table
    recorded = ledger_payloads(project, "verify.finished")[-1]
    assert recorded["drift"] is True and recorded["drifted"] == ["qa-app-2"]
    assert recorded["expected"] == {"version": "1.0.0", "digest": recorded["expected"]["digest"]}
    status = project.json("status", "--env", "qa")["environments"][0]
    assert status["drifted"] == ["qa-app-2"] and any("DRIFT" in a for a in status["attention"])

    back = project.json("rollback", "--env", "qa", "--version", "1.0.0", "--reason", "1.1.0 went live by hand", identity="alice")
    assert back["result"] == "succeeded"
    assert all(live_version(farm, host) == "1.0.0" and health(farm, host)["version"] == "1.0.0" for host in QA)
    assert project.json("verify", "qa", identity="oscar")["drift"] is False
    status = project.json("status", "--env", "qa")["environments"][0]
    assert status["drifted"] == [] and status["current"] == "1.0.0" and status["last_verify"]["result"] == "agrees"
    # Going back to the recorded release withdrew nothing: 1.0.0 stays a rollback target.
    again = project.run("rollback", "--env", "qa", "--version", "1.0.0", "--reason", "x", identity="alice")
    assert again.returncode == 2 and "already runs 1.0.0" in one_line_error(again)


def test_a_file_edited_in_the_live_release_and_a_stopped_app_are_drift(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    source = make_app_source(tmp_path / "app")
    build(project, source, "1.0.0", "Hello")
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
    farm["qa-app-1"].path("/opt/shop/releases/1.0.0/greeting.txt").write_text("Hello, edited on the host\n")
    drift = project.json("verify", "qa", identity="oscar", expect=3)
    assert drift["ok"] is False and drift["drifted"] == ["qa-app-1"]
    host = next(h for h in drift["hosts"] if h["host"] == "qa-app-1")
    assert host["integrity"] == ["greeting.txt: changed (size 26, not 6)"]
    assert "greeting.txt" in drift["error"] and "\n" not in drift["error"]
