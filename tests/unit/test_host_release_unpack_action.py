"""The controller side of release_unpack (roles/release_deploy/action_plugins/release_unpack.py).

Its shell command is what looks at the host before anything is uploaded: it is run here by a real
/bin/sh against real directories, hostile names included (quotes, `$(...)`, a leading dash).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import ansible.plugins.loader as plugin_loader
import pytest
from ansible import context
from ansible.module_utils.common.collections import ImmutableDict
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.loader import connection_loader, init_plugin_loader, module_loader, module_utils_loader
from ansible.template import Templar

from tests.unit.host_modules import REPO, Member, directory, file, load, make_tar, symlink

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
    inside = sh(ACTION.hook_test("release", "hook", str(tmp_path)), Path("/"))
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
    odd = artifact(tmp_path, [directory("."), file("/bin/abs", b"x", 0o755), file("bin/others", b"x", 0o601)])
    assert ACTION.artifact_hook_status(odd, "bin/abs") == "ok", "a member's leading / is not part of its place in the release"
    assert ACTION.artifact_hook_status(odd, "bin/others") == "ok", "any execute bit"


def test_a_hook_that_cannot_run_fails_with_one_line_and_data() -> None:
    failure = ACTION.hook_failure("bin/restart now", "release", "bin/restart", "/opt/app/releases/1.0.0", "1.0.0", "noexec")
    assert failure["failed"] and failure["error"]["step"] == "hook"
    assert failure["msg"] == (
        'the restart hook "bin/restart now" cannot run: bin/restart is not executable in release 1.0.0 (/opt/app/releases/1.0.0/bin/restart)'
    )
    on_path = ACTION.hook_failure("svc restart", "path", "svc", "/d", "", "missing")
    assert on_path["msg"].endswith("svc is not found on the PATH")
    assert ACTION.hook_failure("/x", "host", "/x", "/d", "", "missing")["error"] == {
        "step": "hook", "command": "/x", "rc": None, "output": [], "problem": "/x is missing"}
    odd = ACTION.hook_failure("bin/x", "release", "bin/x", "/opt/app/releases/2.0.0", "", "strange")
    assert odd["msg"].endswith("bin/x strange in release 2.0.0 (/opt/app/releases/2.0.0/bin/x)")
    assert ACTION.hook_failure("/x", "host", "/x", "/d", "", "strange")["msg"].endswith("cannot run: /x strange")


def test_version_of_a_link_target() -> None:
    assert ACTION.version_of("releases/1.0.0") == "1.0.0" and ACTION.version_of("/opt/app/releases/1.0.0/") == "1.0.0"
    assert ACTION.version_of("1.0.0") == "1.0.0" and ACTION.version_of("") == "" and ACTION.version_of(None) == ""


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
    # The kernel stamps files with a coarse clock (a tick of a few ms): a change in the very tick the manifest was
    # written has its time, not a newer one (CI saw a chmod do so). A tamperer comes later than that.
    time.sleep(0.05)
    tamper(dest)  # type: ignore[operator]
    assert ACTION.parse(sh(ACTION.inspect_command(str(dest), "", [], False), tmp_path).stdout)["suspect"] == "yes"


def test_renaming_the_release_into_place_does_not_make_it_suspect(tmp_path: Path) -> None:
    dest = _unpacked(tmp_path)
    moved = tmp_path / "releases" / "1.0.1"
    dest.rename(moved)
    assert ACTION.parse(sh(ACTION.inspect_command(str(moved), "", [], False), tmp_path).stdout)["suspect"] == "no"


# The plugin's run(), in this process, over Ansible's real local connection: its shell command and the
# module it calls (found in the role's library, built by AnsiballZ) run for real on this machine.
context.CLIARGS = ImmutableDict(verbosity=0)
init_plugin_loader()
module_loader.add_directory(str(REPO / "roles" / "release_deploy" / "library"))
module_utils_loader.add_directory(str(REPO / "roles" / "release_deploy" / "module_utils"))


class Controller:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.app = root / "app"
        self.tmp = root / "remote-tmp"
        self.artifact = root / "app-1.0.0.tar.gz"
        self.digest = make_tar(self.artifact, [directory("."), directory("bin"), file("bin/restart", b"#!/bin/sh\n", 0o755),
                                               directory(".release"), file(".release/VERSION", b"1.0.0\n")])

    @property
    def dest(self) -> Path:
        return self.app / "releases" / "1.0.0"

    def run(self, check: bool = False, **overrides: Any) -> dict[str, Any]:
        args: dict[str, Any] = {
            "artifact": str(self.artifact), "dest": str(self.dest), "digest": self.digest, "version": "1.0.0",
            "link": str(self.app / "current"),
            "directories": [{"path": str(self.app), "mode": "0755"}, {"path": str(self.app / "releases"), "mode": "0755"}],
        }
        args.update(overrides)
        args = {key: value for key, value in args.items() if value is not None}
        task = Task.load({"action": "release_unpack", "args": args})
        task.check_mode = check
        play_context = PlayContext()
        connection = connection_loader.get("local", play_context, os.devnull)
        variables = {"ansible_python_interpreter": sys.executable, "ansible_remote_tmp": str(self.tmp)}
        connection._shell.set_options(var_options=variables)
        loader = DataLoader()
        action = ACTION.ActionModule(task, connection, play_context, loader, Templar(loader=loader, variables=variables), plugin_loader)
        return dict(action.run(task_vars=variables))

    def leftovers(self) -> list[str]:
        return sorted(os.listdir(self.tmp)) if self.tmp.exists() else []


@pytest.fixture
def controller(tmp_path: Path) -> Controller:
    return Controller(tmp_path)


def test_a_fresh_release_is_uploaded_unpacked_and_the_upload_removed(controller: Controller) -> None:
    result = controller.run()
    assert not result.get("failed"), result.get("msg")
    assert result["uploaded"] and result["changed"] and not result["present"] and result["src_removed"] and result["previous"] == ""
    assert result["directories"] == [str(controller.app), str(controller.app / "releases")]
    assert (controller.dest / ".release" / "DIGEST").read_text() == controller.digest + "\n"
    assert controller.leftovers() == [], "the private upload directory is removed"
    assert result["invocation"]["module_args"]["src"].startswith(str(controller.tmp) + "/"), "uploaded under the remote tmp, never elsewhere"


def test_a_release_already_there_is_neither_uploaded_nor_unpacked(controller: Controller) -> None:
    controller.run()
    before = (controller.dest / ".release" / "DIGEST").stat().st_ino
    (controller.app / "current").symlink_to("releases/1.0.0")
    result = controller.run()
    assert not result.get("failed") and result["present"] and not result["uploaded"] and not result["changed"], result.get("msg")
    assert result["previous"] == "1.0.0" and result["directories"] == []
    assert (controller.dest / ".release" / "DIGEST").stat().st_ino == before and controller.leftovers() == []


def test_check_mode_uploads_nothing_and_creates_nothing(controller: Controller) -> None:
    result = controller.run(check=True)
    assert not result.get("failed"), result.get("msg")
    assert not result["uploaded"] and result["changed"] and "would upload and unpack" in result["msg"]
    assert result["directories"] == [str(controller.app), str(controller.app / "releases")]
    assert not controller.app.exists() and controller.leftovers() == []


def test_another_artifact_under_the_same_version_is_refused_without_an_upload(controller: Controller) -> None:
    controller.dest.mkdir(parents=True)
    result = controller.run()
    assert result.get("failed") and "already exists holding digest (none: no .release/DIGEST)" in result["msg"]
    assert not result["uploaded"] and controller.leftovers() == []


@pytest.mark.parametrize("check", [False, True])
def test_a_hook_missing_on_the_host_fails_before_anything_is_uploaded(controller: Controller, check: bool) -> None:
    result = controller.run(check=check, hook=str(controller.root / "no-hook") + " --now")
    assert result.get("failed") and result["msg"] == f'the restart hook "{controller.root}/no-hook --now" cannot run: {controller.root}/no-hook is missing'
    assert result["error"]["step"] == "hook" and not result["uploaded"] and not controller.dest.exists()


def test_a_hook_not_on_the_path_fails_before_anything_is_uploaded(controller: Controller) -> None:
    result = controller.run(hook="no-such-program-h18 restart")
    assert result.get("failed") and result["msg"].endswith("cannot run: no-such-program-h18 is not found on the PATH")
    assert not controller.dest.exists()


def test_a_hook_inside_a_release_not_yet_there_is_checked_in_the_release(controller: Controller) -> None:
    ok = controller.run(hook=str(controller.app / "current" / "bin" / "restart"))
    assert not ok.get("failed"), ok.get("msg")
    controller.digest = make_tar(controller.artifact, [directory("."), directory("bin"), file("bin/restart", b"#!/bin/sh\n", 0o644),
                                                       directory(".release"), file(".release/VERSION", b"1.0.0\n")])
    (controller.app / "releases" / "1.0.0").rename(controller.app / "releases" / "0.9.0")
    for check in (True, False):
        refused = controller.run(check=check, hook="bin/restart")
        assert refused.get("failed") and "bin/restart is not executable in release 1.0.0" in refused["msg"], refused
        assert refused["error"]["step"] == "hook" and not controller.dest.exists()


def test_a_hook_in_the_release_is_checked_in_the_artifact_in_check_mode_only_when_readable(controller: Controller) -> None:
    result = controller.run(check=True, hook="bin/restart", artifact=str(controller.root / "missing.tar.gz"))
    assert result.get("failed") and result["msg"].startswith(f"could not read artifact {controller.root}/missing.tar.gz to look for the restart hook")


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ({"dest": None}, "dest is required"),
        ({"digest": None}, "digest is required"),
        ({"directories": [{"path": "/x"}]}, "directories must be a list of {path, mode} with an octal mode"),
        ({"directories": [{"path": "/x", "mode": "rwx"}]}, "directories must be a list of {path, mode} with an octal mode"),
        ({"hook": "bin/restart 'oops"}, """the restart hook "bin/restart 'oops" cannot be split into arguments: No closing quotation"""),
    ],
)
def test_bad_arguments_fail_before_the_host_is_touched(controller: Controller, overrides: dict[str, Any], said: str) -> None:
    result = controller.run(**overrides)
    assert result.get("failed") and result["msg"] == said and not controller.app.exists()


def test_a_file_where_the_application_directory_belongs_stops_the_task(controller: Controller) -> None:
    controller.app.write_text("not a directory")
    result = controller.run()
    assert result.get("failed") and result["msg"].startswith(f"could not look at {controller.dest} or create the application directories: ")
    assert "exists and is not a directory" in result["msg"]


def test_an_artifact_missing_on_the_controller_is_named(controller: Controller) -> None:
    result = controller.run(artifact=str(controller.root / "nothing.tar.gz"))
    assert result.get("failed") and result["msg"].startswith(f"artifact {controller.root}/nothing.tar.gz is not on the controller, or cannot be read there")
    assert not controller.dest.exists()
    none = controller.run(artifact=None)
    assert none.get("failed") and none["msg"] == "the release is not on the host and no artifact was given to upload"



def test_uploads_an_earlier_run_left_are_removed_not_in_check_mode(tmp_path: Path) -> None:
    incoming = tmp_path / ".incoming"
    (incoming / "ansible-tmp-1700000000.1-42-1").mkdir(parents=True)
    (incoming / "ansible-tmp-1700000000.1-42-1" / ("ab" * 32 + ".tar.gz")).write_bytes(b"half an upload")
    (incoming / "keep-me").write_text("not Ansible's")
    dest = str(tmp_path / "releases" / "1.0.0")
    looked = ACTION.parse(sh(ACTION.inspect_command(dest, "", [], True, None, str(incoming)), tmp_path).stdout)
    assert looked["leftover"] == [] and (incoming / "ansible-tmp-1700000000.1-42-1").exists()
    done = ACTION.parse(sh(ACTION.inspect_command(dest, "", [], False, None, str(incoming)), tmp_path).stdout)
    assert done["leftover"] == [f"{incoming}/ansible-tmp-1700000000.1-42-1"]
    assert sorted(p.name for p in incoming.iterdir()) == ["keep-me"]
