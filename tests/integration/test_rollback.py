"""Rollback on real sshd hosts: by hand, automatically after failures, after interrupts and pruning."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import RELPROMOTE, Cli, make_app_source, make_project, one_line_error
from tests.integration.conftest import commit_project, write_inventories
from tests.integration.test_promote import build, health, ledger_payloads, live_version

QA = ("qa-app-1", "qa-app-2")


def qa_on(project: Cli, farm: SshHostFarm, version: str) -> None:
    """Both qa hosts run `version`: the link, the app's answer, and the ledger's status board agree; no lock is left."""
    for host in QA:
        assert live_version(farm, host) == version, host
        assert health(farm, host)["version"] == version, host
    status = project.json("status", "--env", "qa")["environments"][0]
    assert status["current"] == version and status["needs_a_person"] == []
    assert project.json("lock", "status", "--env", "qa")["locked"] is False


def two_releases_live(tmp_path: Path, farm: SshHostFarm, keep: int = 3) -> tuple[Cli, Path]:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm, {"release_keep": keep, "release_health_timeout": 4})
    source = make_app_source(tmp_path / "app")
    build(project, source, "1.0.0", "first")
    build(project, source, "1.1.0", "second")
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
    return project, source


def test_manual_rollback_is_a_link_switch(tmp_path: Path, farm: SshHostFarm) -> None:
    project, _ = two_releases_live(tmp_path, farm)
    project.run("promote", "1.1.0", "--to", "qa", identity="oscar", check=True)
    kept = farm["qa-app-1"].path("/opt/shop/releases/1.0.0/app.py").stat().st_ino
    denied = project.run("rollback", "--env", "qa", "--reason", "x", identity="oscar")
    assert denied.returncode == 3 and "may not rollback" in one_line_error(denied)

    result = project.json("rollback", "--env", "qa", "--reason", "checkout errors in 1.1.0", identity="alice")
    assert (result["from_version"], result["version"], result["result"]) == ("1.1.0", "1.0.0", "succeeded")
    qa_on(project, farm, "1.0.0")
    assert farm["qa-app-1"].path("/opt/shop/releases/1.0.0/app.py").stat().st_ino == kept  # not re-unpacked
    recorded = ledger_payloads(project, "rollback.finished")[-1]
    assert recorded["reason"] == "checkout errors in 1.1.0" and {h["host"] for h in recorded["hosts"]} == set(QA)
    nothing_before = project.run("rollback", "--env", "qa", "--reason", "again", identity="alice")
    # 1.0.0 is the first release, and 1.1.0 was withdrawn by the rollback: nothing to go back to by default
    assert nothing_before.returncode == 2 and "no earlier accepted release" in one_line_error(nothing_before)


def test_failed_health_check_on_one_host_rolls_back_both(tmp_path: Path, farm: SshHostFarm) -> None:
    project, _ = two_releases_live(tmp_path, farm)
    farm["qa-app-2"].path("/opt/shop/BROKEN-1.1.0").write_text("this host's 1.1.0 answers 500\n")
    failed = project.run("promote", "1.1.0", "--to", "qa", identity="oscar")
    assert failed.returncode == 1, failed.stderr
    assert "rolled back" in one_line_error(failed)
    qa_on(project, farm, "1.0.0")
    recorded = ledger_payloads(project, "promotion.finished")[-1]
    assert recorded["result"] == "rolled_back" and recorded["verification_failed"] is True
    assert sorted(h["host"] for h in recorded["rollback"]["hosts"]) == list(QA)
    retry = project.run("promote", "1.1.0", "--to", "qa", identity="oscar")
    assert retry.returncode == 3 and "failed verification" in one_line_error(retry)


def test_batches_stop_at_the_failing_batch_and_roll_back_what_switched(tmp_path: Path, farm: SshHostFarm) -> None:
    project, _ = two_releases_live(tmp_path, farm)
    farm["qa-app-2"].path("/opt/shop/BROKEN-1.1.0").write_text("broken\n")
    failed = project.json("promote", "1.1.0", "--to", "qa", "--batch", "1", identity="oscar", expect=1)
    assert failed["batch"] == "1" and failed["result"] == "rolled_back"
    assert sorted(failed["switched"]) == list(QA)  # batch 1 went live, batch 2 switched and failed its check
    qa_on(project, farm, "1.0.0")
    bad = project.run("promote", "1.0.0", "--to", "qa", "--batch", "0%", identity="oscar")
    assert bad.returncode == 2 and "--batch" in one_line_error(bad)


def _start_promotion(project: Cli, version: str) -> subprocess.Popen[str]:
    env = {**os.environ, "RELPROMOTE_IDENTITY": str(project.cwd / ".keys" / "oscar.key")}
    return subprocess.Popen([RELPROMOTE, "promote", version, "--to", "qa"], cwd=project.cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_unreachable_host_mid_run(tmp_path: Path, farm: SshHostFarm) -> None:
    """qa-app-2 goes away after its switch, while it restarts: qa-app-1 is rolled back, qa-app-2 is named for a person."""
    project, _ = two_releases_live(tmp_path, farm)
    inventory_file = project.cwd / "inventories" / "qa" / "hosts.yml"
    inventory = yaml.safe_load(inventory_file.read_text())
    # A slow restart on qa-app-2 only: the window in which the test takes the host away.
    slow = "sh -c 'sleep 4; exec /opt/shop/current/bin/restart'"
    inventory["all"]["hosts"]["qa-app-2"]["release_restart_command"] = slow
    inventory_file.write_text(yaml.safe_dump(inventory, sort_keys=False))
    commit_project(project, "slow restart on qa-app-2")
    running = _start_promotion(project, "1.1.0")
    deadline = time.monotonic() + 60
    while live_version(farm, "qa-app-2") != "1.1.0":
        assert time.monotonic() < deadline, "qa-app-2 never switched"
        time.sleep(0.02)
    farm.stop_host("qa-app-2")
    code = running.wait(timeout=300)
    stderr = running.stderr.read() if running.stderr else ""
    recorded = ledger_payloads(project, "promotion.finished")[-1]
    context = f"exit {code}: {stderr[-600:]} / recorded {recorded['result']}: {recorded['hosts']} / rollback {recorded['rollback']}"
    assert code == 5 and "qa-app-2" in one_line_error_of(stderr), context
    assert live_version(farm, "qa-app-1") == "1.0.0" and health(farm, "qa-app-1")["version"] == "1.0.0", context
    assert recorded["result"] == "rollback_failed" and recorded["rollback"]["need_a_person"] == ["qa-app-2"], context
    status = project.json("status", "--env", "qa")["environments"][0]
    assert status["current"] == "1.0.0" and status["needs_a_person"] == ["qa-app-2"]
    assert project.json("lock", "status", "--env", "qa")["locked"] is False


def one_line_error_of(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("relpromote: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_sigterm_mid_run_rolls_back_and_records_the_interrupt(tmp_path: Path, farm: SshHostFarm) -> None:
    project, _ = two_releases_live(tmp_path, farm)
    farm["qa-app-1"].path("/opt/shop/BROKEN-1.1.0").write_text("slow to come up: keeps the run in its health check\n")
    running = _start_promotion(project, "1.1.0")
    deadline = time.monotonic() + 60
    while live_version(farm, "qa-app-1") != "1.1.0":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    running.send_signal(signal.SIGTERM)
    assert running.wait(timeout=300) == 1
    qa_on(project, farm, "1.0.0")
    recorded = ledger_payloads(project, "promotion.finished")[-1]
    assert recorded["result"] == "interrupted" and recorded["rollback"]["succeeded"] is True


def test_rollback_after_the_release_was_pruned_redeploys_it_from_the_store(tmp_path: Path, farm: SshHostFarm) -> None:
    project, source = two_releases_live(tmp_path, farm, keep=2)
    build(project, source, "1.2.0", "third")
    project.run("promote", "1.1.0", "--to", "qa", identity="oscar", check=True)
    project.run("promote", "1.2.0", "--to", "qa", identity="oscar", check=True)
    assert not farm["qa-app-1"].path("/opt/shop/releases/1.0.0").exists()  # pruned: only 1.2.0 and 1.1.0 kept
    result = project.json("rollback", "--env", "qa", "--version", "1.0.0", "--reason", "back to the known good one", identity="alice")
    assert result["result"] == "succeeded"
    qa_on(project, farm, "1.0.0")
    assert farm["qa-app-2"].path("/opt/shop/releases/1.0.0/.release/DIGEST").read_text().strip() == project.json("show", "1.0.0")["digest"]
