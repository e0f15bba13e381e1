"""roles/release_deploy/module_utils/release_live.py, pinned exactly (issue 18's mutation score): every field of the
switch's result and refusals, the health answer as the modules return it, the boundaries of the inputs, the steps a
split execution takes, and the lease it renews."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.host_modules import App, load, make_release

load("roles/release_deploy/library/release_live.py")
LIVE = sys.modules["ansible.module_utils.release_live"]
HEALTH = sys.modules["ansible.module_utils.release_health"]
OLD, NEW = "1.0.0", "2.0.0"
LEASE, WITNESS = ".relpromote-lock.json", ".relpromote-witness.json"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    base = tmp_path / "opt" / "app"
    make_release(base, OLD, "1" * 64)
    make_release(base, NEW, "2" * 64)
    return base


@pytest.fixture
def app(base: Path) -> Iterator[App]:
    (base / "current").symlink_to(f"releases/{OLD}")
    (base / ".history").write_text(f"{OLD}\n")
    served = App(base)
    yield served
    served.close()


def switch(base: Path, target: str, version: str | None = None, history: bool = True, check: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = LIVE.switch(str(base / "current"), target, version, str(base / ".history") if history else None, check)
    return result


def test_a_first_switch_returns_exactly_what_it_did(base: Path) -> None:
    assert switch(base, f"releases/{OLD}") == {"changed": True, "previous": "", "current": OLD, "switched": True, "history_appended": True}
    assert os.readlink(base / "current") == f"releases/{OLD}" and (base / ".history").read_text() == f"{OLD}\n"
    assert switch(base, f"releases/{NEW}", "2.0.0-x") == {"changed": True, "previous": OLD, "current": "2.0.0-x", "switched": True,
                                                          "history_appended": True}
    assert (base / ".history").read_text() == f"{OLD}\n2.0.0-x\n"
    assert switch(base, f"releases/{NEW}", "2.0.0-x") == {"changed": False, "previous": NEW, "current": "2.0.0-x", "switched": False,
                                                          "history_appended": False}
    assert sorted(p.name for p in base.iterdir()) == [".history", "current", "releases"]


def test_without_a_history_nothing_is_appended(base: Path) -> None:
    assert switch(base, f"releases/{OLD}", history=False)["history_appended"] is False and not (base / ".history").exists()
    assert switch(base, f"releases/{OLD}", history=False)["changed"] is False


def test_a_release_not_unpacked_is_refused_with_the_unchanged_result(base: Path) -> None:
    switch(base, f"releases/{OLD}")
    (base / "releases" / "3.0.0").mkdir()
    with pytest.raises(LIVE.Refused) as refused:
        switch(base, "releases/3.0.0")
    release = base / "releases" / "3.0.0"
    assert refused.value.msg == str(refused.value) == f"{release} is not a completely unpacked release (no .release/DIGEST)"
    assert refused.value.result == {"changed": False, "previous": OLD, "current": "3.0.0", "switched": False, "history_appended": False}
    checked = switch(base, "releases/3.0.0", check=True)
    assert checked == {"changed": True, "previous": OLD, "current": "3.0.0", "switched": True, "history_appended": True,
                       "msg": f"{release} is not unpacked yet (check mode)"}
    assert os.readlink(base / "current") == f"releases/{OLD}" and (base / ".history").read_text() == f"{OLD}\n"


def test_a_tampered_release_is_refused_naming_every_difference(base: Path) -> None:
    switch(base, f"releases/{OLD}")
    for name in "abcdefghij":
        (base / "releases" / NEW / name).write_text("")
    with pytest.raises(LIVE.Refused) as refused:
        switch(base, f"releases/{NEW}", check=True)
    problems = [f"{name}: added" for name in "abcdefghij"]
    assert refused.value.result == {"changed": False, "previous": OLD, "current": NEW, "switched": False, "history_appended": False,
                                     "tampered": problems}
    assert refused.value.msg == (f"{base / 'releases' / NEW} differs from what was unpacked from its verified artifact: "
                                 f"{', '.join(problems[:8])} and 2 more; refusing to switch to it")


def test_something_that_is_not_a_link_is_refused_with_no_result(base: Path) -> None:
    (base / "current").write_text("")
    with pytest.raises(LIVE.Refused) as refused:
        switch(base, f"releases/{OLD}")
    assert refused.value.msg == f"{base / 'current'} exists and is not a symbolic link; move it away by hand" and refused.value.result == {}


def test_a_lost_history_line_is_appended_in_check_mode_only_as_a_plan(base: Path) -> None:
    switch(base, f"releases/{OLD}")
    (base / ".history").write_text(f"{NEW}\n")
    assert switch(base, f"releases/{OLD}", check=True) == {"changed": True, "previous": OLD, "current": OLD, "switched": False,
                                                            "history_appended": True}
    assert (base / ".history").read_text() == f"{NEW}\n"


def test_version_and_last_line_helpers(tmp_path: Path) -> None:
    assert LIVE.version_of("releases/1.0.0/") == "1.0.0" and LIVE.version_of("") == "" and LIVE.version_of(None) == ""
    history = tmp_path / "h"
    history.write_text("1\n 2 \n\n")
    assert LIVE.last_line(str(history)) == "2" and LIVE.last_line(str(tmp_path / "none")) is None
    history.write_text("\n")
    assert LIVE.last_line(str(history)) is None
    assert LIVE.history_newest_first(str(history)) == [] and LIVE.history_newest_first(str(tmp_path / "none")) == []
    history.write_text("a\n\n b\nc\n")
    assert LIVE.history_newest_first(str(history)) == ["c", "b", "a"]


def test_the_health_answer_as_the_modules_return_it() -> None:
    assert LIVE.as_health(HEALTH.Answer(200, "1", None, "u")) == {"url": "u", "status": 200, "version": "1", "msg": "OK"}
    assert LIVE.as_health(HEALTH.Answer(503, None, None, "u")) == {"url": "u", "status": 503, "version": None, "msg": "HTTP Error 503"}
    assert LIVE.as_health(HEALTH.Answer(200, None, "the answer is not JSON", "u"))["msg"] == "the answer is not JSON"
    assert LIVE.as_health(HEALTH.Answer(None, None, "refused", "u")) == {"url": "u", "status": -1, "version": None, "msg": "refused"}
    assert LIVE.answers({"status": 200, "version": "1"}, "1") and not LIVE.answers({"status": 201, "version": "1"}, "1")
    assert not LIVE.answers({"status": 200, "version": "2"}, "1")


def test_asking_an_application_that_answers(app: App) -> None:
    url = LIVE.health_url(app.host, app.port, "/health")
    assert LIVE.ask(url) == {"url": url, "status": 200, "version": OLD, "msg": "OK"}
    assert LIVE.wait_until_healthy(url, OLD, 1) == {"url": url, "status": 200, "version": OLD, "msg": "OK"}


@pytest.mark.parametrize(("setting", "said"), [
    ({"keep": 1}, "keep must be at least 2 (the live release and one to roll back to), not 1"),
    ({"health_timeout": 0}, "health_timeout must be at least 1, not 0"),
    ({"health_path": "x/"}, "health_path must start with /, not 'x/'"),
])
def test_inputs_are_refused_at_their_exact_bounds(setting: dict[str, Any], said: str) -> None:
    fine = {"keep": 2, "health_timeout": 1, "health_path": "/"}
    assert LIVE.check_inputs(fine) is None
    with pytest.raises(LIVE.Failed) as failed:
        LIVE.check_inputs({**fine, **setting})
    assert (failed.value.failure, failed.value.msg, failed.value.error) == ("inputs", said, None)


def params(app: App, **args: Any) -> dict[str, Any]:
    return {"base_dir": str(app.base), "version": NEW, "service_host": app.host, "service_port": app.port, "health_timeout": 2, "keep": 5,
            "restart": False, "restart_command": "", "health_path": "/health", "lease": {}, "witness": {}, "tampered": [],
            "steps": ["switch", "restart", "health"], "switched_earlier": {}, **args}


def hook_log(app: App) -> list[str]:
    path = app.base / "hook.log"
    return path.read_text().splitlines() if path.exists() else []


def test_put_live_returns_every_field(app: App) -> None:
    result = LIVE.put_live(params(app, base_dir=str(app.base) + "/"), False)
    url = f"http://{app.host}:{app.port}/health"
    assert result == {"changed": True, "restarted": True, "healthy": True, "failure": "", "busy": False, "token": "", "tampered": [],
                      "previous": OLD, "current": NEW, "switched": True, "history_appended": True, "restart_output": [f"restarted {NEW}"],
                      "health": {"url": url, "status": 200, "version": NEW, "msg": "OK"}, "kept": [NEW, OLD], "removed": []}
    assert hook_log(app) == [f"deploy {NEW} from {OLD} in {app.base / 'releases' / NEW}"]


def test_the_switch_alone_stops_after_it(app: App) -> None:
    result = LIVE.put_live(params(app, steps=["switch"]), False)
    assert result["switched"] and not result["restarted"] and "kept" not in result and hook_log(app) == []
    assert os.readlink(app.base / "current") == f"releases/{NEW}"


def test_a_later_execution_restarts_as_the_earlier_switch_said(app: App) -> None:
    (app.base / "current").unlink()
    (app.base / "current").symlink_to(f"releases/{NEW}")
    result = LIVE.put_live(params(app, steps=["restart"], switched_earlier={"previous": OLD, "switched": True}, witness={"seq": 1}), False)
    assert (result["previous"], result["current"], result["switched"], result["restarted"]) == (OLD, NEW, True, True)
    assert "health" not in result and "kept" not in result and not (app.base / WITNESS).exists(), "no witness before the health check"
    assert hook_log(app) == [f"deploy {NEW} from {OLD} in {app.base / 'releases' / NEW}"]
    waited = LIVE.put_live(params(app, steps=["health"], switched_earlier={}, witness={"seq": 1}), False)
    assert (waited["previous"], waited["switched"], waited["restarted"], waited["healthy"]) == ("", False, False, True)
    assert waited["kept"] == [NEW, OLD] and json.loads((app.base / WITNESS).read_text()) == {"seq": 1}
    assert len(hook_log(app)) == 1, "the health step alone restarts nothing"
    assert waited["changed"] is False


def test_an_unswitched_release_that_answers_is_not_restarted_but_one_asked_to_be_is(app: App) -> None:
    (app.base / ".history").write_text(f"{NEW}\n{OLD}\n")  # both went live once: pruning keeps both
    result = LIVE.put_live(params(app, version=OLD), False)
    assert (result["switched"], result["restarted"], result["healthy"], result["changed"]) == (False, False, True, False)
    forced = LIVE.put_live(params(app, version=OLD, restart=True), False)
    assert forced["restarted"] and forced["changed"] and hook_log(app) == [f"deploy {OLD} from {OLD} in {app.base / 'releases' / OLD}"]


def test_pruning_alone_is_a_change(app: App) -> None:
    make_release(app.base, "0.1.0", "0" * 64)
    result = LIVE.put_live(params(app, version=OLD, keep=2), False)
    assert result["removed"] == ["0.1.0", NEW] and result["changed"] is True and not result["restarted"]
    assert sorted(os.listdir(app.base / "releases")) == [OLD]


def test_a_refused_switch_says_the_host_runs_what_it_ran(app: App) -> None:
    (app.base / "releases" / NEW / "x").write_text("")
    result = LIVE.put_live(params(app), False)
    assert result == {"changed": False, "restarted": False, "healthy": False, "failure": "switch", "busy": False, "token": "", "tampered": ["x: added"],
                      "previous": OLD, "current": OLD, "switched": False, "history_appended": False, "failed": True,
                      "msg": f"{app.base / 'releases' / NEW} differs from what was unpacked from its verified artifact: x: added; refusing to switch to it"}


def test_a_failing_restart_reports_its_error_and_the_switch(app: App) -> None:
    (app.base / "releases" / NEW / "bin" / "restart").write_text("#!/bin/sh\necho no\nexit 2\n")
    sys.modules["ansible.module_utils.release_integrity"].write_manifest(str(app.base / "releases" / NEW), "2" * 64)
    result = LIVE.put_live(params(app), False)
    assert result["failure"] == "restart" and result["failed"] and result["changed"] and result["switched"] and result["restarted"]
    assert result["error"] == {"step": "restart", "command": str(app.base / "current" / "bin" / "restart"), "rc": 2, "output": ["no"]}
    assert result["msg"] == f'the restart hook "{app.base / "current" / "bin" / "restart"}" exited with 2: no'


def test_a_failed_health_check_names_the_last_answer_and_the_hooks_output(app: App) -> None:
    app.answer = (200, json.dumps({"version": "0.0.1"}).encode())
    result = LIVE.put_live(params(app, health_timeout=1), False)
    url = f"http://{app.host}:{app.port}/health"
    assert result["failure"] == "health" and "error" not in result and result["changed"]
    assert result["msg"] == (f'{url} did not answer 200 with version {NEW} within 1 s; last answer: status 200, version "0.0.1" (OK); '
                             f'the restart hook "{app.base / "current" / "bin" / "restart"}" had exited with 0: restarted {NEW}')
    app.answer = (503, b"{}")
    silent = LIVE.put_live(params(app, version=OLD, health_timeout=1, restart_command="/bin/true"), False)
    assert silent["msg"].endswith('version "(none)" (HTTP Error 503); the restart hook "/bin/true" had exited with 0: (no output)')


def test_a_long_hook_output_is_cut_to_its_end_in_the_message(app: App) -> None:
    app.answer = (503, b"{}")
    hook = app.base / "releases" / OLD / "bin" / "restart"
    hook.write_text("#!/bin/sh\n" + "".join(f"echo {c * 60}\n" for c in "abcde"))
    sys.modules["ansible.module_utils.release_integrity"].write_manifest(str(app.base / "releases" / OLD), "1" * 64)
    result = LIVE.put_live(params(app, version=OLD, restart=True, health_timeout=1), False)
    joined = " | ".join(c * 60 for c in "abcde")
    assert result["msg"].endswith("had exited with 0: " + joined[-150:])


def test_check_mode_says_it_would_restart_and_waits_for_nothing(app: App) -> None:
    started = time.monotonic()
    app.answer = (503, b"{}")
    result = LIVE.put_live(params(app, health_timeout=10), True)
    url = f"http://{app.host}:{app.port}/health"
    assert result["msg"] == f"would restart the application and wait until {url} answers {NEW}"
    assert result["restarted"] and not result["healthy"] and "failed" not in result and time.monotonic() - started < 8
    assert hook_log(app) == [] and os.readlink(app.base / "current") == f"releases/{OLD}"


def test_a_version_that_is_not_a_plain_name_is_refused_naming_it(app: App) -> None:
    result = LIVE.put_live(params(app, version="a/b"), False)
    assert result == {"changed": False, "restarted": False, "healthy": False, "failure": "inputs", "busy": False, "token": "", "tampered": [],
                      "failed": True, "msg": "version \"a/b\" is not a plain version name (letters, digits, '.', '_', '+', '-')"}
    assert LIVE.put_live(params(app, keep=0), False)["msg"].startswith("keep must be at least 2")


def test_the_lease_is_taken_with_the_runs_token_and_its_settings(app: App) -> None:
    run = {"id": "run-a", "person": "oscar", "started": "2026-11-30T10:00:00Z"}
    result = LIVE.put_live(params(app, steps=["switch"], lease={"run": run, "ttl": 60}), False)
    lease = json.loads((app.base / LEASE).read_text())
    assert result["token"] == "run-a" and lease["token"] == "run-a" and 50 < lease["expires"] - time.time() <= 60
    other = app.base.parent / "other"
    assert LIVE.take_lease({"token": "given", "run": run}, str(other)) == "given", "an explicit token first"
    assert 1790 < json.loads((other / LEASE).read_text())["expires"] - time.time() <= 1800, "ttl defaults to 1800 s"
    fresh = app.base.parent / "new"
    token = LIVE.take_lease({}, str(fresh))
    assert len(token) == 12 and oct(fresh.stat().st_mode & 0o777) == "0o755"
    holder = {"token": "run-b", "person": "dana", "purpose": "rollback", "started": "2026-11-30T09:00:00Z", "expires": time.time() + 600}
    (app.base / LEASE).write_text(json.dumps(holder))
    busy = LIVE.put_live(params(app, lease={"run": run, "wait": 0}), False)
    assert busy["busy"] and busy["failure"] == "lease" and busy["holder"] == holder and busy["msg"].startswith("this host is locked by dana (rollback)")
    broke = LIVE.take_lease({"run": run, "breakable": ["run-b"]}, str(app.base))
    assert broke == "run-a" and json.loads((app.base / LEASE).read_text())["token"] == "run-a"


def test_a_younger_holder_is_waited_for_as_long_as_the_lease_says(app: App) -> None:
    run = {"id": "run-a", "started": "2026-11-30T10:00:00Z"}
    (app.base / LEASE).write_text(json.dumps({"token": "young", "started": "2026-11-30T11:00:00Z", "expires": time.time() + 600}))
    started = time.monotonic()
    with pytest.raises(LIVE.Busy):
        LIVE.take_lease({"run": run, "wait": 1}, str(app.base))
    assert 0.9 < time.monotonic() - started < 15


def test_a_controller_that_is_gone_stops_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as orphan:
        monkeypatch.setattr(sys, "stdout", orphan)
        assert LIVE.controller_gone() is True
        with pytest.raises(SystemExit) as stopped:
            LIVE.stop_if_abandoned()
        assert stopped.value.code == 1
        monkeypatch.undo()
    read, write = os.pipe()
    with os.fdopen(write, "w") as listened, os.fdopen(read):
        monkeypatch.setattr(sys, "stdout", listened)
        assert LIVE.controller_gone() is False and LIVE.stop_if_abandoned() is None
        monkeypatch.undo()


def test_pruning_reads_past_a_file_among_the_releases(tmp_path: Path) -> None:
    base = tmp_path / "b"
    make_release(base, "1.0.0", "1" * 64)
    make_release(base, "0.9.0", "0" * 64)
    (base / "releases" / "0.0.0.txt").write_text("")  # sorts before every release
    (base / ".history").write_text("0.9.0\n")
    assert LIVE.plan_prune(str(base), 2, "1.0.0") == (["1.0.0", "0.9.0"], [])


def test_asking_an_application_that_never_answers_gives_up_at_the_timeout() -> None:
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # connections are accepted by the kernel, never answered
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/health"
        started = time.monotonic()
        answer = LIVE.ask(url, 0.3)
        assert answer["status"] == -1 and "timed out" in answer["msg"] and time.monotonic() - started < 10
    finally:
        silent.close()


def test_a_lease_of_one_second_is_one_second_and_folders_are_0755_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        LIVE.take_lease({"ttl": 1, "run": {"id": "r"}}, str(tmp_path / "new"))
    finally:
        os.umask(old)
    assert oct((tmp_path / "new").stat().st_mode & 0o777) == "0o755"
    assert json.loads((tmp_path / "new" / LEASE).read_text())["expires"] - time.time() <= 1


def test_a_link_named_with_a_trailing_slash_or_an_x_is_that_link(base: Path) -> None:
    for _ in range(2):  # the second time the link exists and points to a folder: still replaced, never refused
        assert LIVE.switch(str(base / "current") + "/", f"releases/{OLD}", None, None, False)["current"] == OLD
    assert os.readlink(base / "current") == f"releases/{OLD}"
    LIVE.switch(str(base / "liveX"), f"releases/{NEW}", None, None, False)
    assert os.readlink(base / "liveX") == f"releases/{NEW}" and not os.path.lexists(base / "live")


def test_no_step_says_what_the_host_runs_and_no_steps_given_means_all(app: App) -> None:
    assert LIVE.put_live(params(app, steps=[]), False) == {"changed": False, "restarted": False, "healthy": False, "failure": "", "busy": False,
                                                           "token": "", "tampered": [], "previous": OLD, "current": OLD, "switched": False}
    (app.base / "current").unlink()
    assert LIVE.put_live(params(app, steps=[]), False)["current"] == ""
    (app.base / "current").symlink_to(f"releases/{OLD}")
    everything = LIVE.put_live(params(app, steps=None), False)
    assert everything["switched"] and everything["restarted"] and everything["healthy"] and everything["kept"] == [NEW, OLD]


def test_a_busy_host_still_says_what_this_run_was_given(app: App) -> None:
    holder = {"token": "run-b", "started": "2026-11-30T09:00:00Z", "expires": time.time() + 600}
    (app.base / LEASE).write_text(json.dumps(holder))
    busy = LIVE.put_live(params(app, lease={"run": {"id": "run-a", "started": "2026-11-30T10:00:00Z"}, "wait": 0}, tampered=["x: added"]), False)
    assert {k: v for k, v in busy.items() if k != "msg"} == {"changed": False, "restarted": False, "healthy": False, "failure": "lease", "busy": True,
                                                             "token": "", "tampered": ["x: added"], "failed": True, "holder": holder}


def test_a_base_dir_ending_in_x_is_that_folder(tmp_path: Path) -> None:
    base = tmp_path / "appX"
    make_release(base, OLD, "1" * 64)
    (base / "current").symlink_to(f"releases/{OLD}")
    given = {"base_dir": str(base), "version": OLD, "steps": [], "tampered": [], "lease": {}, "keep": 5, "health_timeout": 1, "health_path": "/"}
    assert LIVE.put_live(given, False)["current"] == OLD


def test_the_modules_process_exits_1_when_a_step_failed_and_0_otherwise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ansible.module_utils import basic  # type: ignore[import-untyped]

    module = sys.modules["roles.release_deploy.library.release_live"]
    codes: list[tuple[object, bool]] = []
    for version in ("no/such version", "1.0.0"):
        args: dict[str, Any] = {"base_dir": str(tmp_path), "version": version, "steps": [], "_ansible_check_mode": True, "_ansible_no_log": False}
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
        basic._ANSIBLE_PROFILE = "legacy"
        try:
            with pytest.raises(SystemExit) as ended:
                module.main()
        finally:
            basic._ANSIBLE_ARGS = None
            basic._ANSIBLE_PROFILE = None
        printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        codes.append((ended.value.code, bool(printed.get("failed"))))
    assert codes == [(1, True), (0, False)], "fail_json for a failed step (exit status 1), exit_json otherwise"
