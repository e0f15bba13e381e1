"""roles/release_deploy/library/release_finish.py, pinned exactly (issue 18's mutation score): its options' defaults
(the health path, the application's address, what is kept), and every field of its result when it succeeds, would
restart in check mode, and fails."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.host_modules import App, Outcome, load, make_release, run

FINISH = load("roles/release_deploy/library/release_finish.py")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    base = tmp_path / "opt" / "app"
    make_release(base, "1.0.0", "1" * 64)
    (base / "current").symlink_to("releases/1.0.0")
    served = App(base)
    yield served
    served.close()


def finish(app: App, check: bool = False, **args: object) -> Outcome:
    return run(FINISH, {"base_dir": str(app.base), "version": "1.0.0", "service_host": app.host, "service_port": app.port, **args}, check=check)


def result_of(outcome: Outcome) -> dict[str, object]:
    return {k: v for k, v in outcome.result.items() if k != "invocation"}


def test_a_release_that_answers_returns_every_field_and_is_asked_on_the_health_path(app: App) -> None:
    url = f"http://{app.host}:{app.port}/health"
    assert result_of(finish(app)) == {"changed": False, "restarted": False, "healthy": True, "failure": "", "kept": ["1.0.0"], "removed": [],
                                      "health": {"url": url, "status": 200, "version": "1.0.0", "msg": "OK"}}
    assert app.asked == ["/health"], "the default health path, asked once, not restarted: switched defaults to false"
    assert not (app.base / "hook.log").exists()


def test_the_previous_version_defaults_to_none_for_the_hook(app: App) -> None:
    outcome = finish(app, switched=True)
    assert result_of(outcome) == {"changed": True, "restarted": True, "healthy": True, "failure": "", "kept": ["1.0.0"], "removed": [],
                                  "restart_output": ["restarted 1.0.0"],
                                  "health": {"url": f"http://{app.host}:{app.port}/health", "status": 200, "version": "1.0.0", "msg": "OK"}}
    assert (app.base / "hook.log").read_text() == f"deploy 1.0.0 from none in {app.base / 'releases' / '1.0.0'}\n"


def test_five_releases_are_kept_by_default(app: App) -> None:
    versions = [f"0.{i}.0" for i in range(1, 7)]
    for version in versions:
        make_release(app.base, version, "0" * 64)
    (app.base / ".history").write_text("".join(v + "\n" for v in versions))
    outcome = finish(app)
    assert outcome["kept"] == ["1.0.0", "0.6.0", "0.5.0", "0.4.0", "0.3.0"] and outcome["removed"] == ["0.1.0", "0.2.0"]
    assert outcome["changed"] is True and not outcome["restarted"], "pruning alone is a change"
    assert sorted(os.listdir(app.base / "releases")) == ["0.3.0", "0.4.0", "0.5.0", "0.6.0", "1.0.0"]


def test_the_application_is_on_localhost_8080_unless_told(tmp_path: Path) -> None:
    base = tmp_path / "app"
    make_release(base, "1.0.0", "1" * 64)
    outcome = run(FINISH, {"base_dir": str(base), "version": "1.0.0", "switched": True}, check=True)
    assert result_of(outcome) == {"changed": True, "restarted": True, "healthy": False, "failure": "", "kept": ["1.0.0"], "removed": [],
                                  "msg": "would restart the application and wait until http://localhost:8080/health answers 1.0.0"}


def test_base_dir_and_version_are_required_and_base_dir_is_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for args, missing in (({"version": "1.0.0"}, "base_dir"), ({"base_dir": str(tmp_path)}, "version")):
        outcome = run(FINISH, args, check=True)
        assert outcome.failed and outcome.msg == f"missing required arguments: {missing}", outcome.msg
    make_release(tmp_path / "app", "1.0.0", "1" * 64)
    monkeypatch.setenv("HOME", str(tmp_path))
    outcome = run(FINISH, {"base_dir": "~/app", "version": "1.0.0", "switched": True}, check=True)
    assert not outcome.failed and outcome["kept"] == ["1.0.0"], "~ is the home folder, as for every path option"


def test_a_failed_step_reports_the_restart_that_happened(app: App) -> None:
    app.answer = (503, b"{}")
    outcome = finish(app, switched=True, health_timeout=1, restart_command="/bin/echo up")
    assert outcome.failed and outcome["failure"] == "health" and outcome["changed"] is True and outcome["restarted"] is True
    assert outcome["restart_output"] == ["up"] and "error" not in outcome.result
    refused = finish(app, keep=1)
    assert result_of(refused) == {"changed": False, "restarted": False, "healthy": False, "failure": "inputs", "failed": True,
                                  "msg": "keep must be at least 2 (the live release and one to roll back to), not 1"}


def test_a_hook_that_fails_puts_its_error_in_the_result(app: App) -> None:
    outcome = finish(app, switched=True, restart_command="/bin/false")
    assert outcome["failure"] == "restart" and outcome["changed"] is True
    assert outcome["error"] == {"step": "restart", "command": "/bin/false", "rc": 1, "output": []}
