"""roles/release_deploy/module_utils/release_hook.py: where the restart hook's program is, what it
gets, and how a hook that cannot run or fails is told (one line, and the same as data)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from tests.unit.host_modules import load

load("roles/release_deploy/library/release_finish.py")
HOOK = sys.modules["ansible.module_utils.release_hook"]


def test_the_program_is_found_inside_the_release_the_link_will_point_to() -> None:
    base, release = "/opt/app", "/opt/app/releases/2.0.0"
    assert HOOK.program_path("/opt/app/current/bin/restart", base, release) == "/opt/app/releases/2.0.0/bin/restart"
    assert HOOK.program_path("bin/../bin/restart", base, release) == "/opt/app/releases/2.0.0/bin/restart"
    assert HOOK.program_path("/usr/bin/systemctl", base, release) == "/usr/bin/systemctl"
    assert HOOK.program_path("/opt/app/currently/x", base, release) == "/opt/app/currently/x"
    assert HOOK.program_path("systemctl", base, release) is None
    assert HOOK.hook_command("  ", "/opt/app") == "/opt/app/current/bin/restart" and HOOK.hook_command(" x ", "/b") == "x"


def test_each_reason_a_hook_cannot_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = tmp_path / "releases" / "1"
    (release / "bin").mkdir(parents=True)
    (release / "bin" / "plain").write_text("x")
    (release / "bin" / "run").write_text("#!/bin/sh\n")
    (release / "bin" / "run").chmod(0o755)
    base = str(tmp_path)
    assert HOOK.find_problem("bin/run --now", base, str(release)) is None
    assert HOOK.find_problem("bin/none", base, str(release)) == f"{release}/bin/none is missing"
    assert HOOK.find_problem("./bin", base, str(release)) == f"{release}/bin is not a file"
    assert HOOK.find_problem("bin/plain", base, str(release)) == f"{release}/bin/plain is not executable"
    monkeypatch.setenv("PATH", f"{release / 'bin'}:{tmp_path / 'nothing'}")
    assert HOOK.find_problem("run", base, str(release)) is None
    assert HOOK.find_problem("plain", base, str(release)) == "plain is not found on the PATH", "a file without x on the PATH does not run"
    with pytest.raises(HOOK.HookError) as empty:
        HOOK.check("   ", base, str(release))
    assert empty.value.msg == "the restart hook is empty" and empty.value.error["problem"] == "empty"
    with pytest.raises(HOOK.HookError) as unbalanced:
        HOOK.check("bin/run 'oops", base, str(release))
    assert "cannot be split into arguments" in unbalanced.value.msg and unbalanced.value.error["step"] == "hook"


def environment(tmp_path: Path) -> dict[str, str]:
    release = tmp_path / "releases" / "1.0.0"
    (release / "bin").mkdir(parents=True, exist_ok=True)
    return HOOK.environment(str(tmp_path), "1.0.0", "", "deploy", "127.0.0.1", 8080, "http://127.0.0.1:8080/health")


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "releases" / "1.0.0" / "bin" / "restart"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return "bin/restart"


def test_the_hook_runs_without_a_shell_in_the_release_with_its_environment(tmp_path: Path) -> None:
    env = environment(tmp_path)
    assert env["RELEASE_DIR"] == str(tmp_path / "releases" / "1.0.0") and env["APP_PORT"] == "8080" and env["RELEASE_PREVIOUS_VERSION"] == ""
    command = script(tmp_path, 'echo "$RELEASE_ACTION $RELEASE_VERSION $(pwd) $1"; read line && echo "stdin: $line"; exit 0\n')
    assert HOOK.run(command + " 'a b;c'", env) == [f"deploy 1.0.0 {tmp_path / 'releases' / '1.0.0'} a b;c"]


def test_the_default_hook_runs_from_a_base_directory_with_spaces(tmp_path: Path) -> None:
    base = tmp_path / "my work" / "app"
    (base / "releases" / "1.0.0" / "bin").mkdir(parents=True)
    (base / "current").symlink_to("releases/1.0.0")
    script(base, 'echo "restarted $RELEASE_VERSION"\n')
    command = HOOK.hook_command("", str(base))
    env = HOOK.environment(str(base), "1.0.0", "", "deploy", "127.0.0.1", 8080, "http://127.0.0.1:8080/health")
    assert HOOK.run(command, env) == ["restarted 1.0.0"]


def test_a_failing_hook_says_its_code_and_its_last_lines(tmp_path: Path) -> None:
    env = environment(tmp_path)
    command = script(tmp_path, "for i in 1 2 3 4 5 6 7; do echo line $i; done\necho\nexit 4\n")
    with pytest.raises(HOOK.HookError) as failed:
        HOOK.run(command, env)
    assert failed.value.msg == 'the restart hook "bin/restart" exited with 4: line 3 | line 4 | line 5 | line 6 | line 7'
    assert failed.value.error == {"step": "restart", "command": "bin/restart", "rc": 4, "output": ["line 3", "line 4", "line 5", "line 6", "line 7"]}


def test_a_killed_hook_says_which_signal(tmp_path: Path) -> None:
    env = environment(tmp_path)
    command = script(tmp_path, "kill -TERM $$\n")
    with pytest.raises(HOOK.HookError) as killed:
        HOOK.run(command, env)
    assert f"was killed by signal {int(signal.SIGTERM)}: (no output)" in killed.value.msg and killed.value.error["rc"] == -signal.SIGTERM


def test_the_tail_is_bounded() -> None:
    assert HOOK.tail("a\n\n b \n") == ["a", "b"]
    long = HOOK.tail("\n".join("x" * 300 for _ in range(5)))
    assert all(len(line) <= HOOK.TAIL_LINE_CHARS for line in long) and sum(len(line) + 3 for line in long) <= HOOK.TAIL_CHARS
    assert len(long) == 1 + (HOOK.TAIL_CHARS - HOOK.TAIL_LINE_CHARS - 3) // (HOOK.TAIL_LINE_CHARS + 3)
    assert HOOK.tail("y" * 1000) == ["y" * 200], "one line always stays"
