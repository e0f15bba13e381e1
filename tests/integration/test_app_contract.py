"""The application contract on real sshd hosts: a restart hook that is missing or fails, a health
endpoint that answers another version. Each failure names the host, the command, its exit code and
the last lines of its output, in the one-line error and in the ledger, and leaves no host half-switched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import Cli, make_app_source, make_project, one_line_error
from tests.integration.conftest import commit_project, write_inventories
from tests.integration.test_promote import build, health, ledger_payloads, live_version

QA = ("qa-app-1", "qa-app-2")
HOOK = "/opt/shop/current/bin/restart"  # the default: the hook the release ships


def qa_runs_1_0_0(tmp_path: Path, farm: SshHostFarm) -> tuple[Cli, Path, dict[str, int]]:
    """A project whose qa hosts run 1.0.0; the pids of its apps."""
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm, {"release_health_timeout": 4})
    source = make_app_source(tmp_path / "app")
    build(project, source, "1.0.0", "first")
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
    return project, source, {host: health(farm, host)["pid"] for host in QA}


def still_on_1_0_0(farm: SshHostFarm, pids: dict[str, int] | None = None) -> None:
    for host in QA:
        assert live_version(farm, host) == "1.0.0", host
        answer = health(farm, host)
        assert answer["version"] == "1.0.0", host
        if pids is not None:
            assert answer["pid"] == pids[host], f"{host}'s application was restarted"


def set_qa_vars(project: Cli, **group_vars: Any) -> None:
    path = project.cwd / "inventories" / "qa" / "group_vars" / "all" / "main.yml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **group_vars}, sort_keys=False))
    commit_project(project, f"qa: {group_vars}")


def test_missing_restart_hook_fails_every_host_before_anything_changes(tmp_path: Path, farm: SshHostFarm) -> None:
    project, source, pids = qa_runs_1_0_0(tmp_path, farm)

    # A configured hook that is not on one host: the check names that host and that command only.
    inventory_file = project.cwd / "inventories" / "qa" / "hosts.yml"
    inventory = yaml.safe_load(inventory_file.read_text())
    inventory["all"]["hosts"]["qa-app-2"]["release_restart_command"] = "/opt/shop/hooks/restart --graceful"
    inventory_file.write_text(yaml.safe_dump(inventory, sort_keys=False))
    commit_project(project, "qa-app-2 restarts through a hook that is not there")
    checked = project.run("promote", "1.0.0", "--to", "qa", "--check", identity="oscar")
    error = one_line_error(checked)
    assert checked.returncode == 1, checked.stderr
    assert "check of 1.0.0 to qa failed: qa-app-2: " in error and "qa-app-1" not in error, error
    assert '"/opt/shop/hooks/restart --graceful"' in error and "/opt/shop/hooks/restart is missing" in error, error
    inventory["all"]["hosts"]["qa-app-2"].pop("release_restart_command")
    inventory_file.write_text(yaml.safe_dump(inventory, sort_keys=False))
    commit_project(project, "qa-app-2 back on the release's hook")

    # A release that ships no hook: refused on every host, in check mode and for real.
    (source / "bin" / "restart").unlink()
    build(project, source, "1.1.0", "no hook")
    checked = project.run("promote", "1.1.0", "--to", "qa", "--check", identity="oscar")
    error = one_line_error(checked)
    assert checked.returncode == 1, checked.stderr
    assert error.startswith("relpromote: check of 1.1.0 to qa failed: qa-app-1, qa-app-2: "), error
    assert f'the restart hook "{HOOK}" cannot run: bin/restart is missing in release 1.1.0' in error, error
    assert error.endswith("nothing changed"), error

    failed = project.run("promote", "1.1.0", "--to", "qa", identity="oscar")
    error = one_line_error(failed)
    assert failed.returncode == 1, failed.stderr
    assert "promotion of 1.1.0 to qa failed: qa-app-1, qa-app-2: " in error and f'"{HOOK}"' in error, error
    assert "no host switched to it; every host runs 1.0.0, the recorded release" in error, error
    still_on_1_0_0(farm, pids)
    for host in QA:
        assert not farm[host].path("/opt/shop/releases/1.1.0").exists(), host  # refused before it appeared
        assert farm[host].path("/opt/shop/.history").read_text().split() == ["1.0.0"]

    recorded = ledger_payloads(project, "promotion.finished")[-1]
    assert recorded["version"] == "1.1.0" and recorded["result"] == "failed" and recorded["switched"] == []
    assert recorded["reason"].startswith("qa-app-1, qa-app-2: ") and f'"{HOOK}"' in recorded["reason"]
    assert "\n" not in recorded["reason"]
    for host in recorded["hosts"]:
        assert host["error"] == {
            "step": "hook", "command": HOOK, "rc": None, "output": [],
            "problem": "bin/restart is missing in release 1.1.0 (/opt/shop/releases/1.1.0/bin/restart)",
        }, host
    assert recorded["verification_failed"] is False  # the hook, not the release's behaviour: fix it and promote again


FAILING_HOOK = """#!/bin/sh
echo "starting shop $RELEASE_VERSION from $RELEASE_DIR in $(pwd) (was $RELEASE_PREVIOUS_VERSION, $RELEASE_ACTION)"
echo "error: cannot bind $APP_HOST:$APP_PORT, health at $RELEASE_HEALTH_URL" >&2
exit 7
"""


def test_failing_restart_hook_is_named_with_its_exit_code_and_output(tmp_path: Path, farm: SshHostFarm) -> None:
    project, source, _ = qa_runs_1_0_0(tmp_path, farm)
    (source / "bin" / "restart").write_text(FAILING_HOOK)  # keeps its execute bit
    build(project, source, "1.1.0", "hook exits 7")

    failed = project.run("promote", "1.1.0", "--to", "qa", identity="oscar")
    error = one_line_error(failed)
    assert failed.returncode == 1, failed.stderr
    for host in QA:
        address, _ = farm.endpoint(host)
        assert f'{host}: the restart hook "{HOOK}" exited with 7: starting shop 1.1.0' in error, error
        assert f"cannot bind {address}:8080" in error, error
    assert "rolled back qa-app-1→1.0.0, qa-app-2→1.0.0" in error, error
    still_on_1_0_0(farm)  # the old release's own hook brought 1.0.0 back

    recorded = ledger_payloads(project, "promotion.finished")[-1]
    assert recorded["result"] == "rolled_back" and recorded["rollback"]["succeeded"] is True
    assert "qa-app-1: " in recorded["reason"] and "exited with 7" in recorded["reason"] and "\n" not in recorded["reason"]
    for host in recorded["hosts"]:
        address, _ = farm.endpoint(host["host"])
        assert host["failed_task"] == "Restart the application if needed, wait until it answers the release's version, prune"
        assert host["error"] == {
            "step": "restart", "command": HOOK, "rc": 7,
            # What the hook was given: the environment of the contract, run in the release directory.
            "output": [
                "starting shop 1.1.0 from /opt/shop/releases/1.1.0 in /opt/shop/releases/1.1.0 (was 1.0.0, deploy)",
                f"error: cannot bind {address}:8080, health at http://{address}:8080/health",
            ],
        }, host
    assert recorded["verification_failed"] is False


def test_health_answering_another_version_rolls_back_and_says_what_answered(tmp_path: Path, farm: SshHostFarm) -> None:
    project, source, pids = qa_runs_1_0_0(tmp_path, farm)
    build(project, source, "1.1.0", "second")
    # A hook that returns 0 without restarting anything: the old application goes on answering 1.0.0.
    set_qa_vars(project, release_restart_command="/bin/echo not restarting")

    failed = project.run("promote", "1.1.0", "--to", "qa", identity="oscar")
    error = one_line_error(failed)
    assert failed.returncode == 1, failed.stderr
    for host in QA:
        address, _ = farm.endpoint(host)
        assert f'{host}: http://{address}:8080/health did not answer 200 with version 1.1.0 within 4 s; ' in error, error
    assert 'last answer: status 200, version "1.0.0"' in error, error
    assert 'the restart hook "/bin/echo not restarting" had exited with 0: not restarting' in error, error
    assert "rolled back qa-app-1→1.0.0, qa-app-2→1.0.0" in error, error
    still_on_1_0_0(farm, pids)

    recorded = ledger_payloads(project, "promotion.finished")[-1]
    assert recorded["result"] == "rolled_back" and recorded["verification_failed"] is True
    assert sorted(recorded["switched"]) == list(QA) and recorded["rollback"]["succeeded"] is True
    assert "did not answer 200 with version 1.1.0" in recorded["reason"] and "\n" not in recorded["reason"]
    for host in recorded["hosts"]:
        assert host["failed_task"] == "Check that the application answers the release's version"
        assert 'version "1.0.0"' in host["message"] and "/bin/echo not restarting" in host["message"]
    retry = project.run("promote", "1.1.0", "--to", "qa", identity="oscar")
    assert retry.returncode == 3 and "failed verification" in one_line_error(retry)
