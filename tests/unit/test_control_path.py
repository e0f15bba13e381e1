"""The operator's private folder (relpromote/adapters/control_path.py) on a real file system.

Folders of "another user" are chowned to a real other uid (the tests run as root, as the integration
tests do); the two-login case with real accounts is tests/integration/test_jump_host.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from relpromote.adapters import control_path
from relpromote.adapters.control_path import MAX_FOLDER_LENGTH, check_folder, default_folder, private_folder, run_temp
from relpromote.errors import BadInput, ExitCode

OTHER_UID = 65534  # nobody

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


@pytest.fixture
def base() -> Iterator[Path]:
    """A short folder (socket paths must stay short; pytest's tmp_path is too long)."""
    folder = Path(tempfile.mkdtemp(prefix="cpt-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_runtime_dir_of_the_user_is_preferred(base: Path) -> None:
    runtime = base / "run"
    runtime.mkdir(mode=0o700)
    assert default_folder({"XDG_RUNTIME_DIR": str(runtime)}) == runtime / "relpromote"


@pytest.mark.parametrize("problem", ["missing", "relative", "open to others", "symlink", "too long", "not ours"])
def test_unusable_runtime_dir_falls_back_to_a_per_user_tmp_folder(base: Path, problem: str) -> None:
    runtime = base / "run"
    runtime.mkdir(mode=0o700)
    value = str(runtime)
    if problem == "missing":
        value = str(base / "nothing")
    elif problem == "relative":
        value = "run"
    elif problem == "open to others":
        runtime.chmod(0o755)
    elif problem == "symlink":
        (base / "link").symlink_to(runtime)
        value = str(base / "link")
    elif problem == "too long":
        long = base / ("x" * (MAX_FOLDER_LENGTH - len(str(base))))
        long.mkdir(mode=0o700)
        value = str(long)
    elif problem == "not ours":
        if os.geteuid() != 0:
            pytest.skip("chown needs root")
        os.chown(runtime, OTHER_UID, OTHER_UID)
    assert default_folder({"XDG_RUNTIME_DIR": value}) == Path(f"/tmp/relpromote-{os.geteuid()}")


def test_no_runtime_dir_gives_a_short_per_user_tmp_folder() -> None:
    folder = default_folder({}, euid=1234)
    assert folder == Path("/tmp/relpromote-1234")
    assert len(str(folder)) <= MAX_FOLDER_LENGTH


@pytest.mark.parametrize("umask", [0o022, 0o277, 0o000])
def test_a_missing_folder_is_made_0700_whatever_the_umask(base: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        folder = private_folder(base / "cp")
    finally:
        os.umask(old)
    assert mode(folder) == 0o700
    assert os.lstat(folder).st_uid == os.geteuid()
    assert control_path.ssh_envvars(folder) == {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(folder)}


def test_an_existing_private_folder_is_used_as_it_is(base: Path) -> None:
    (base / "cp").mkdir(mode=0o700)
    (base / "cp" / "kept").write_text("x")
    assert private_folder(base / "cp") == base / "cp"
    assert (base / "cp" / "kept").read_text() == "x"


def refused(folder: Path) -> str:
    with pytest.raises(BadInput) as raised:
        private_folder(folder)
    assert raised.value.code == ExitCode.BAD_INPUT
    message = raised.value.message
    assert "\n" not in message and str(folder) in message
    return message


@pytest.mark.parametrize("loose", [0o755, 0o750, 0o711, 0o777, 0o1777, 0o500])
def test_a_folder_with_another_mode_is_refused_and_left_alone(base: Path, loose: int) -> None:
    folder = base / "cp"
    folder.mkdir()
    folder.chmod(loose)
    assert f"mode {loose & 0o7777:04o}" in refused(folder)
    assert mode(folder) == loose  # not "fixed": someone else may have entered it already


@needs_root
def test_a_folder_of_another_user_is_refused_even_with_mode_0700(base: Path) -> None:
    folder = base / "cp"
    folder.mkdir(mode=0o700)
    os.chown(folder, OTHER_UID, OTHER_UID)
    assert "belongs to" in refused(folder) and f"uid {OTHER_UID}" in refused(folder)
    assert os.lstat(folder).st_uid == OTHER_UID and list(folder.iterdir()) == []


def test_a_symbolic_link_to_a_private_folder_is_refused(base: Path) -> None:
    target = base / "real"
    target.mkdir(mode=0o700)
    (base / "cp").symlink_to(target)
    assert "symbolic link" in refused(base / "cp")


def test_a_file_in_its_place_is_refused(base: Path) -> None:
    (base / "cp").write_text("")
    assert "not a folder" in refused(base / "cp")


@needs_root
def test_a_parent_others_can_rename_in_is_refused(base: Path) -> None:
    parent = base / "open"
    parent.mkdir()
    parent.chmod(0o777)  # world-writable without the sticky bit: anyone may rename our folder away
    refused(parent / "cp")
    parent.chmod(0o1777)  # like /tmp: only the owner of an entry may rename it
    assert mode(private_folder(parent / "cp")) == 0o700
    owned = base / "theirs"
    owned.mkdir(mode=0o755)
    os.chown(owned, OTHER_UID, OTHER_UID)  # its owner may rename anything in it
    refused(owned / "cp")


def test_a_folder_too_long_for_socket_paths_is_refused(base: Path) -> None:
    folder = base / ("y" * MAX_FOLDER_LENGTH)
    assert "too long" in refused(folder)
    assert not folder.exists()


def test_check_folder_names_what_is_missing(base: Path) -> None:
    with pytest.raises(BadInput, match=str(base / "gone")):
        check_folder(base / "gone")


def test_run_temp_is_private_and_removed_after_success_and_failure(base: Path) -> None:
    folder = base / "cp"
    with run_temp("unit", folder) as temp:
        assert temp.parent == folder and mode(temp) == 0o700
        (temp / "work").write_text("x")
    assert not temp.exists()
    with pytest.raises(RuntimeError), run_temp("unit", folder) as failing:
        raise RuntimeError("boom")
    assert not failing.exists()
    assert list(folder.iterdir()) == []


HOLDER = """
import sys, time
from pathlib import Path
from relpromote.adapters.control_path import run_temp
with run_temp("held", Path(sys.argv[1])) as temp:
    print(temp, flush=True)
    time.sleep(600)
"""


def holder(folder: Path) -> tuple[subprocess.Popen[str], Path]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


def test_a_killed_run_leaves_a_folder_the_next_run_removes_and_a_live_one_is_kept(base: Path) -> None:
    folder = base / "cp"
    killed, killed_temp = holder(folder)
    live, live_temp = holder(folder)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert killed_temp.is_dir()  # SIGKILL: nothing of the run could clean up
        with run_temp("next", folder) as temp:
            assert not killed_temp.exists()
            assert live_temp.is_dir()
            assert {p.name for p in folder.iterdir()} == {temp.name, live_temp.name}
    finally:
        live.kill()
        live.wait()
        killed.kill()
    assert control_path.sweep_leftovers(folder) == [live_temp]
    assert list(folder.iterdir()) == []


def test_a_folder_without_its_lock_is_kept_while_young_and_removed_when_old(base: Path) -> None:
    folder = private_folder(base / "cp")
    starting = folder / "run-x-abc"
    starting.mkdir(mode=0o700)
    assert control_path.sweep_leftovers(folder) == []
    os.utime(starting, (1, 1))
    assert control_path.sweep_leftovers(folder) == [starting]
    assert not starting.exists()


def test_the_longest_socket_paths_under_the_folder_fit_the_108_byte_limit() -> None:
    folder = "f" * MAX_FOLDER_LENGTH
    control_socket_while_bound = f"{folder}/{'c' * 40}.{'r' * 16}"  # control_path %(directory)s/%%C, ssh's temp name
    agent_socket = f"{folder}/run-ansible-{'r' * 8}/ansible-local-{'9' * 7}{'r' * 8}/ssh_agent/agent.sock"
    assert max(len(control_socket_while_bound), len(agent_socket)) <= control_path.MAX_SOCKET_PATH
    for uid in (0, 4294967294):
        assert len(str(default_folder({}, euid=uid))) <= MAX_FOLDER_LENGTH
        assert len(f"/run/user/{uid}/relpromote") <= MAX_FOLDER_LENGTH
