"""release_live's `steps`: the switch, the restart and the health check in separate executions (user tasks run between
them, roles/release_deploy/tasks/user_tasks_live.yml), each saying what the host runs as the switch did."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.host_modules import App, Outcome, load, make_release, run

LIVE = load("roles/release_deploy/library/release_live.py")
OLD, NEW = "1.0.0", "2.0.0"
WITNESS = ".relpromote-witness.json"
HEAD = {"project": "shop", "environment": "qa", "seq": 7, "hash": "a" * 64}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    base = tmp_path / "opt" / "app"
    make_release(base, OLD, "1" * 64)
    make_release(base, NEW, "2" * 64)
    make_release(base, "0.9.0", "9" * 64)
    (base / "current").symlink_to(f"releases/{OLD}")
    (base / ".history").write_text(f"0.9.0\n{OLD}\n")
    served = App(base)
    yield served
    served.close()


def live(app: App, steps: list[str], check: bool = False, **args: object) -> Outcome:
    params = {"base_dir": str(app.base), "version": NEW, "service_host": app.host, "service_port": app.port,
              "health_timeout": 2, "keep": 2, "witness": HEAD, "steps": steps, **args}
    return run(LIVE, params, check=check)


def hook_log(app: App) -> list[str]:
    path = app.base / "hook.log"
    return path.read_text().splitlines() if path.exists() else []


def test_switch_then_restart_then_health_each_in_its_own_execution(app: App) -> None:
    switched = live(app, ["switch"])
    assert not switched.failed, switched.msg
    assert (switched["previous"], switched["current"], switched["switched"], switched["restarted"]) == (OLD, NEW, True, False)
    assert os.readlink(app.base / "current") == f"releases/{NEW}" and hook_log(app) == []
    assert (app.base / "releases" / "0.9.0").exists() and not (app.base / WITNESS).exists()

    earlier = {"previous": switched["previous"], "switched": switched["switched"]}
    restarted = live(app, ["restart"], switched_earlier=earlier)
    assert not restarted.failed, restarted.msg
    assert (restarted["previous"], restarted["current"], restarted["switched"], restarted["restarted"]) == (OLD, NEW, True, True)
    assert hook_log(app) == [f"deploy {NEW} from {OLD} in {app.base / 'releases' / NEW}"]
    assert (app.base / "releases" / "0.9.0").exists() and not (app.base / WITNESS).exists()
    assert (app.base / ".history").read_text() == f"0.9.0\n{OLD}\n{NEW}\n"

    healthy = live(app, ["health"], switched_earlier=earlier)
    assert not healthy.failed, healthy.msg
    assert (healthy["previous"], healthy["current"], healthy["switched"], healthy["healthy"], healthy["restarted"]) == (OLD, NEW, True, True, False)
    assert healthy["removed"] == ["0.9.0"] and not (app.base / "releases" / "0.9.0").exists()
    assert json.loads((app.base / WITNESS).read_text()) == HEAD
    assert len(hook_log(app)) == 1


def test_a_health_step_that_never_sees_the_version_fails_as_the_health_check_and_still_says_switched(app: App) -> None:
    switched = live(app, ["switch"])
    earlier = {"previous": switched["previous"], "switched": switched["switched"]}
    app.answer = (200, json.dumps({"version": OLD}).encode())  # the application still runs the old release
    failed = live(app, ["health"], switched_earlier=earlier, health_timeout=1)
    assert failed.failed and failed["failure"] == "health" and f"did not answer 200 with version {NEW}" in failed.msg
    assert (failed["previous"], failed["current"], failed["switched"]) == (OLD, NEW, True)
    assert not (app.base / WITNESS).exists() and (app.base / "releases" / "0.9.0").exists()


def test_check_mode_switch_alone_changes_nothing(app: App) -> None:
    outcome = live(app, ["switch"], check=True)
    assert not outcome.failed and outcome["switched"] and not outcome["restarted"]
    assert os.readlink(app.base / "current") == f"releases/{OLD}" and hook_log(app) == []


def test_no_step_reads_the_link_and_changes_nothing(app: App) -> None:
    outcome = live(app, [])
    assert not outcome.failed, outcome.msg
    assert (outcome["previous"], outcome["current"], outcome["switched"], outcome["restarted"]) == (OLD, OLD, False, False)
    assert os.readlink(app.base / "current") == f"releases/{OLD}" and hook_log(app) == []
    assert (app.base / "releases" / "0.9.0").exists() and not (app.base / WITNESS).exists()
