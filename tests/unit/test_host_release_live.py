"""roles/release_deploy/library/release_live.py: an unpacked release goes live in one module execution - lease
renewed, switch, restart when needed, health check, prune, witness - and a failure says at which step and what the
host runs."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.host_modules import REPO, App, Outcome, load, make_release, run

LIVE = load("roles/release_deploy/library/release_live.py")
OLD, NEW = "1.0.0", "2.0.0"
LEASE, WITNESS = ".relpromote-lock.json", ".relpromote-witness.json"
RUN = {"id": "run-a", "project": "shop", "person": "oscar", "controller": "oscar@jump", "pid": 42,
       "purpose": "promotion of 2.0.0", "started": "2026-11-30T10:00:00Z"}
HEAD = {"project": "shop", "environment": "qa", "seq": 7, "hash": "a" * 64}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    base = tmp_path / "opt" / "app"
    make_release(base, OLD, "1" * 64)
    make_release(base, NEW, "2" * 64)
    (base / "current").symlink_to(f"releases/{OLD}")
    (base / ".history").write_text(f"{OLD}\n")
    served = App(base)
    yield served
    served.close()


def live(app: App, version: str = NEW, check: bool = False, **args: object) -> Outcome:
    params = {"base_dir": str(app.base), "version": version, "service_host": app.host, "service_port": app.port,
              "health_timeout": 2, "keep": 2, **args}
    return run(LIVE, params, check=check)


def hook_log(app: App) -> list[str]:
    path = app.base / "hook.log"
    return path.read_text().splitlines() if path.exists() else []


def test_switch_restart_health_prune_and_witness_in_one_execution_under_the_runs_lease(app: App) -> None:
    make_release(app.base, "0.9.0", "9" * 64)  # older than what keep=2 keeps
    outcome = live(app, lease={"run": RUN, "ttl": 60}, witness=HEAD)
    assert not outcome.failed, outcome.msg
    assert (outcome["previous"], outcome["current"], outcome["switched"], outcome["restarted"], outcome["healthy"]) == (OLD, NEW, True, True, True)
    assert os.readlink(app.base / "current") == f"releases/{NEW}" and (app.base / ".history").read_text() == f"{OLD}\n{NEW}\n"
    assert hook_log(app) == [f"deploy {NEW} from {OLD} in {app.base / 'releases' / NEW}"]
    assert outcome["removed"] == ["0.9.0"] and not (app.base / "releases" / "0.9.0").exists()
    assert json.loads((app.base / WITNESS).read_text()) == HEAD
    # Never given back here: the playbook does once every host is done.
    assert json.loads((app.base / LEASE).read_text())["token"] == "run-a" and outcome["token"] == "run-a"


def test_the_live_release_answering_its_version_changes_nothing(app: App) -> None:
    (app.base / ".history").write_text(f"{NEW}\n{OLD}\n")  # both went live once: pruning keeps them
    outcome = live(app, OLD, keep=5)
    assert not outcome.failed and not outcome["changed"] and not outcome["switched"] and not outcome["restarted"]
    assert hook_log(app) == []


def test_a_release_unpacked_again_is_restarted_even_when_live(app: App) -> None:
    outcome = live(app, OLD, restart=True, tampered=["app.py: changed (content)"])
    assert not outcome.failed and outcome["restarted"] and outcome["tampered"] == ["app.py: changed (content)"]


def test_a_host_another_run_holds_changes_nothing_and_names_it(app: App) -> None:
    (app.base / LEASE).write_text(json.dumps({"token": "run-b", "person": "dana", "purpose": "rollback", "expires": time.time() + 600}))
    outcome = live(app, lease={"run": {**RUN, "started": "2026-11-30T10:00:09Z"}, "wait": 0}, witness=HEAD)
    assert outcome.failed and outcome["busy"] and outcome["failure"] == "lease" and "dana (rollback)" in outcome.msg
    assert os.readlink(app.base / "current") == f"releases/{OLD}" and hook_log(app) == [] and not (app.base / WITNESS).exists()


def test_a_tampered_release_is_refused_and_the_host_said_to_run_what_it_ran(app: App) -> None:
    (app.base / "releases" / NEW / "extra.conf").write_text("debug = true\n")
    outcome = live(app, witness=HEAD)
    assert outcome.failed and outcome["failure"] == "switch" and "extra.conf: added" in outcome["tampered"]
    assert outcome["current"] == OLD and not outcome["switched"] and os.readlink(app.base / "current") == f"releases/{OLD}"
    assert hook_log(app) == [] and not (app.base / WITNESS).exists()


def test_a_failed_health_check_says_the_host_switched(app: App) -> None:
    app.answer = (503, b"{}")
    outcome = live(app, health_timeout=1, witness=HEAD)
    assert outcome.failed and outcome["failure"] == "health" and outcome["switched"] and outcome["current"] == NEW
    assert "did not answer 200 with version 2.0.0" in outcome.msg and not (app.base / WITNESS).exists()


def test_check_mode_takes_no_lease_and_writes_nothing(app: App) -> None:
    outcome = live(app, check=True, lease={"run": RUN}, witness=HEAD)
    assert not outcome.failed and outcome["switched"] and outcome["restarted"]
    assert os.readlink(app.base / "current") == f"releases/{OLD}" and not (app.base / LEASE).exists() and not (app.base / WITNESS).exists()


def test_a_version_that_is_not_a_plain_name_is_refused_before_anything(app: App) -> None:
    outcome = live(app, "../1.0.0", lease={"run": RUN})
    assert outcome.failed and outcome["failure"] == "inputs" and not (app.base / LEASE).exists()


@pytest.mark.parametrize(("setting", "said"), [({"keep": 1}, "keep must be at least 2"), ({"health_timeout": 0}, "health_timeout must be"),
                                               ({"health_path": "health"}, "health_path must start with /")])
def test_settings_the_steps_after_the_switch_refuse_are_refused_before_it(app: App, setting: dict[str, object], said: str) -> None:
    outcome = live(app, **setting)
    assert outcome.failed and outcome["failure"] == "inputs" and said in outcome.msg
    assert os.readlink(app.base / "current") == f"releases/{OLD}" and hook_log(app) == []


ACTION = load("roles/release_deploy/action_plugins/release_live.py")


def on_the_host(params: dict[str, object], check: bool = False) -> dict[str, object]:
    """What the action plugin's program prints when python3 runs it (another process, as on a host): the same work."""
    sources = ACTION.HOST.read_sources(REPO / "roles/release_deploy/module_utils", ACTION.UTILS)
    checked = ACTION.HOST.checked(ACTION.HOST.argument_spec(sources[-1][1]), params)
    program = ACTION.HOST.program(sources, "release_live", "put_live", checked, check)
    ran = subprocess.run(["python3", "-"], input=program, capture_output=True, text=True, check=True)
    line = next(line for line in ran.stdout.splitlines() if line.startswith(ACTION.HOST.RESULT_MARK))
    result: dict[str, object] = json.loads(line[len(ACTION.HOST.RESULT_MARK):])
    return result


