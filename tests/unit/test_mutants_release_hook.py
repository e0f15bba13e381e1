"""roles/release_deploy/module_utils/release_hook.py, pinned exactly (issue 18's mutation score): the hook's whole
environment, the reason and data of each way it cannot run, fails or cannot be started."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.unit.host_modules import load

load("roles/release_deploy/library/release_finish.py")
HOOK = sys.modules["ansible.module_utils.release_hook"]


def test_the_hooks_environment_is_exactly_the_contract() -> None:
    env = HOOK.environment("/opt/app", "2.0.0", None, "rollback", "10.0.0.5", 9000, "http://10.0.0.5:9000/health")
    assert env == {
        "RELEASE_BASE_DIR": "/opt/app",
        "RELEASE_DIR": "/opt/app/releases/2.0.0",
        "RELEASE_VERSION": "2.0.0",
        "RELEASE_PREVIOUS_VERSION": "",
        "RELEASE_ACTION": "rollback",
        "RELEASE_HEALTH_URL": "http://10.0.0.5:9000/health",
        "APP_HOST": "10.0.0.5",
        "APP_PORT": "9000",
    }
    assert HOOK.environment("/b", "1", "0.9", "deploy", "h", 1, "u")["RELEASE_PREVIOUS_VERSION"] == "0.9"


def test_the_hook_command_defaults_to_the_releases_restart_only_when_none_is_given() -> None:
    assert HOOK.hook_command(None, "/opt/app") == "/opt/app/current/bin/restart"
    assert HOOK.hook_command("", "/opt/app") == "/opt/app/current/bin/restart"
    assert HOOK.hook_command(" systemctl restart app ", "/opt/app") == "systemctl restart app"


def test_error_data_names_a_problem_only_when_there_is_one() -> None:
    assert HOOK.error_data("x", "restart", 3, ("a",)) == {"step": "restart", "command": "x", "rc": 3, "output": ["a"]}
    assert HOOK.error_data("x", "hook", problem="empty") == {"step": "hook", "command": "x", "rc": None, "output": [], "problem": "empty"}


def test_a_command_that_cannot_be_split_or_is_empty_says_so_exactly() -> None:
    with pytest.raises(HOOK.HookError) as unbalanced:
        HOOK.split("bin/run 'oops")
    assert unbalanced.value.msg == 'the restart hook "bin/run \'oops" cannot be split into arguments: No closing quotation'
    assert unbalanced.value.error == {"step": "hook", "command": "bin/run 'oops", "rc": None, "output": [], "problem": "cannot be split into arguments"}
    with pytest.raises(HOOK.HookError) as empty:
        HOOK.split("  ")
    assert empty.value.error == {"step": "hook", "command": "  ", "rc": None, "output": [], "problem": "empty"}
    assert HOOK.split("a 'b c'") == ["a", "b c"]


def test_a_hook_that_cannot_run_says_why_as_one_line_and_as_data(tmp_path: Path) -> None:
    release = tmp_path / "releases" / "1"
    release.mkdir(parents=True)
    with pytest.raises(HOOK.HookError) as missing:
        HOOK.check("bin/restart --now", str(tmp_path), str(release))
    problem = f"{release}/bin/restart is missing"
    assert missing.value.msg == f'the restart hook "bin/restart --now" cannot run: {problem}'
    assert str(missing.value) == missing.value.msg, "printed (a traceback, a log), the error says the same"
    assert missing.value.error == {"step": "hook", "command": "bin/restart --now", "rc": None, "output": [], "problem": problem}
    assert HOOK.check("/bin/sh -c true", str(tmp_path), str(release)) is None


def test_the_path_is_searched_in_order_and_an_empty_entry_is_not_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = tmp_path / "releases" / "1"
    (release / "bin").mkdir(parents=True)
    tool = release / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.chdir(release)
    monkeypatch.setenv("PATH", f":{tmp_path / 'none'}")
    assert HOOK.find_problem("tool", str(tmp_path), str(release)) == "tool is not found on the PATH"
    monkeypatch.setenv("PATH", f"{tmp_path / 'none'}:{release}")
    assert HOOK.find_problem("tool", str(tmp_path), str(release)) is None, "the second entry of the PATH is searched too"
    monkeypatch.delenv("PATH")
    assert HOOK.find_problem("sh", str(tmp_path), str(release)) is None, "without PATH, the system's default path"
    (release / "bin" / "dir").mkdir()
    monkeypatch.setenv("PATH", str(release / "bin"))
    assert HOOK.find_problem("dir", str(tmp_path), str(release)) == "dir is not found on the PATH", "a folder on the PATH is no program"


def test_a_hook_that_cannot_be_started_fails_the_restart_naming_why(tmp_path: Path) -> None:
    release = tmp_path / "releases" / "1.0.0"
    (release / "bin").mkdir(parents=True)
    hook = release / "bin" / "restart"
    hook.write_text("#!/nonexistent/interpreter\n")  # there and executable, but execve fails
    hook.chmod(0o755)
    env = HOOK.environment(str(tmp_path), "1.0.0", "", "deploy", "h", 1, "u")
    with pytest.raises(HOOK.HookError) as failed:
        HOOK.run("bin/restart", env)
    assert failed.value.msg.startswith('the restart hook "bin/restart" could not be started: [Errno 2] No such file or directory')
    assert failed.value.error["step"] == "restart" and failed.value.error["rc"] is None and failed.value.error["command"] == "bin/restart"
    assert failed.value.error["problem"].startswith("[Errno 2] No such file or directory")


def test_the_hook_gets_the_connections_environment_and_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = tmp_path / "releases" / "1.0.0"
    (release / "bin").mkdir(parents=True)
    hook = release / "bin" / "restart"
    hook.write_text('#!/bin/sh\necho "$FROM_CONNECTION $APP_HOST $RELEASE_HEALTH_URL"\necho "é" >&2\nprintf "\\377\\n"\n')
    hook.chmod(0o755)
    monkeypatch.setenv("FROM_CONNECTION", "kept")
    env = HOOK.environment(str(tmp_path), "1.0.0", "", "deploy", "app.local", 1, "http://app.local:1/health")
    assert HOOK.run("bin/restart", env) == ["kept app.local http://app.local:1/health", "é", "\ufffd"], "stderr is in the tail, bytes not UTF-8 replaced"
    assert "RELEASE_DIR" not in os.environ, "the module's own environment is left as it was"


def test_the_tail_keeps_the_last_lines_within_their_bounds() -> None:
    assert HOOK.tail("\n".join(str(i) for i in range(8))) == ["3", "4", "5", "6", "7"]
    assert HOOK.tail(" " + "z" * 250 + " ") == ["z" * 200]
    # 400 characters in all, each line counting 3 for the " | " joining it.
    exact = ["a" * 97] * 4
    assert HOOK.tail("\n".join(exact)) == exact, "exactly TAIL_CHARS stays whole"
    assert HOOK.tail("\n".join(["b" * 98, *exact[1:]])) == exact[1:], "one more character drops the oldest line"
    assert HOOK.tail("") == []


def test_the_hook_reads_nothing_from_the_modules_input(tmp_path: Path) -> None:
    release = tmp_path / "releases" / "1.0.0"
    (release / "bin").mkdir(parents=True)
    hook = release / "bin" / "restart"
    hook.write_text('#!/bin/sh\nif read line; then echo "read: $line"; else echo "nothing to read"; fi\n')
    hook.chmod(0o755)
    env = HOOK.environment(str(tmp_path), "1.0.0", "", "deploy", "h", 1, "u")
    read, write = os.pipe()
    os.write(write, b"the module's arguments\n")
    os.close(write)
    saved = os.dup(0)
    os.dup2(read, 0)  # what the module was given on its standard input, as Ansible gives it
    try:
        assert HOOK.run("bin/restart", env) == ["nothing to read"]
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(read)
