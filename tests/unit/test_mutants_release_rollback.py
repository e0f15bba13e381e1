"""roles/release_rollback/library/release_rollback.py, pinned exactly (issue 18's mutation score): every field of the
result of each outcome, each refusal's words, the lease's settings, and which process a host's application is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.host_modules import App, Outcome, load, make_release, run

ROLLBACK = load("roles/release_rollback/library/release_rollback.py")
OLD, NEW = "1.0.0", "2.0.0"
DIGEST = {OLD: "1" * 64, NEW: "2" * 64}
LEASE, WITNESS = ".relpromote-lock.json", ".relpromote-witness.json"
RUN = {"id": "run-a", "person": "oscar", "purpose": "rollback to 1.0.0", "started": "2026-11-30T10:00:00Z"}
BASE_RESULT = {"changed": False, "previous": NEW, "current": NEW, "switched": False, "present": True, "restarted": False, "stopped": False,
               "token": "", "busy": False, "lease_released": False}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    base = tmp_path / "opt" / "app"
    make_release(base, OLD, DIGEST[OLD])
    make_release(base, NEW, DIGEST[NEW])
    (base / "current").symlink_to(f"releases/{NEW}")
    (base / ".history").write_text(f"{OLD}\n{NEW}\n")
    served = App(base)
    yield served
    served.close()


def rollback(app: App, version: str = OLD, check: bool = False, **args: object) -> Outcome:
    params = {"base_dir": str(app.base), "version": version, "digest": DIGEST.get(version, "9" * 64),
              "service_host": app.host, "service_port": app.port, "health_timeout": 2, **args}
    return run(ROLLBACK, params, check=check)


def result_of(outcome: Outcome) -> dict[str, Any]:
    return {k: v for k, v in outcome.result.items() if k not in ("invocation", "failed", "msg")}


def hook_log(app: App) -> list[str]:
    path = app.base / "hook.log"
    return path.read_text().splitlines() if path.exists() else []


def test_a_rollback_returns_every_field(app: App) -> None:
    started = time.monotonic()
    outcome = rollback(app, base_dir=str(app.base) + "/", health_timeout=20)
    assert time.monotonic() - started < 15, "it stops waiting once the application answers the version"
    assert not outcome.failed, outcome.msg
    assert result_of(outcome) == {**BASE_RESULT, "changed": True, "current": OLD, "switched": True, "restarted": True,
                                  "restart_output": [f"restarted {OLD}"]}
    assert hook_log(app) == [f"rollback {OLD} from {NEW} in {app.base / 'releases' / OLD}"]


def test_check_mode_returns_what_would_change(app: App) -> None:
    outcome = rollback(app, check=True)
    assert result_of(outcome) == {**BASE_RESULT, "changed": True, "current": OLD, "switched": True, "restarted": True}


def test_a_host_at_the_target_that_does_not_answer_is_restarted_without_a_switch(app: App) -> None:
    app.answer = (200, json.dumps({"version": "other"}).encode())
    outcome = rollback(app, NEW, health_timeout=1)
    assert outcome.failed and not outcome["switched"] and outcome["restarted"] and outcome["changed"]
    assert (app.base / ".history").read_text() == f"{OLD}\n{NEW}\n", "no switch, no history line"
    assert hook_log(app) == [f"rollback {NEW} from {NEW} in {app.base / 'releases' / NEW}"]
    url = f"http://{app.host}:{app.port}/health"
    assert outcome.msg == f'{url} did not answer 200 with version {NEW} within 1 s after the restart; last answer: status 200, version "other"'
    app.answer = None
    assert result_of(rollback(app, NEW)) == BASE_RESULT, "answering the version: nothing to do"


def test_a_release_gone_from_the_host_is_reported_as_absent(app: App) -> None:
    assert result_of(rollback(app, "0.9.0", witness={"seq": 1}, lease={"run": RUN})) == {**BASE_RESULT, "present": False, "token": "run-a"}
    assert not (app.base / WITNESS).exists() and json.loads((app.base / LEASE).read_text())["token"] == "run-a"


def test_a_tampered_target_names_every_difference_and_is_left_for_a_redeploy(app: App) -> None:
    release = app.base / "releases" / OLD
    for name in "abcdefghi":
        (release / name).write_text("")
    outcome = rollback(app)
    problems = [f"{name}: added" for name in "abcdefghi"]
    assert not outcome.failed and result_of(outcome) == {**BASE_RESULT, "present": False, "tampered": problems}
    assert outcome.msg == f"{release} differs from what was unpacked from its verified artifact: {', '.join(problems[:8])} and 1 more; not switching to it"


def test_a_target_whose_digest_file_went_but_whose_manifest_vouches_is_tampered_not_foreign(app: App) -> None:
    (app.base / "releases" / OLD / ".release" / "DIGEST").unlink()
    outcome = rollback(app)
    assert not outcome.failed and outcome["present"] is False and outcome["tampered"] == [".release/DIGEST: removed"]


def test_another_build_under_the_version_is_refused_naming_both_digests(app: App) -> None:
    release = app.base / "releases" / OLD
    outcome = rollback(app, digest="f" * 64)
    assert outcome.failed and outcome.msg == (f"{release} holds digest {DIGEST[OLD]}, not {'f' * 64}: a different build under the same "
                                              "version (or an incomplete unpack); not switching to it")
    assert result_of(outcome) == BASE_RESULT


@pytest.mark.parametrize(("args", "said"), [
    ({"version": "a b"}, "version \"a b\" is not a plain version name (letters, digits, '.', '_', '+', '-')"),
    ({"digest": "g" * 64}, f"digest \"{'g' * 64}\" is not a sha256 in lowercase hex (64 digits)"),
    ({"digest": "1" * 65}, f"digest \"{'1' * 65}\" is not a sha256 in lowercase hex (64 digits)"),
    ({"health_timeout": -3}, "health_timeout must be at least 1 second, not -3"),
    ({"lease": {"run": RUN, "ttl": -1}}, "lease ttl must be at least 1 second, got -1"),
])
def test_each_input_refusal_says_exactly_why(app: App, args: dict[str, object], said: str) -> None:
    outcome = rollback(app, **args)
    assert outcome.failed and outcome.msg == said and not (app.base / LEASE).exists()
    assert os.readlink(app.base / "current") == f"releases/{NEW}"


def test_a_health_timeout_of_one_second_is_allowed(app: App) -> None:
    assert not rollback(app, health_timeout=1).failed


def test_the_lease_settings_are_the_runs(app: App) -> None:
    outcome = rollback(app, "0.9.0", lease={"run": RUN, "ttl": 60})
    lease = json.loads((app.base / LEASE).read_text())
    assert outcome["token"] == "run-a" and 50 < lease["expires"] - time.time() <= 60 and lease["person"] == "oscar"
    (app.base / LEASE).unlink()
    rollback(app, "0.9.0", lease={"run": RUN})
    assert 1790 < json.loads((app.base / LEASE).read_text())["expires"] - time.time() <= 1800, "ttl defaults to 1800 s"
    (app.base / LEASE).write_text(json.dumps({"token": "dead", "expires": time.time() + 600, "started": "2026-11-30T09:00:00Z"}))
    broke = rollback(app, lease={"run": RUN, "wait": 0, "breakable": ["dead"]})
    assert not broke.failed and broke["lease_released"] and not (app.base / LEASE).exists()


def test_a_busy_host_names_the_holder_and_the_runs_token(app: App) -> None:
    holder = {"token": "run-b", "person": "dana", "started": "2026-11-30T09:00:00Z", "expires": time.time() + 600}
    (app.base / LEASE).write_text(json.dumps(holder))
    outcome = rollback(app, lease={"run": RUN, "wait": 0})
    assert outcome.failed and result_of(outcome) == {"busy": True, "holder": holder, "token": "run-a"}
    assert outcome.msg.startswith("this host is locked by dana (a run), run run-b")
    young = {**holder, "started": "2026-11-30T11:00:00Z"}
    (app.base / LEASE).write_text(json.dumps(young))
    started = time.monotonic()
    assert rollback(app, lease={"run": RUN, "wait": 1})["busy"] and 0.9 <= time.monotonic() - started < 15, "an older run waits as told"


def test_a_base_dir_not_there_yet_is_made_for_the_lease(tmp_path: Path) -> None:
    base = tmp_path / "new" / "app"
    outcome = run(ROLLBACK, {"base_dir": str(base), "version": OLD, "digest": DIGEST[OLD], "service_host": "localhost", "service_port": 1,
                             "lease": {"run": {"started": "x"}}})
    assert not outcome.failed and outcome["present"] is False and len(outcome["token"]) == 12
    assert oct(base.stat().st_mode & 0o777) == "0o755" and json.loads((base / LEASE).read_text())["token"] == outcome["token"]


@pytest.mark.parametrize(("keep", "released"), [(True, False), ("yes", False), (" On ", False), ("1", False), ("y", False),
                                                ("no", True), (False, True), ("", True), (0, True)])
def test_the_lease_is_kept_only_when_asked(app: App, keep: object, released: bool) -> None:
    outcome = rollback(app, NEW, lease={"run": RUN, "keep": keep})
    assert outcome["lease_released"] is released and (app.base / LEASE).exists() is not released


def test_bookkeeping_that_fails_says_the_host_runs_the_target(app: App) -> None:
    (app.base / (WITNESS + ".tmp")).mkdir()  # the witness cannot be written
    outcome = rollback(app, NEW, witness={"seq": 1})
    assert outcome.failed and outcome.msg.startswith(f'{app.base} runs "{NEW}", but its run\'s bookkeeping failed: [Errno 21] Is a directory')


def test_a_switch_that_fails_on_the_file_system_says_so(app: App) -> None:
    (app.base / ".history").unlink()
    (app.base / ".history").mkdir()  # the history cannot be appended to
    outcome = rollback(app)
    assert outcome.failed and outcome.msg.startswith(f'rollback to "{OLD}" failed: [Errno 21] Is a directory')
    assert outcome["switched"] and outcome["current"] == OLD and not outcome["restarted"] and outcome["changed"] is True


def test_a_stale_temporary_link_is_replaced(app: App) -> None:
    stale = app.base / f".current.{os.getpid()}.tmp"
    stale.symlink_to("releases/nothing")
    ROLLBACK.switch_link(str(app.base), str(app.base / "current"), OLD)
    assert os.readlink(app.base / "current") == f"releases/{OLD}" and not os.path.lexists(stale)
    ROLLBACK.append_history(str(app.base), "x")
    assert (app.base / ".history").read_text().endswith(f"{NEW}\nx\n")


def test_a_rename_that_fails_leaves_no_temporary(app: App) -> None:
    (app.base / "current").unlink()
    (app.base / "current").mkdir()
    (app.base / "current" / "keep").write_text("")  # rename(2) will not replace a non-empty directory
    with pytest.raises(OSError):
        ROLLBACK.switch_link(str(app.base), str(app.base / "current"), OLD)
    assert not [p for p in app.base.iterdir() if p.name.endswith(".tmp")]


def test_helpers_read_what_is_there() -> None:
    assert ROLLBACK.version_of("releases/1.0.0/") == "1.0.0" and ROLLBACK.version_of(None) == "" and ROLLBACK.version_of("") == ""
    assert ROLLBACK.read_text("/nonexistent/x") is None
    assert ROLLBACK.as_bool(True) is True and ROLLBACK.as_bool(False) is False and ROLLBACK.as_bool(" TRUE ") is True
    assert ROLLBACK.process_state(os.getpid()) == "R"


def start(*argv: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(list(argv))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")[-2:-1] == [argv[-1].encode()]:
                break
        except OSError:
            pass
        time.sleep(0.02)
    return process


def out_of_service(app: App, check: bool = False) -> Outcome:
    return run(ROLLBACK, {"base_dir": str(app.base), "version": "", "service_host": app.host, "service_port": app.port}, check=check)


def test_out_of_service_results_for_each_case(app: App) -> None:
    sleeper = start(sys.executable, "-c", "import time; time.sleep(60)", str(app.base / "app.py"))
    (app.base / "run").mkdir()
    pid_file = app.base / "run" / "app.pid"
    try:
        pid_file.write_text(f"{sleeper.pid}\n")
        (app.base / "current").unlink()
        checked = out_of_service(app, check=True)
        assert result_of(checked) == {**BASE_RESULT, "previous": "", "current": "", "changed": True, "stopped": True}
        pid_file.write_text("12x\n")
        assert result_of(out_of_service(app)) == {**BASE_RESULT, "previous": "", "current": ""}, "a pid file that is no pid: nothing runs"
        pid_file.write_text(f"{sleeper.pid}\n")
        stopped = out_of_service(app)
        assert result_of(stopped) == {**BASE_RESULT, "previous": "", "current": "", "changed": True, "stopped": True}
        assert sleeper.wait(timeout=5) == -signal.SIGTERM and not pid_file.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert ROLLBACK.running_application(str(app.base)) is None
    pid_file.write_text(f"{sleeper.pid}\n")
    assert ROLLBACK.running_application(str(app.base)) is None, "a pid that is gone"
    assert result_of(out_of_service(app, check=True)) == {**BASE_RESULT, "previous": "", "current": ""}


def test_a_process_that_exits_on_sigterm_gets_no_sigkill() -> None:
    polite = start(sys.executable, "-c", "import time; time.sleep(60)")
    ROLLBACK.stop_application(polite.pid, 5)
    assert polite.wait(timeout=5) == -signal.SIGTERM
    ROLLBACK.signal_process(polite.pid, signal.SIGTERM)  # gone (reaped): no error


def test_a_process_that_outlives_both_signals_fails_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeper = start(sys.executable, "-c", "import time; time.sleep(60)")
    sent: list[int] = []
    monkeypatch.setattr(ROLLBACK, "KILL_GRACE", 0.2)
    monkeypatch.setattr(ROLLBACK, "signal_process", lambda pid, number: sent.append(number))  # signals that never arrive
    try:
        with pytest.raises(ROLLBACK.RollbackFailed) as failed:
            ROLLBACK.stop_application(sleeper.pid, 0.2)
        assert str(failed.value) == f"process {sleeper.pid} is still running after SIGTERM and SIGKILL"
        assert sent == [signal.SIGTERM, signal.SIGKILL]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_waiting_for_a_process_stops_at_the_deadline() -> None:
    began = time.monotonic()
    assert ROLLBACK.wait_until_gone(os.getpid(), 0.3) is False
    assert 0.3 <= time.monotonic() - began < 3
    assert ROLLBACK.wait_until_gone(2**22 + 7, 5) is True


def test_out_of_service_with_nothing_running_removes_the_link_and_says_so(app: App) -> None:
    assert result_of(out_of_service(app)) == {**BASE_RESULT, "changed": True, "current": "", "switched": True}
    assert not os.path.lexists(app.base / "current")


def test_an_application_that_removes_its_own_pid_file_on_the_way_out(app: App) -> None:
    (app.base / "run").mkdir()
    pid_file = app.base / "run" / "app.pid"
    code = ("import os, signal, sys, time\n"
            f"signal.signal(signal.SIGTERM, lambda *a: (os.unlink({str(pid_file)!r}), sys.exit(0)))\n"
            "time.sleep(60)\n")
    polite = start(sys.executable, "-c", code, str(app.base / "app.py"))
    try:
        time.sleep(0.3)  # its handler installed
        pid_file.write_text(f"{polite.pid}\n")
        outcome = out_of_service(app)
        assert not outcome.failed, outcome.msg
        assert outcome["stopped"] and polite.wait(timeout=5) == 0 and not pid_file.exists()
    finally:
        polite.kill()
        polite.wait()


def test_a_process_is_the_applications_only_when_an_argument_lies_in_its_base_dir(tmp_path: Path) -> None:
    sleeper = start(sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path / "app" / "run.py"))
    try:
        assert ROLLBACK.runs_from(sleeper.pid, str(tmp_path / "app"))
        assert not ROLLBACK.runs_from(sleeper.pid, str(tmp_path / "appX")), "a trailing X is part of the folder's name"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not ROLLBACK.runs_from(sleeper.pid, str(tmp_path / "app")), "a process that is gone runs from nowhere"


def test_the_host_python_entry_does_the_same_work(app: App) -> None:
    params = {"base_dir": str(app.base), "version": OLD, "digest": DIGEST[OLD], "service_host": app.host, "service_port": app.port,
              "restart_command": "", "health_path": "/health", "health_timeout": 2, "lease": {}, "witness": {}}
    checked = ROLLBACK.rollback_host(dict(params), True)
    assert {k: v for k, v in checked.items() if k != "invocation"} == {**BASE_RESULT, "changed": True, "current": OLD, "switched": True,
                                                                        "restarted": True}
    assert os.readlink(app.base / "current") == f"releases/{NEW}", "check mode changed nothing"
    done = ROLLBACK.rollback_host(dict(params), False)
    assert not done.get("failed") and done["switched"] and os.readlink(app.base / "current") == f"releases/{OLD}"


def test_a_configured_restart_command_is_checked_and_run_with_the_applications_address(app: App) -> None:
    release = app.base / "releases" / OLD
    (release / "bin" / "restart").unlink()  # the release's own hook is not the one configured
    sys.modules["ansible.module_utils.release_integrity"].write_manifest(str(release), DIGEST[OLD])
    outcome = rollback(app, restart_command="/bin/sh -c 'echo $APP_HOST:$APP_PORT $RELEASE_ACTION'")
    assert not outcome.failed, outcome.msg
    assert outcome["restart_output"] == [f"{app.host}:{app.port} rollback"]


def test_a_lease_of_one_second_is_allowed_and_a_refused_ttl_is_not_busy(app: App, tmp_path: Path) -> None:
    assert not rollback(app, "0.9.0", lease={"run": RUN, "ttl": 1}).failed
    refused = rollback(app, lease={"run": RUN, "ttl": -1})
    assert refused.failed and refused["busy"] is False
    old = os.umask(0)
    try:
        outcome = run(ROLLBACK, {"base_dir": str(tmp_path / "fresh"), "version": OLD, "digest": DIGEST[OLD], "service_host": "localhost",
                                 "service_port": 1, "lease": {"run": RUN}})
    finally:
        os.umask(old)
    assert outcome["present"] is False and oct((tmp_path / "fresh").stat().st_mode & 0o777) == "0o755"


def test_a_current_that_is_not_a_link_is_named_exactly(app: App) -> None:
    (app.base / "current").unlink()
    (app.base / "current").mkdir()
    assert rollback(app).msg == f"{app.base / 'current'} exists and is not a symbolic link; move it away by hand"
