"""roles/release_deploy/library/release_lock.py: one run's lease on a host, its expiry, take-over and release.

The module runs in this process as Ansible runs it on a host, against a real lease file; the program its action
plugin pipes to the host's Python (module_utils/release_lease.py and one call) runs in a real python3 against the
same file, from another process.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.unit.host_modules import REPO, Outcome, load, run

LOCK = load("roles/release_deploy/library/release_lock.py")
ACTION = load("roles/release_deploy/action_plugins/release_lock.py")


def hold(path: Path, run_id: str, started: str = "2026-11-30T10:00:00Z", **args: Any) -> Outcome:
    who = {"id": run_id, "project": "shop", "person": "oscar", "controller": "oscar@jump", "pid": 42,
           "purpose": "promotion of 1.4.0", "started": started}
    return run(LOCK, {"path": str(path), "run": who, "wait": 0, **args})


def test_a_free_host_is_taken_and_the_lease_names_the_run(tmp_path: Path) -> None:
    lease = tmp_path / "lock.json"
    outcome = hold(lease, "run-a", ttl=60)
    assert not outcome.failed and outcome["token"] == "run-a" and not outcome["busy"]
    held = json.loads(lease.read_text())
    assert (held["token"], held["person"], held["controller"], held["pid"], held["project"]) == ("run-a", "oscar", "oscar@jump", 42, "shop")
    assert 55 < held["expires"] - time.time() <= 60


def test_a_second_run_is_refused_naming_the_holder_and_changes_nothing(tmp_path: Path) -> None:
    lease = tmp_path / "lock.json"
    hold(lease, "run-a")
    before = lease.read_text()
    outcome = hold(lease, "run-b", started="2026-11-30T10:00:05Z")
    assert outcome.failed and outcome["busy"] and outcome["holder"]["token"] == "run-a"
    assert outcome["msg"].startswith("this host is locked by oscar (promotion of 1.4.0), project shop, run run-a, pid 42 on oscar@jump")
    assert lease.read_text() == before


def test_the_same_run_renews_its_lease(tmp_path: Path) -> None:
    lease = tmp_path / "lock.json"
    hold(lease, "run-a", ttl=10)
    first = json.loads(lease.read_text())
    outcome = hold(lease, "run-a", ttl=100)
    renewed = json.loads(lease.read_text())
    assert not outcome.failed and renewed["taken_at"] == first["taken_at"] and renewed["expires"] > first["expires"] + 80


def test_an_expired_lease_is_taken_over_and_named(tmp_path: Path) -> None:
    lease = tmp_path / "lock.json"
    hold(lease, "run-a", ttl=1)
    time.sleep(1.1)
    outcome = hold(lease, "run-b")
    assert not outcome.failed and outcome["broke"]["token"] == "run-a" and json.loads(lease.read_text())["token"] == "run-b"


def test_a_lease_of_a_run_known_to_be_over_is_taken_over(tmp_path: Path) -> None:
    lease = tmp_path / "lock.json"
    hold(lease, "killed")
    assert hold(lease, "next", breakable=["other"]).failed
    outcome = hold(lease, "next", breakable=["killed"])
    assert not outcome.failed and outcome["broke"]["token"] == "killed"


def test_an_unreadable_lease_counts_as_expired(tmp_path: Path) -> None:
    lease = tmp_path / "lock.json"
    lease.write_text("{not json")
    assert not hold(lease, "run-a").failed


def test_the_older_of_two_runs_waits_for_the_younger_and_the_younger_is_refused_at_once(tmp_path: Path) -> None:
    lease = tmp_path / "lock.json"
    hold(lease, "young", started="2026-11-30T10:00:05Z")
    started = time.monotonic()
    refused = hold(lease, "younger", started="2026-11-30T10:00:09Z", wait=5)
    assert refused.failed and time.monotonic() - started < 2, "a younger run never waits"

    def give_back() -> None:  # the younger run's unlock, from another process, while the older one waits
        time.sleep(0.6)
        unlock_command(lease, "young")

    threading.Thread(target=give_back).start()
    outcome = hold(lease, "old", started="2026-11-30T10:00:00Z", wait=10)
    assert not outcome.failed and json.loads(lease.read_text())["token"] == "old" and time.monotonic() - started >= 0.5


def test_release_removes_only_this_runs_lease(tmp_path: Path) -> None:
    lease = tmp_path / "lock.json"
    hold(lease, "run-a")
    other = run(LOCK, {"path": str(lease), "state": "released", "token": "run-b"})
    assert not other["released"] and lease.exists()
    mine = run(LOCK, {"path": str(lease), "state": "released", "run": {"id": "run-a"}})
    assert mine["released"] and not lease.exists()


def test_check_mode_writes_nothing(tmp_path: Path) -> None:
    lease = tmp_path / "lock.json"
    outcome = run(LOCK, {"path": str(lease), "run": {"id": "run-a"}}, check=True)
    assert not outcome.failed and not lease.exists()


def test_a_run_without_an_id_gets_a_token_to_release_with(tmp_path: Path) -> None:
    lease = tmp_path / "lock.json"
    outcome = run(LOCK, {"path": str(lease), "run": {"person": "dana", "purpose": "ansible-playbook Promote a release"}})
    assert not outcome.failed and len(outcome["token"]) == 12 and json.loads(lease.read_text())["token"] == outcome["token"]


SOURCES = ACTION.HOST.read_sources(REPO / "roles/release_deploy/module_utils", ACTION.UTILS)


def on_the_host(args: dict[str, Any], check: bool = False) -> dict[str, Any]:
    """What the action plugin's program prints when the host's python3 runs it (another process, as on a host)."""
    program = ACTION.script(SOURCES, ACTION.parameters(args, SOURCES), check)
    ran = subprocess.run(["python3", "-"], input=program, capture_output=True, text=True, check=True)
    line = next(line for line in ran.stdout.splitlines() if line.startswith(ACTION.HOST.RESULT_MARK))
    result: dict[str, Any] = json.loads(line[len(ACTION.HOST.RESULT_MARK):])
    return result


def unlock_command(lease: Path, token: str) -> dict[str, Any]:
    """promote.yml's unlock: release_lock with state=released and the run's token, through the action plugin's program."""
    return on_the_host({"path": str(lease), "state": "released", "token": token})


