"""The controller side of release_unpack (roles/release_deploy/action_plugins/release_unpack.py).

Its shell command is what looks at the host before anything is uploaded: it is run here by a real
/bin/sh against real directories, hostile names included (quotes, `$(...)`, a leading dash).
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from tests.unit.host_modules import Member, directory, file, load, make_tar, symlink

ACTION = load("roles/release_deploy/action_plugins/release_unpack.py")


def sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=30)


def test_the_inspection_reports_link_digest_and_dest(tmp_path: Path) -> None:
    dest = tmp_path / "releases" / "1.0.0"
    (dest / ".release").mkdir(parents=True)
    (dest / ".release" / "DIGEST").write_text("ab" * 32 + "\n")
    (tmp_path / "current").symlink_to("releases/0.9.0")
    done = sh(ACTION.inspect_command(str(dest), str(tmp_path / "current"), [], False), tmp_path)
    found = ACTION.parse(done.stdout)
    assert done.returncode == 0 and found["digest"] == "ab" * 32 and found["dest"] == "yes" and found["link"] == "releases/0.9.0"
    assert ACTION.version_of(found["link"]) == "0.9.0"
    missing = ACTION.parse(sh(ACTION.inspect_command(str(tmp_path / "releases" / "2.0.0"), "", [], False), tmp_path).stdout)
    assert missing["dest"] == "no" and missing["digest"] == "" and missing["link"] == ""


def test_a_dangling_link_at_dest_still_counts_as_existing(tmp_path: Path) -> None:
    dest = tmp_path / "1.0.0"
    dest.symlink_to("/nonexistent")
    assert ACTION.parse(sh(ACTION.inspect_command(str(dest), "", [], False), tmp_path).stdout)["dest"] == "yes"


def test_directories_are_created_with_their_mode_and_only_reported_in_check_mode(tmp_path: Path) -> None:
    app, incoming = tmp_path / "app", tmp_path / "app" / ".incoming"
    wanted = [(str(app), ACTION.octal("0755")), (str(incoming), ACTION.octal(0o700))]
    checked = sh(ACTION.inspect_command(str(app / "releases" / "1"), "", wanted, True), tmp_path)
    assert ACTION.parse(checked.stdout)["directory"] == [str(app), str(incoming)] and not app.exists()
    done = sh(ACTION.inspect_command(str(app / "releases" / "1"), "", wanted, False), tmp_path)
    assert ACTION.parse(done.stdout)["directory"] == [str(app), str(incoming)]
    assert stat.S_IMODE(incoming.stat().st_mode) == 0o700 and stat.S_IMODE(app.stat().st_mode) == 0o755
    again = sh(ACTION.inspect_command(str(app / "releases" / "1"), "", wanted, False), tmp_path)
    assert ACTION.parse(again.stdout)["directory"] == [], "directories already right are not reported"
    incoming.chmod(0o777)
    fixed = sh(ACTION.inspect_command(str(app / "releases" / "1"), "", wanted, False), tmp_path)
    assert ACTION.parse(fixed.stdout)["directory"] == [str(incoming)] and stat.S_IMODE(incoming.stat().st_mode) == 0o700


def test_a_file_where_a_directory_belongs_stops_the_inspection(tmp_path: Path) -> None:
    (tmp_path / "app").write_text("not a directory")
    done = sh(ACTION.inspect_command(str(tmp_path / "app" / "releases" / "1"), "", [(str(tmp_path / "app"), "0755")], False), tmp_path)
    assert done.returncode == 3 and "exists and is not a directory" in done.stderr


@pytest.mark.parametrize("name", ["$(touch pwned)", "a'b", "-rf", "x; touch pwned", "`touch pwned`"])
def test_hostile_names_are_quoted_never_run(tmp_path: Path, name: str) -> None:
    done = sh(ACTION.inspect_command(f"{name}/1.0.0", name, [(name, "0755")], False), tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / name).is_dir() and not (tmp_path / "pwned").exists()
    assert ACTION.parse(done.stdout)["directory"] == [name]


def test_the_hook_program_is_found_where_the_module_looks() -> None:
    assert ACTION.hook_program("/opt/app/current/bin/restart --now", "/opt/app/current") == ("release", "bin/restart")
    assert ACTION.hook_program("bin/restart", "/opt/app/current") == ("release", "bin/restart")
    assert ACTION.hook_program("./bin/../bin/restart", "") == ("release", "bin/restart")
    assert ACTION.hook_program("systemctl restart app", "/opt/app/current") == ("path", "systemctl")
    assert ACTION.hook_program("/usr/local/bin/restart", "/opt/app/current") == ("host", "/usr/local/bin/restart")
    assert ACTION.hook_program("/opt/app/currentX/run", "/opt/app/current") == ("host", "/opt/app/currentX/run")


@pytest.mark.parametrize(
    ("setup", "expected"),
    [("touch hook; chmod 755 hook", "ok"), ("touch hook; chmod 644 hook", "noexec"), ("mkdir hook", "notfile"), (":", "missing")],
)
def test_the_hook_test_tells_each_problem(tmp_path: Path, setup: str, expected: str) -> None:
    sh(setup, tmp_path)
    done = sh(ACTION.hook_test("host", str(tmp_path / "hook"), ""), tmp_path)
    assert ACTION.parse(done.stdout)["hook"] == expected
    inside = sh(ACTION.hook_test("release", "hook", str(tmp_path)), tmp_path)
    assert ACTION.parse(inside.stdout)["hook"] == expected


def test_a_hook_on_the_path_is_looked_up(tmp_path: Path) -> None:
    assert ACTION.parse(sh(ACTION.hook_test("path", "sh", ""), tmp_path).stdout)["hook"] == "ok"
    assert ACTION.parse(sh(ACTION.hook_test("path", "no-such-program-h18", ""), tmp_path).stdout)["hook"] == "missing"


def artifact(tmp_path: Path, members: list[Member]) -> str:
    path = tmp_path / "a.tar.gz"
    make_tar(path, members)
    return str(path)


def test_the_artifact_on_the_controller_tells_the_hook_in_check_mode(tmp_path: Path) -> None:
    members = [
        directory("."), directory("bin"), file("bin/restart", b"#!/bin/sh\n", 0o755), file("bin/plain", b"x", 0o644),
        symlink("bin/again", "restart"), symlink("bin/loop", "loop"), symlink("bin/dangling", "nothing"),
    ]
    path = artifact(tmp_path, members)
    assert ACTION.artifact_hook_status(path, "bin/restart") == "ok"
    assert ACTION.artifact_hook_status(path, "bin/again") == "ok"
    assert ACTION.artifact_hook_status(path, "bin/plain") == "noexec"
    assert ACTION.artifact_hook_status(path, "bin") == "notfile"
    assert ACTION.artifact_hook_status(path, "bin/missing") == "missing"
    assert ACTION.artifact_hook_status(path, "bin/dangling") == "missing"
    assert ACTION.artifact_hook_status(path, "bin/loop") == "missing"


def test_a_hook_that_cannot_run_fails_with_one_line_and_data() -> None:
    failure = ACTION.hook_failure("bin/restart now", "release", "bin/restart", "/opt/app/releases/1.0.0", "1.0.0", "noexec")
    assert failure["failed"] and failure["error"]["step"] == "hook"
    assert failure["msg"] == (
        'the restart hook "bin/restart now" cannot run: bin/restart is not executable in release 1.0.0 (/opt/app/releases/1.0.0/bin/restart)'
    )
    on_path = ACTION.hook_failure("svc restart", "path", "svc", "/d", "", "missing")
    assert on_path["msg"].endswith("svc is not found on the PATH")
    assert ACTION.hook_failure("/x", "host", "/x", "/d", "", "missing")["error"]["problem"] == "/x is missing"


def test_octal_modes_and_local_operands() -> None:
    assert ACTION.octal("755") == ACTION.octal("0755") == ACTION.octal(0o755) == "0755"
    assert ACTION._local("-rf") == "./-rf" and ACTION._local("/opt/x") == "/opt/x"
    with pytest.raises(ValueError):
        ACTION.octal("rwx")


UNPACK = load("roles/release_deploy/library/release_unpack.py")


def _unpacked(tmp_path: Path) -> Path:
    """A release as release_unpack leaves it (with its manifest), by the module itself."""
    from tests.unit.host_modules import release_members, run

    upload = tmp_path / "upload.tar.gz"
    digest = make_tar(upload, release_members())
    dest = tmp_path / "releases" / "1.0.0"
    dest.parent.mkdir(parents=True)
    assert not run(UNPACK, {"src": str(upload), "dest": str(dest), "digest": digest, "version": "1.0.0"}).failed
    return dest


@pytest.mark.parametrize(
    "tamper",
    [
        lambda dest: (dest / "app.py").write_text("print('owned')\n"),
        lambda dest: (dest / "bin" / "new").write_text("x"),
        lambda dest: (dest / "new").write_text("x"),
        lambda dest: (dest / "app.py").unlink(),
        lambda dest: (dest / "bin" / "restart").chmod(0o777),
        lambda dest: (dest / ".release" / "FILES.json").unlink(),
    ],
)
def test_the_inspection_suspects_a_release_changed_after_its_manifest(tmp_path: Path, tamper: object) -> None:
    dest = _unpacked(tmp_path)
    assert ACTION.parse(sh(ACTION.inspect_command(str(dest), "", [], False), tmp_path).stdout)["suspect"] == "no"
    tamper(dest)  # type: ignore[operator]
    assert ACTION.parse(sh(ACTION.inspect_command(str(dest), "", [], False), tmp_path).stdout)["suspect"] == "yes"


def test_renaming_the_release_into_place_does_not_make_it_suspect(tmp_path: Path) -> None:
    dest = _unpacked(tmp_path)
    moved = tmp_path / "releases" / "1.0.1"
    dest.rename(moved)
    assert ACTION.parse(sh(ACTION.inspect_command(str(moved), "", [], False), tmp_path).stdout)["suspect"] == "no"