def test_the_host_python_path_does_the_same_work_without_the_module_wrapper(app: App) -> None:
    params = {"base_dir": str(app.base), "version": NEW, "service_host": app.host, "service_port": app.port, "health_timeout": 2,
              "keep": "5", "lease": {"run": RUN}, "witness": HEAD}
    result = on_the_host(params)
    assert not result.get("failed"), result
    assert (result["previous"], result["current"], result["switched"], result["restarted"]) == (OLD, NEW, True, True)
    assert os.readlink(app.base / "current") == f"releases/{NEW}" and json.loads((app.base / WITNESS).read_text()) == HEAD
    assert json.loads((app.base / LEASE).read_text())["token"] == "run-a"
    app.answer = (503, b"{}")
    failed = on_the_host({**params, "version": OLD, "health_timeout": 1})
    assert failed["failed"] and failed["failure"] == "health" and failed["switched"] and failed["current"] == OLD


def test_the_host_python_path_refuses_what_the_module_refuses() -> None:
    sources = ACTION.HOST.read_sources(REPO / "roles/release_deploy/module_utils", ACTION.UTILS)
    spec = ACTION.HOST.argument_spec(sources[-1][1])
    for bad in ({"version": "1"}, {"base_dir": "/x", "version": "1", "keep": "many"}, {"base_dir": "/x", "version": "1", "colour": 1}):
        with pytest.raises(ValueError):
            ACTION.HOST.checked(spec, bad)
