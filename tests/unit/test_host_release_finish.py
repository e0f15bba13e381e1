"""roles/release_deploy/library/release_finish.py: restart, the health check, and pruning that never removes what is live."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.host_modules import App, Outcome, load, make_release, run

FINISH = load("roles/release_deploy/library/release_finish.py")


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return tmp_path / "opt" / "app"


@pytest.fixture
def app(base: Path) -> Iterator[App]:
    base.mkdir(parents=True)
    served = App(base)
    yield served
    served.close()


def live(base: Path, version: str) -> None:
    make_release(base, version, version[0] * 64)
    link = base / "current"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(f"releases/{version}")


def finish(app: App, version: str, check: bool = False, **args: object) -> Outcome:
    params = {
        "base_dir": str(app.base), "version": version, "service_host": app.host, "service_port": app.port,
        "health_timeout": 2, "switched": True, **args,
    }
    return run(FINISH, params, check=check)


def hook_log(base: Path) -> list[str]:
    path = base / "hook.log"
    return path.read_text().splitlines() if path.exists() else []


def test_a_switched_release_is_restarted_and_answers(app: App) -> None:
    live(app.base, "1.0.0")
    outcome = finish(app, "1.0.0", previous="0.9.0")
    assert not outcome.failed, outcome.msg
    assert outcome["restarted"] and outcome["healthy"] and outcome["failure"] == "" and outcome["restart_output"] == ["restarted 1.0.0"]
    assert hook_log(app.base) == [f"deploy 1.0.0 from 0.9.0 in {app.base / 'releases' / '1.0.0'}"]


def test_a_release_already_answering_is_not_restarted(app: App) -> None:
    live(app.base, "1.0.0")
    outcome = finish(app, "1.0.0", switched=False)
    assert not outcome.failed and not outcome["restarted"] and outcome["healthy"] and not outcome["changed"]
    assert hook_log(app.base) == []


def test_an_unswitched_release_that_does_not_answer_is_restarted(app: App) -> None:
    live(app.base, "1.0.0")
    app.answer = (503, b"{}")
    outcome = finish(app, "1.0.0", switched=False, health_timeout=1)
    assert outcome["restarted"] and hook_log(app.base) == ["deploy 1.0.0 from none in " + str(app.base / "releases" / "1.0.0")]
    assert outcome.failed and outcome["failure"] == "health"


def test_an_application_answering_another_version_fails_the_health_step(app: App) -> None:
    live(app.base, "1.0.0")
    app.answer = (200, json.dumps({"version": "0.9.0"}).encode())
    outcome = finish(app, "1.0.0", health_timeout=1)
    assert outcome.failed and outcome["failure"] == "health" and not outcome["healthy"]
    assert "did not answer 200 with version 1.0.0 within 1 s" in outcome.msg and 'version "0.9.0"' in outcome.msg
    assert "restarted 1.0.0" in outcome.msg, "the message says what the hook printed"


@pytest.mark.parametrize(("status", "body", "said"), [(500, b'{"version": "1.0.0"}', "status 500"), (200, b"<html>", "the answer is not JSON")])
def test_an_error_or_a_body_that_is_not_json_is_not_healthy(app: App, status: int, body: bytes, said: str) -> None:
    live(app.base, "1.0.0")
    app.answer = (status, body)
    outcome = finish(app, "1.0.0", health_timeout=1)
    assert outcome.failed and outcome["failure"] == "health" and said in outcome.msg


def test_a_failing_hook_fails_the_restart_step_with_its_code_and_output(app: App) -> None:
    live(app.base, "1.0.0")
    (app.base / "releases" / "1.0.0" / "bin" / "restart").write_text("#!/bin/sh\necho cannot bind port\nexit 7\n")
    outcome = finish(app, "1.0.0")
    assert outcome.failed and outcome["failure"] == "restart"
    assert outcome["error"]["step"] == "restart" and outcome["error"]["rc"] == 7 and outcome["error"]["output"] == ["cannot bind port"]
    assert "exited with 7: cannot bind port" in outcome.msg


def test_a_hook_that_cannot_run_fails_before_it_runs(app: App) -> None:
    live(app.base, "1.0.0")
    (app.base / "releases" / "1.0.0" / "bin" / "restart").chmod(0o644)
    outcome = finish(app, "1.0.0")
    assert outcome.failed and outcome["failure"] == "restart" and outcome["error"]["step"] == "hook"
    assert "is not executable" in outcome.msg


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ({"keep": 1}, "keep must be at least 2 (the live release and one to roll back to), not 1"),
        ({"health_timeout": 0}, "health_timeout must be at least 1, not 0"),
        ({"health_path": "health"}, "health_path must start with /, not 'health'"),
    ],
)
def test_inputs_that_would_defeat_the_checks_are_refused(app: App, args: dict[str, object], said: str) -> None:
    live(app.base, "1.0.0")
    outcome = finish(app, "1.0.0", **args)
    assert outcome.failed and outcome["failure"] == "inputs" and said in outcome.msg and hook_log(app.base) == []


def test_check_mode_neither_restarts_nor_prunes(app: App) -> None:
    for version in ("0.1.0", "0.2.0", "0.3.0"):
        make_release(app.base, version, version[0] * 64)
    (app.base / ".history").write_text("0.1.0\n0.2.0\n0.3.0\n")
    live(app.base, "1.0.0")
    outcome = finish(app, "1.0.0", check=True, keep=2)
    assert not outcome.failed and outcome["restarted"] and "would restart" in outcome.msg
    assert outcome["removed"] == ["0.1.0", "0.2.0"] and hook_log(app.base) == []
    assert sorted(os.listdir(app.base / "releases")) == ["0.1.0", "0.2.0", "0.3.0", "1.0.0"]


def test_pruning_keeps_the_live_release_and_the_newest_by_history(app: App) -> None:
    for version in ("0.1.0", "0.2.0", "0.3.0", "0.4.0"):
        make_release(app.base, version, version[0] * 64)
    (app.base / "releases" / ".5.0.0.partial").mkdir()
    (app.base / ".history").write_text("0.4.0\n0.1.0\n0.3.0\n0.2.0\n")  # 0.2.0 went live last before 1.0.0
    live(app.base, "1.0.0")
    outcome = finish(app, "1.0.0", keep=3)
    assert not outcome.failed, outcome.msg
    assert outcome["kept"] == ["1.0.0", "0.2.0", "0.3.0"] and outcome["removed"] == ["0.1.0", "0.4.0", ".5.0.0.partial"]
    assert sorted(os.listdir(app.base / "releases")) == ["0.2.0", "0.3.0", "1.0.0"]


def test_pruning_never_removes_what_current_points_to_even_when_it_is_not_the_new_version(base: Path) -> None:
    for version in ("0.1.0", "0.2.0", "0.3.0", "1.0.0"):
        make_release(base, version, version[0] * 64)
    (base / "current").symlink_to("releases/0.1.0")  # e.g. a rollback happened meanwhile
    (base / ".history").write_text("1.0.0\n0.2.0\n0.3.0\n")
    kept, removed = FINISH.plan_prune(str(base), 2, "1.0.0")
    assert kept == ["1.0.0", "0.1.0"] and removed == ["0.2.0", "0.3.0"]
    kept, removed = FINISH.plan_prune(str(base), 3, "1.0.0")
    assert kept == ["1.0.0", "0.1.0", "0.3.0"] and removed == ["0.2.0"]


def test_pruning_ignores_links_files_and_history_lines_of_releases_gone(base: Path) -> None:
    make_release(base, "1.0.0", "1" * 64)
    make_release(base, "0.9.0", "0" * 64)
    (base / "releases" / "notes.txt").write_text("x")
    (base / "releases" / "alias").symlink_to("1.0.0")
    (base / "releases" / ".hidden").mkdir()
    (base / ".history").write_text("0.1.0\n0.2.0\n0.9.0\n")
    assert FINISH.plan_prune(str(base), 2, "1.0.0") == (["1.0.0", "0.9.0"], [])
    assert FINISH.plan_prune(str(base / "nothing"), 2, "1.0.0") == ([], [])


def test_health_url_brackets_ipv6() -> None:
    assert FINISH.health_url("::1", 80, "/health") == "http://[::1]:80/health"
    assert FINISH.health_url("[::1]", 80, "/h") == "http://[::1]:80/h"
    assert FINISH.health_url("app", 8080, "/health") == "http://app:8080/health"