def test_the_playbooks_unlock_removes_only_this_runs_lease(tmp_path: Path) -> None:
    lease = tmp_path / "lock.json"
    hold(lease, "run-a")
    assert not unlock_command(lease, "run-b")["released"]
    assert lease.exists()
    assert unlock_command(lease, "run-a")["released"]
    assert not lease.exists()
    assert not unlock_command(lease, "run-a")["released"]  # nothing left: no error


def test_the_action_plugins_program_refuses_naming_the_holder_as_the_module_does(tmp_path: Path) -> None:
    lease = tmp_path / "lock.json"
    hold(lease, "run-a")
    who = {"id": "run-b", "person": "dana", "purpose": "promotion of 1.5.0", "started": "2026-11-30T10:00:09Z"}
    refused = on_the_host({"path": str(lease), "run": who, "wait": 0})
    module = hold(lease, "run-b", started="2026-11-30T10:00:09Z")
    assert refused["failed"] and refused["busy"] and refused["holder"]["token"] == "run-a"
    assert module.failed and refused["msg"] == module.msg and "oscar (promotion of 1.4.0)" in refused["msg"]
    assert json.loads(lease.read_text())["token"] == "run-a"
    assert not on_the_host({"path": str(tmp_path / "other.json"), "run": who}, check=True).get("failed")
    assert not (tmp_path / "other.json").exists(), "check mode writes nothing"
    taken = on_the_host({"path": str(tmp_path / "other.json"), "run": who, "ttl": "60"})
    assert taken["token"] == "run-b" and json.loads((tmp_path / "other.json").read_text())["person"] == "dana"


def test_the_action_plugin_refuses_arguments_the_module_would_refuse() -> None:
    for bad in ({"state": "held"}, {"path": "/x", "state": "gone"}, {"path": "/x", "run": "me"}, {"path": "/x", "colour": 1}):
        try:
            ACTION.parameters(bad, SOURCES)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")
