"""roles/release_rollback/library/release_rollback.py: back to a release only when its bytes are the
recorded ones, a hook that cannot run stops it before the link moves, and taking a host out of
service never kills a process that is not this host's application."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.host_modules import App, Outcome, load, load_util, make_release, run

ROLLBACK = load("roles/release_rollback/library/release_rollback.py")
INTEGRITY = load_util("roles/release_deploy/module_utils/release_integrity.py")
OLD, NEW = "1.0.0", "2.0.0"
DIGEST = {OLD: "1" * 64, NEW: "2" * 64}


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


def built_so(release: Path) -> None:
    """The release as its artifact had it: its manifest rewritten (a broken build, not a tampered host)."""
    INTEGRITY.write_manifest(str(release), (release / ".release" / "DIGEST").read_text().strip())


def rollback(app: App, version: str = OLD, check: bool = False, **args: object) -> Outcome:
    params = {
        "base_dir": str(app.base), "version": version, "digest": DIGEST.get(version, "9" * 64),
        "service_host": app.host, "service_port": app.port, "health_timeout": 2, **args,
    }
    return run(ROLLBACK, params, check=check)


def hook_log(app: App) -> list[str]:
    path = app.base / "hook.log"
    return path.read_text().splitlines() if path.exists() else []


def test_a_rollback_switches_restarts_and_waits_for_the_version(app: App) -> None:
    outcome = rollback(app)
    assert not outcome.failed, outcome.msg
    assert outcome["switched"] and outcome["restarted"] and outcome["previous"] == NEW and outcome["current"] == OLD
    assert os.readlink(app.base / "current") == f"releases/{OLD}"
    assert (app.base / ".history").read_text() == f"{OLD}\n{NEW}\n{OLD}\n"
    assert hook_log(app) == [f"rollback {OLD} from {NEW} in {app.base / 'releases' / OLD}"]
    assert not [p for p in app.base.iterdir() if p.name.endswith(".tmp")]


def test_a_host_already_running_the_target_is_left_alone(app: App) -> None:
    (app.base / "current").unlink()
    (app.base / "current").symlink_to(app.base / "releases" / OLD)  # absolute: the same release
    outcome = rollback(app)
    assert not outcome.failed and not outcome["changed"] and not outcome["restarted"] and hook_log(app) == []


def test_other_bytes_under_the_same_version_are_never_switched_to(app: App) -> None:
    outcome = rollback(app, digest="f" * 64)
    assert outcome.failed and f"holds digest {DIGEST[OLD]}, not {'f' * 64}" in outcome.msg and "not switching to it" in outcome.msg
    assert os.readlink(app.base / "current") == f"releases/{NEW}" and hook_log(app) == []


def test_an_incomplete_unpack_is_never_switched_to(app: App) -> None:
    (app.base / "releases" / OLD / ".release" / "DIGEST").unlink()
    (app.base / "releases" / OLD / ".release" / "FILES.json").unlink()
    outcome = rollback(app)
    assert outcome.failed and "holds digest (none: no .release/DIGEST)" in outcome.msg
    assert os.readlink(app.base / "current") == f"releases/{NEW}"


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (lambda release: (release / "bin" / "restart").write_text("#!/bin/sh\necho owned\n"), "bin/restart: changed"),
        (lambda release: (release / ".release" / "DIGEST").unlink(), ".release/DIGEST: removed"),
        (lambda release: (release / "extra.conf").write_text("debug = true\n"), "extra.conf: added"),
    ],
)
def test_a_target_whose_files_changed_is_not_switched_to_but_left_for_a_redeploy(app: App, tamper: Any, named: str) -> None:
    tamper(app.base / "releases" / OLD)
    outcome = rollback(app)
    assert not outcome.failed and outcome["present"] is False and not outcome["changed"], outcome.result
    assert named in outcome.msg and any(p.startswith(named.split(":")[0]) for p in outcome["tampered"])
    assert os.readlink(app.base / "current") == f"releases/{NEW}"
    assert not (app.base / "hook.log").exists(), "nothing was restarted"


def test_the_live_release_whose_files_changed_is_left_for_a_redeploy_too(app: App) -> None:
    assert not rollback(app).failed
    (app.base / "releases" / OLD / "app.py").write_text("print('patched live')\n")
    outcome = rollback(app)
    assert outcome["present"] is False and outcome["tampered"] == ["app.py: added"]


def test_a_release_no_longer_on_the_host_is_reported_not_invented(app: App) -> None:
    outcome = rollback(app, "0.9.0")
    assert not outcome.failed and outcome["present"] is False and not outcome["changed"]
    assert os.readlink(app.base / "current") == f"releases/{NEW}"


@pytest.mark.parametrize("check", [False, True])
def test_a_hook_that_cannot_run_fails_before_the_link_moves(app: App, check: bool) -> None:
    (app.base / "releases" / OLD / "bin" / "restart").unlink()
    built_so(app.base / "releases" / OLD)
    outcome = rollback(app, check=check)
    assert outcome.failed and "cannot run" in outcome.msg and "is missing" in outcome.msg
    assert outcome["error"]["step"] == "hook" and not outcome["switched"]
    assert os.readlink(app.base / "current") == f"releases/{NEW}"


def test_check_mode_says_what_would_happen_and_changes_nothing(app: App) -> None:
    outcome = rollback(app, check=True)
    assert not outcome.failed and outcome["changed"] and outcome["switched"] and outcome["restarted"] and outcome["current"] == OLD
    assert os.readlink(app.base / "current") == f"releases/{NEW}" and hook_log(app) == []
    assert (app.base / ".history").read_text() == f"{OLD}\n{NEW}\n"


def test_a_failing_hook_reports_the_switch_that_did_happen(app: App) -> None:
    (app.base / "releases" / OLD / "bin" / "restart").write_text("#!/bin/sh\necho port taken\nexit 3\n")
    built_so(app.base / "releases" / OLD)
    outcome = rollback(app)
    assert outcome.failed and "exited with 3: port taken" in outcome.msg
    assert outcome["switched"] and outcome["current"] == OLD and outcome["error"]["rc"] == 3
    assert os.readlink(app.base / "current") == f"releases/{OLD}"


def test_an_application_that_does_not_come_back_fails_the_rollback(app: App) -> None:
    app.answer = (503, b'{"version": "1.0.0"}')
    outcome = rollback(app, health_timeout=1)
    assert outcome.failed and "did not answer 200 with version 1.0.0 within 1 s after the restart" in outcome.msg
    assert "status 503" in outcome.msg and outcome["switched"] and outcome["restarted"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ({"version": "../../etc"}, 'version "../../etc" is not a plain version name'),
        ({"version": "1.0/../x"}, "is not a plain version name"),
        ({"version": ".hidden"}, "is not a plain version name"),
        ({"digest": "A" * 64}, "is not a sha256 in lowercase hex (64 digits)"),
        ({"digest": "1" * 63}, "is not a sha256 in lowercase hex"),
        ({"health_timeout": 0}, "health_timeout must be at least 1 second, not 0"),
    ],
)
def test_inputs_that_could_escape_or_defeat_the_checks_are_refused(app: App, args: dict[str, object], said: str) -> None:
    outcome = rollback(app, **args)
    assert outcome.failed and said in outcome.msg
    assert os.readlink(app.base / "current") == f"releases/{NEW}" and hook_log(app) == []


def test_a_current_that_is_not_a_link_is_left_for_a_person(app: App) -> None:
    (app.base / "current").unlink()
    (app.base / "current").mkdir()
    outcome = rollback(app)
    assert outcome.failed and "exists and is not a symbolic link; move it away by hand" in outcome.msg


def start(*argv: str) -> subprocess.Popen[bytes]:
    """A process running `argv`, once it runs it (its /proc cmdline is argv, not the forking parent's)."""
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


def test_out_of_service_removes_the_link_and_stops_this_hosts_application(app: App) -> None:
    running = start(sys.executable, "-c", "import time; time.sleep(60)", str(app.base / "current" / "app.py"))
    (app.base / "run").mkdir()
    (app.base / "run" / "app.pid").write_text(f"{running.pid}\n")
    try:
        checked = out_of_service(app, check=True)
        assert checked["switched"] and checked["stopped"] and checked["current"] == "" and (app.base / "current").is_symlink()
        assert running.poll() is None
        outcome = out_of_service(app)
        assert not outcome.failed and outcome["switched"] and outcome["stopped"] and not os.path.lexists(app.base / "current")
        assert running.wait(timeout=5) is not None and not (app.base / "run" / "app.pid").exists()
    finally:
        running.kill()
        running.wait()


def test_a_stale_pid_file_never_kills_an_unrelated_process(app: App) -> None:
    stranger = start(sys.executable, "-c", "import time; time.sleep(60)", "/srv/other-app")
    (app.base / "run").mkdir()
    (app.base / "run" / "app.pid").write_text(f"{stranger.pid}\n")
    try:
        outcome = out_of_service(app)
        assert not outcome.failed and outcome["switched"] and not outcome["stopped"]
        time.sleep(0.2)
        assert stranger.poll() is None, "a process that does not run from this host's directory must not be killed"
    finally:
        stranger.kill()
        stranger.wait()


def test_a_prefix_of_the_base_dir_is_not_the_base_dir(app: App) -> None:
    neighbour = start(sys.executable, "-c", "import time; time.sleep(60)", str(app.base) + "-other/app.py")
    own = start(sys.executable, "-c", "import time; time.sleep(60)", str(app.base))
    try:
        assert not ROLLBACK.runs_from(neighbour.pid, str(app.base))
        assert ROLLBACK.runs_from(own.pid, str(app.base) + "/")
    finally:
        for process in (neighbour, own):
            process.kill()
            process.wait()


def test_process_state_reads_names_with_parentheses_and_zombies_are_gone(tmp_path: Path) -> None:
    odd = tmp_path / "a) b (c"
    odd.symlink_to(sys.executable)
    sleeper = start(str(odd), "-c", "import time; time.sleep(60)")
    try:
        assert ROLLBACK.process_state(sleeper.pid) in ("S", "R") and not ROLLBACK.is_gone(sleeper.pid)
        sleeper.kill()
        deadline = time.monotonic() + 5
        while ROLLBACK.process_state(sleeper.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ROLLBACK.process_state(sleeper.pid) == "Z" and ROLLBACK.is_gone(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert ROLLBACK.process_state(sleeper.pid) is None and ROLLBACK.is_gone(sleeper.pid)


def test_an_application_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    stubborn = start(sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)")
    try:
        time.sleep(0.3)  # let it install its handler
        began = time.monotonic()
        ROLLBACK.stop_application(stubborn.pid, 1)
        assert time.monotonic() - began >= 1 and stubborn.wait(timeout=5) == -9
    finally:
        stubborn.kill()
        stubborn.wait()


def test_urls() -> None:
    assert ROLLBACK.health_url("::1", 8080, "health") == "http://[::1]:8080/health"


LEASE = ".relpromote-lock.json"
WITNESS = ".relpromote-witness.json"
RUN = {"id": "run-a", "project": "shop", "person": "oscar", "controller": "oscar@jump", "pid": 42,
       "purpose": "rollback to 1.0.0", "started": "2026-11-30T10:00:00Z"}
HEAD = {"project": "shop", "environment": "qa", "seq": 7, "hash": "a" * 64}


def test_one_execution_takes_the_lease_rolls_back_keeps_the_witness_and_gives_the_lease_back(app: App) -> None:
    outcome = rollback(app, lease={"run": RUN, "ttl": 60}, witness=HEAD)
    assert not outcome.failed, outcome.msg
    assert outcome["token"] == "run-a" and outcome["lease_released"] and not (app.base / LEASE).exists()
    assert json.loads((app.base / WITNESS).read_text()) == HEAD and oct((app.base / WITNESS).stat().st_mode & 0o777) == "0o644"
    assert os.readlink(app.base / "current") == f"releases/{OLD}"


def test_a_host_another_run_holds_is_refused_naming_it_and_nothing_changes(app: App) -> None:
    other = {**RUN, "id": "run-b", "person": "dana", "purpose": "promotion of 2.1.0"}
    (app.base / LEASE).write_text(json.dumps({**other, "token": "run-b", "expires": time.time() + 600, "taken_at": "now"}))
    outcome = rollback(app, lease={"run": {**RUN, "started": "2026-11-30T10:00:09Z"}, "wait": 0}, witness=HEAD)
    assert outcome.failed and outcome["busy"] and outcome["holder"]["token"] == "run-b"
    assert "dana (promotion of 2.1.0)" in outcome.msg and "previous" not in outcome.result, "nothing is claimed of the link"
    assert os.readlink(app.base / "current") == f"releases/{NEW}" and hook_log(app) == [] and not (app.base / WITNESS).exists()
    assert json.loads((app.base / LEASE).read_text())["token"] == "run-b"


def test_a_kept_lease_stays_for_the_caller_to_give_back(app: App) -> None:
    outcome = rollback(app, lease={"run": RUN, "keep": True}, witness=HEAD)
    assert not outcome.failed and not outcome["lease_released"]
    assert json.loads((app.base / LEASE).read_text())["token"] == "run-a" and (app.base / WITNESS).exists()


def test_a_target_to_redeploy_keeps_the_lease_and_witnesses_nothing_yet(app: App) -> None:
    outcome = rollback(app, "0.9.0", lease={"run": {k: v for k, v in RUN.items() if k != "id"}}, witness=HEAD)
    assert not outcome.failed and outcome["present"] is False and len(outcome["token"]) == 12
    assert json.loads((app.base / LEASE).read_text())["token"] == outcome["token"] and not (app.base / WITNESS).exists()


def test_a_failed_rollback_keeps_the_lease_and_witnesses_nothing(app: App) -> None:
    app.answer = (503, b"{}")  # the application never comes back
    outcome = rollback(app, health_timeout=1, lease={"run": RUN}, witness=HEAD)
    assert outcome.failed and outcome["switched"] and "did not answer 200 with version 1.0.0" in outcome.msg
    assert json.loads((app.base / LEASE).read_text())["token"] == "run-a" and not (app.base / WITNESS).exists()


def test_check_mode_takes_no_lease_and_writes_no_witness(app: App) -> None:
    outcome = rollback(app, check=True, lease={"run": RUN}, witness=HEAD)
    assert not outcome.failed and outcome["switched"] and not (app.base / LEASE).exists() and not (app.base / WITNESS).exists()


ACTION = load("roles/release_rollback/action_plugins/release_rollback.py")


def test_the_host_python_path_rolls_back_as_the_module_does(app: App) -> None:
    sources = ACTION.sources()
    params = ACTION.HOST.checked(ACTION.HOST.argument_spec(sources[-1][1]), {
        "base_dir": str(app.base), "version": OLD, "digest": DIGEST[OLD], "service_host": app.host, "service_port": str(app.port),
        "health_timeout": 2, "lease": {"run": RUN, "ttl": "60"}, "witness": HEAD})
    ran = subprocess.run(["python3", "-"], input=ACTION.HOST.program(sources, "release_rollback", "rollback_host", params, False),
                         capture_output=True, text=True, check=True)
    line = next(line for line in ran.stdout.splitlines() if line.startswith(ACTION.HOST.RESULT_MARK))
    result = json.loads(line[len(ACTION.HOST.RESULT_MARK):])
    assert not result.get("failed"), result
    assert result["switched"] and result["previous"] == NEW and result["current"] == OLD and result["lease_released"]
    assert os.readlink(app.base / "current") == f"releases/{OLD}" and json.loads((app.base / WITNESS).read_text()) == HEAD
    assert not (app.base / LEASE).exists() and hook_log(app) == [f"rollback {OLD} from {NEW} in {app.base / 'releases' / OLD}"]
