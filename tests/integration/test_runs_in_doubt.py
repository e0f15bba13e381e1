"""Double faults on real sshd hosts: a killed promotion, signals during tests and rollback, two clones at once.

Each test asserts on what landed: the hosts' `current` links and the apps' answers, the host leases, the ledger.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import BIN, RELPROMOTE, Cli, make_app_source, make_project, one_line_error
from tests.integration.conftest import commit_project, write_inventories
from tests.integration.test_promote import build, health, ledger_payloads, live_version

QA = ("qa-app-1", "qa-app-2")
# A restart hook that takes 4 s after the link switched: the window in which a test kills or signals the run.
SLOW_RESTART = "sh -c 'sleep 4; exec /opt/shop/current/bin/restart'"
LEASE = "/opt/shop/.relpromote-lock.json"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.02)


def start(project: Cli, *args: str, who: str = "oscar") -> subprocess.Popen[str]:
    env = {**os.environ, "RELPROMOTE_IDENTITY": str(project.cwd / ".keys" / f"{who}.key")}
    return subprocess.Popen([RELPROMOTE, *args], cwd=project.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(running: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    out, err = running.communicate(timeout=timeout)
    return running.returncode, out, err


def slow_restarts(project: Cli, hosts: tuple[str, ...] = QA) -> None:
    inventory_file = project.cwd / "inventories" / "qa" / "hosts.yml"
    inventory = yaml.safe_load(inventory_file.read_text())
    for host in hosts:
        inventory["all"]["hosts"][host]["release_restart_command"] = SLOW_RESTART
    inventory_file.write_text(yaml.safe_dump(inventory, sort_keys=False))
    commit_project(project, "slow restarts")


def on_release(project: Cli, farm: SshHostFarm, version: str) -> None:
    """Every qa host runs `version` (link and app), the ledger records it, nothing is in doubt, no lock or lease is left."""
    for host in QA:
        assert live_version(farm, host) == version, host
        assert health(farm, host)["version"] == version, host
        assert not farm[host].path(LEASE).exists(), f"{host} still holds a lease: {farm[host].path(LEASE).read_text()}"
    row = project.json("status", "--env", "qa")["environments"][0]
    assert row["current"] == version and row["in_doubt"] == [] and row["hosts_in_doubt"] == [] and row["needs_a_person"] == [], row
    assert project.json("lock", "status", "--env", "qa")["locked"] is False


def first_release_live(tmp_path: Path, farm: SshHostFarm, name: str = "proj", source: Path | None = None) -> tuple[Cli, Path]:
    project = make_project(tmp_path / name)
    write_inventories(project, farm, {"release_health_timeout": 4})
    source = source or make_app_source(tmp_path / "app")
    build(project, source, "1.0.0", "first")
    build(project, source, "1.1.0", "second")
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
    return project, source


def kill_after_the_switch(project: Cli, farm: SshHostFarm, version: str) -> str:
    """Promote `version`, SIGKILL relpromote once qa-app-1's link points at it; the killed run's lock id."""
    running = start(project, "promote", version, "--to", "qa")
    wait_until(lambda: live_version(farm, "qa-app-1") == version, f"qa-app-1 switching to {version}")
    running.send_signal(signal.SIGKILL)
    running.wait(timeout=30)
    return str(project.json("lock", "status", "--env", "qa")["lock"]["lock_id"])


def test_a_killed_promotion_is_in_doubt_until_the_next_run_brings_every_host_back(tmp_path: Path, farm: SshHostFarm) -> None:
    project, source = first_release_live(tmp_path, farm)
    slow_restarts(project, ("qa-app-1",))
    killed = kill_after_the_switch(project, farm, "1.1.0")
    # Intent before effect: the start was recorded, under the lock's id, with the hosts it was going to change.
    intent = ledger_payloads(project, "promotion.started")[-1]
    assert (intent["version"], intent["lock_id"], intent["hosts"], intent["requested_by"]) == ("1.1.0", killed, list(QA), "oscar")
    assert [p["lock_id"] for p in ledger_payloads(project, "promotion.finished")][-1] != killed
    assert live_version(farm, "qa-app-1") == "1.1.0"  # the truth on the host, which the ledger does not know

    status = project.json("status", "--env", "qa")["environments"][0]
    assert status["current"] == "1.0.0" and status["hosts_in_doubt"] == list(QA)
    assert [run["lock_id"] for run in status["in_doubt"]] == [killed]
    assert any("IN DOUBT" in line and "qa-app-1" in line and "reconcile" in line for line in status["attention"]), status["attention"]
    assert any("whose process is gone" in line for line in status["attention"]), status["attention"]
    shown = project.run("status", "--env", "qa")
    assert "IN DOUBT" in shown.stdout and "qa-app-1, qa-app-2" in shown.stdout.replace("\n", " "), shown.stdout

    # The killed run's lock: its process is gone, and the ledger records what was seen, not an assumed reason.
    released = project.json("lock", "release", "--env", "qa", "--lock-id", killed, identity="oscar")
    assert released["holder_process"]["alive"] is False
    recorded = ledger_payloads(project, "lock.released")[-1]
    assert recorded["holder_alive"] is False and recorded["seen"].startswith("no process") and recorded["reason"] is None

    # The re-promotion restarts qa-app-1 into 1.1.0 (its link already pointed there: not a switch) and fails on qa-app-2.
    farm["qa-app-2"].path("/opt/shop/BROKEN-1.1.0").write_text("this host's 1.1.0 answers 500\n")
    again = project.run("--json", "promote", "1.1.0", "--to", "qa", identity="oscar")
    document = json.loads(again.stdout)
    message = next(json.loads(line)["message"] for line in again.stderr.splitlines() if json.loads(line).get("event") == "error")
    assert again.returncode == 1, again.stderr
    assert "nothing changed" not in message and "rolled back" in message and "qa-app-1→1.0.0" in message, message
    assert sorted(h["host"] for h in document["rollback"]["hosts"]) == list(QA) and document["rollback"]["succeeded"] is True
    assert document["settles"] == [killed] and document["unsettled"] == []
    on_release(project, farm, "1.0.0")

    # Killed again, then `reconcile` alone brings every host back to the recorded release.
    build(project, source, "1.2.0", "third")
    second = kill_after_the_switch(project, farm, "1.2.0")
    project.run("lock", "release", "--env", "qa", "--lock-id", second, identity="oscar", check=True)
    denied = project.run("reconcile", "--env", "qa", identity="oscar")
    assert denied.returncode == 3 and "may not rollback" in one_line_error(denied)
    reconciled = project.json("reconcile", "--env", "qa", identity="alice")
    assert reconciled["version"] == "1.0.0" and reconciled["settles"] == [second] and reconciled["result"] == "succeeded"
    assert "qa-app-1" in [h["host"] for h in reconciled["hosts"] if h["switched"]]
    on_release(project, farm, "1.0.0")


def test_a_signal_during_the_tests_means_interrupted_and_a_second_one_never_stops_the_rollback(
    tmp_path: Path, farm: SshHostFarm
) -> None:
    marker = tmp_path / "tests-running"
    project = make_project(tmp_path / "proj")
    config_file = project.cwd / "relpromote.yml"
    config = yaml.safe_load(config_file.read_text())
    # The smoke tests take a minute when slow-tests exists (and are quick otherwise, for the first release).
    command = f"sh -c 'if [ -e slow-tests ]; then touch {marker}; sleep 60; fi'"
    config["environments"]["qa"]["tests"] = [{"kind": "smoke", "command": command, "timeout": 120}]
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    write_inventories(project, farm, {"release_health_timeout": 8, "release_restart_command": SLOW_RESTART})
    source = make_app_source(tmp_path / "app")
    build(project, source, "1.0.0", "first")
    build(project, source, "1.1.0", "second")
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
    on_release(project, farm, "1.0.0")

    (project.cwd / "slow-tests").write_text("")
    running = start(project, "promote", "1.1.0", "--to", "qa")
    wait_until(marker.exists, "the smoke tests starting", timeout=120)
    for host in QA:  # the lease is held over the tests, naming this run, for longer than they may take
        lease = json.loads(farm[host].path(LEASE).read_text())
        assert lease["person"] == "oscar" and lease["purpose"] == "promotion of 1.1.0", lease
        assert lease["expires"] - time.time() > 120 + 900 - 60, lease
    # A plain ansible-playbook run of the same playbook is refused by the hosts before it changes anything.
    plain = subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventories/qa", "playbooks/promote.yml", "-e", "release_version=1.0.0"],
                           cwd=project.cwd, env={**os.environ, "ANSIBLE_CONFIG": str(project.cwd / "ansible.cfg")},
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode != 0 and "this host is locked by oscar (promotion of 1.1.0), project shop" in plain.stdout, plain.stdout[-2000:]
    assert all(live_version(farm, host) == "1.1.0" for host in QA)

    # `lock release` of the live run is refused (exit 4) and records nothing.
    held = project.json("lock", "status", "--env", "qa")["lock"]
    refused = project.run("lock", "release", "--env", "qa", "--lock-id", held["lock_id"], identity="oscar")
    assert refused.returncode == 4 and "still alive" in one_line_error(refused)
    assert ledger_payloads(project, "lock.released") == []

    running.send_signal(signal.SIGTERM)
    # The automatic rollback switches the links back, then restarts slowly: the second signal lands in it.
    wait_until(lambda: all(live_version(farm, host) == "1.0.0" for host in QA), "the rollback switching back")
    running.send_signal(signal.SIGTERM)
    running.send_signal(signal.SIGINT)
    code, _, stderr = finish(running)
    assert code == 1, stderr
    assert "SIGTERM received again" in stderr and "no signal interrupts it" in stderr, stderr
    assert "Traceback" not in stderr
    recorded = ledger_payloads(project, "promotion.finished")[-1]
    assert recorded["result"] == "interrupted" and recorded["verification_failed"] is False, recorded
    assert recorded["rollback"]["succeeded"] is True and recorded["evidence"] == []
    assert "interrupted during its automated tests" in recorded["reason"]
    on_release(project, farm, "1.0.0")

    # The release was not judged: it may be promoted again, and goes live.
    (project.cwd / "slow-tests").unlink()
    assert project.json("promote", "1.1.0", "--to", "qa", identity="oscar")["result"] == "succeeded"
    on_release(project, farm, "1.1.0")


def test_two_clones_promoting_the_same_hosts_at_once(tmp_path: Path, farm: SshHostFarm) -> None:
    first, _ = first_release_live(tmp_path, farm, "clone-a")
    # The second clone: a copy of the project with its own .relpromote (ledger, store, locks) from now on, the same hosts.
    shutil.copytree(first.cwd, tmp_path / "clone-b", symlinks=True)
    second = Cli(tmp_path / "clone-b")
    slow_restarts(first)
    slow_restarts(second)

    first_run = start(first, "--json", "promote", "1.1.0", "--to", "qa")
    # The second operator starts while the first run holds the hosts' leases (its restarts take 4 s each): the hosts
    # refuse the younger run. Started at the very same instant, which run is the younger is a coin toss, and an older
    # run waits for a younger holder instead (tests/unit/test_mutants_release_lease.py), then finds the release live.
    deadline = time.monotonic() + 120
    while not all(farm[host].path(LEASE).exists() for host in QA):
        assert first_run.poll() is None and time.monotonic() < deadline, "the first run never held the hosts' leases"
        time.sleep(0.05)
    runs = [first_run, start(second, "--json", "promote", "1.1.0", "--to", "qa")]
    results = [finish(run) for run in runs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 4], [(code, err[-800:]) for code, _, err in results]
    winner, loser = (first, second) if results[0][0] == 0 else (second, first)
    _, out, err = results[0] if results[0][0] == 4 else results[1]
    refused = json.loads(out)
    message = next(json.loads(line)["message"] for line in err.splitlines() if json.loads(line).get("event") == "error")
    # The holder as the host reports it: the winner's person, purpose, project and run id.
    winner_run = ledger_payloads(winner, "promotion.finished")[-1]["lock_id"]
    assert "is locked by oscar (promotion of 1.1.0)" in message and f"run {winner_run}" in message, message
    assert refused["result"] == "busy" and refused["verification_failed"] is False
    assert ledger_payloads(loser, "promotion.finished")[-1]["result"] == "busy"
    on_release(winner, farm, "1.1.0")
    # Nothing banned the loser's good release: promoted again, it finds it live and changes nothing.
    again = loser.json("promote", "1.1.0", "--to", "qa", identity="oscar")
    assert again["result"] == "succeeded" and again["switched"] == []
    on_release(loser, farm, "1.1.0")



def test_a_run_ansible_refuses_before_any_host_records_its_end_and_leaves_nothing_in_doubt(tmp_path: Path, farm: SshHostFarm) -> None:
    project, _ = first_release_live(tmp_path, farm)
    broken = project.cwd / "inventories" / "qa" / "group_vars" / "all" / "main.yml"
    broken.write_text(broken.read_text() + "release_keep: [unclosed\n")
    commit_project(project, "a YAML error")
    refused = project.run("promote", "1.1.0", "--to", "qa", identity="oscar")
    assert refused.returncode == 2, refused.stderr
    started = ledger_payloads(project, "promotion.started")[-1]
    ended = ledger_payloads(project, "promotion.finished")[-1]
    assert ended["lock_id"] == started["lock_id"] and ended["result"] == "failed" and ended["unsettled"] == []
    row = project.json("status", "--env", "qa")["environments"][0]
    assert row["in_doubt"] == [] and row["current"] == "1.0.0"
    assert all(live_version(farm, host) == "1.0.0" and not farm[host].path(LEASE).exists() for host in QA)
