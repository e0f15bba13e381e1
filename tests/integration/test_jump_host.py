"""A shared jump host: real local logins (made by the test with useradd) promoting from one project.

Each login runs the real `relpromote` console script as itself (setpriv: its own uid, gid and
groups, a clean environment without XDG_RUNTIME_DIR, its own home). The interpreter of the test
venv lives under /root, which other users cannot enter: each command runs in a mount namespace of
its own where /root is an empty tmpfs with only the interpreter folder bound back in — nothing else
of the machine changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import BIN, RELPROMOTE, REPO, Cli, git_run, make_app_source, make_project, one_line_error, write_manifest
from tests.integration.conftest import write_inventories

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"), reason="needs root and useradd")

PYENV = Path("/root/.pyenv")
SCANNED = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))  # where any local user may create files


def _closed_ancestor(path: Path) -> Path | None:
    """The topmost folder above `path` that other users cannot enter (/root, a 0700 mktemp folder), if any."""
    for ancestor in reversed(path.parents):
        if ancestor != Path("/") and not ancestor.stat().st_mode & stat.S_IXOTH:
            return ancestor
    return None


def _opening_script() -> str:
    """Shell run as root in the login's fresh mount namespace: each closed folder above the interpreter and the
    checkout becomes an empty 0755 tmpfs with only those bound back in; nothing changes outside the namespace.
    $1 is an empty folder to park them on, then setpriv's arguments follow."""
    needed = [path for path in (PYENV, REPO) if path.exists()]
    by_closed: dict[Path, list[Path]] = {}
    for path in needed:
        closed = _closed_ancestor(path)
        if closed is not None:
            by_closed.setdefault(closed, []).append(path)
    lines = ['park="$1"; shift']
    for index, (closed, paths) in enumerate(by_closed.items()):
        parks = [f'"$park/{index}-{n}"' for n in range(len(paths))]
        lines += [f"mkdir -p {spot} && mount --bind '{path}' {spot} || exit 97" for spot, path in zip(parks, paths, strict=True)]
        lines.append(f"mount -t tmpfs -o mode=0755 tmpfs '{closed}' || exit 97")
        lines += [f"mkdir -p '{path}' && mount --move {spot} '{path}' || exit 97" for spot, path in zip(parks, paths, strict=True)]
    lines.append('exec setpriv "$@"')
    return "; ".join(lines)


AS_USER = _opening_script()


@dataclass(frozen=True)
class Login:
    name: str
    uid: int
    gid: int
    home: Path

    @property
    def private_folder(self) -> Path:
        return Path(f"/tmp/relpromote-{self.uid}")

    @property
    def identity(self) -> Path:
        return self.home / ".config" / "relpromote" / "identity.key"


@dataclass
class JumpHost:
    base: Path  # the shared parent of the project (under /srv: nothing of the test's own in the scanned folders)
    park: Path
    logins: list[Login]  # in `group`
    group: str
    outsiders: list[Login] = field(default_factory=list)  # logins of the same host that are not in `group`

    def command(self, login: Login, args: list[str], cwd: Path) -> list[str]:
        env = {"HOME": str(login.home), "USER": login.name, "LOGNAME": login.name, "PATH": f"{BIN}:/usr/bin:/bin",
               "LANG": "C.UTF-8", "RELPROMOTE_IDENTITY": str(login.identity)}
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", AS_USER, "as-user", str(self.park),
                f"--reuid={login.uid}", f"--regid={login.gid}", "--init-groups", "--",
                "env", "-i", f"--chdir={cwd}", *(f"{k}={v}" for k, v in env.items()), *args]

    def run(self, login: Login, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(login, list(args), cwd), capture_output=True, text=True, timeout=timeout)

    def relpromote(self, login: Login, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return self.run(login, RELPROMOTE, *args, cwd=cwd)


def _processes_of(uid: int) -> dict[int, str]:
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if entry.stat().st_uid == uid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return found


def _end_processes_of(uid: int) -> None:
    """End what the test's own logins left running (their ssh masters: ControlPersist), by pid."""
    for pid in _processes_of(uid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.05)


@contextlib.contextmanager
def jump_host_logins(outsiders: int = 0) -> Iterator[JumpHost]:
    """Two logins in one group, and `outsiders` more that are not in it; all removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    group = f"rp17g{tag}"
    names = [f"rp17a{tag}", f"rp17b{tag}", *(f"rp17{chr(ord('c') + n)}{tag}" for n in range(outsiders))]
    base = Path(tempfile.mkdtemp(prefix="rp-jump-", dir="/srv"))
    base.chmod(0o755)
    park = base / ".park"
    park.mkdir()
    logins: list[Login] = []
    subprocess.run(["groupadd", group], check=True)
    try:
        for index, name in enumerate(names):
            groups = ["--groups", group] if index < 2 else []
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", *groups, name], check=True)
            entry = pwd.getpwnam(name)
            logins.append(Login(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir)))
        yield JumpHost(base, park, logins[:2], group, logins[2:])
    finally:
        for login in logins:
            _end_processes_of(login.uid)
            for folder in SCANNED:
                for path in _owned_by(login.uid, folder):
                    if path.parent == folder:
                        shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() else path.unlink()
            subprocess.run(["userdel", "--remove", login.name], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def jump_host() -> Iterator[JumpHost]:
    with jump_host_logins() as jump:
        yield jump


def _owned_by(uid: int, top: Path) -> list[Path]:
    """Every file and folder under `top` that belongs to `uid` (what a user's run left in a shared folder)."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(top, onerror=lambda _: None):
        for name in dirs + files:
            path = Path(folder) / name
            with contextlib.suppress(OSError):
                if os.lstat(path).st_uid == uid:
                    found.append(path)
    return sorted(found)


def _left_in_shared_folders(login: Login) -> list[Path]:
    """What of this login is in /tmp, /var/tmp or /dev/shm, except its private folder's sockets (its ssh masters)."""
    left = []
    for top in SCANNED:
        for path in _owned_by(login.uid, top):
            if path == login.private_folder or (path.parent == login.private_folder and path.is_socket()):
                continue
            left.append(path)
    return left


def _give(path: Path, login: Login) -> None:
    for folder, dirs, files in os.walk(path):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.lchown(name, login.uid, login.gid)


def _install_identity(project: Cli, person: str, login: Login) -> None:
    login.identity.parent.mkdir(parents=True)
    shutil.move(project.cwd / ".keys" / f"{person}.key", login.identity)
    login.identity.chmod(0o600)
    _give(login.home / ".config", login)


def _install_ssh_key(farm: SshHostFarm, login: Login) -> None:
    assert farm.private_key is not None
    ssh = login.home / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    shutil.copy(farm.private_key, ssh / "farm_key")
    (ssh / "farm_key").chmod(0o600)
    _give(ssh, login)


def _project(jump: JumpHost, farm: SshHostFarm, operators: dict[str, Login], **config: Any) -> Cli:
    """A promotion project on real hosts with 1.0.0 and 1.1.0 built (by root's alice); each login's key in its home."""
    project = make_project(jump.base / "proj", {"alice": ["release_manager"], **{p: ["operator"] for p in operators}}, **config)
    write_inventories(project, farm)
    for environment in ("qa", "deployment", "production"):
        hosts_file = project.cwd / "inventories" / environment / "hosts.yml"
        hosts_file.write_text(hosts_file.read_text().replace(str(farm.private_key), "~/.ssh/farm_key"))
    git_run(project.cwd, "commit", "-qam", "each operator's own copy of the hosts' key")
    source = make_app_source(jump.base / "app")
    for version in ("1.0.0", "1.1.0"):
        (source / "greeting.txt").write_text(f"{version}\n")
        git_run(source, "commit", "-qam", version)
        manifest = write_manifest(project.cwd / f"{version}.yml", version)
        project.run("build", version, "--source", str(source), "--manifest", str(manifest), identity="alice", check=True)
    for person, login in operators.items():
        _install_identity(project, person, login)
        _install_ssh_key(farm, login)
    return project


def _live(farm: SshHostFarm, host: str) -> str | None:
    link = farm[host].path("/opt/shop/current")
    return os.readlink(link).removeprefix("releases/") if link.is_symlink() else None


def _finished_promotions(project: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(project / ".relpromote" / "ledger.db")) as db:
        rows = db.execute("SELECT payload FROM entries WHERE kind = 'promotion.finished' ORDER BY seq").fetchall()
    return [json.loads(row[0]) for row in rows]


def test_a_control_folder_made_first_by_another_user_is_refused_and_never_used(jump_host: JumpHost, farm: SshHostFarm) -> None:
    operator, other = jump_host.logins
    project = _project(jump_host, farm, {"oscar": operator})
    _give(project.cwd, operator)
    planted = operator.private_folder
    for kind in ("open folder", "symlink to a folder of the operator's", "private folder of the other user"):
        if kind == "open folder":
            assert jump_host.run(other, "mkdir", "-m", "0777", str(planted), cwd=Path("/")).returncode == 0
        elif kind == "symlink to a folder of the operator's":
            decoy = operator.home / "decoy"  # the operator's own 0700 folder: still refused, the link is the other's
            decoy.mkdir(mode=0o700)
            _give(decoy, operator)
            assert jump_host.run(other, "ln", "-s", str(decoy), str(planted), cwd=Path("/")).returncode == 0
        else:
            assert jump_host.run(other, "mkdir", "-m", "0700", str(planted), cwd=Path("/")).returncode == 0
        owner = os.lstat(planted).st_uid
        assert owner == other.uid

        refused = jump_host.relpromote(operator, "promote", "1.0.0", "--to", "qa", cwd=project.cwd)

        assert refused.returncode == 2, (kind, refused.stderr)
        assert str(planted) in one_line_error(refused), kind
        target = planted.resolve()
        assert list(target.iterdir()) == [], kind  # no socket, no temp folder: never used
        assert os.lstat(planted).st_uid == other.uid  # and left as it was
        assert _live(farm, "qa-app-1") is None and _finished_promotions(project.cwd) == []
        status = json.loads(jump_host.relpromote(operator, "--json", "lock", "status", "--env", "qa", cwd=project.cwd).stdout)
        assert status.get("lock") is None, status  # the refused run released the environment
        assert jump_host.run(other, "rm", "-r" if kind != "symlink to a folder of the operator's" else "-f", str(planted),
                             cwd=Path("/")).returncode == 0

    promoted = jump_host.relpromote(operator, "--json", "promote", "1.0.0", "--to", "qa", cwd=project.cwd)

    assert promoted.returncode == 0, promoted.stderr
    assert {_live(farm, "qa-app-1"), _live(farm, "qa-app-2")} == {"1.0.0"}
    made = os.lstat(planted)
    assert stat.S_ISDIR(made.st_mode) and made.st_uid == operator.uid and stat.S_IMODE(made.st_mode) == 0o700
    assert [p for p in planted.iterdir() if not p.is_socket()] == []  # only the ssh masters' sockets stay


def _wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_no_file_of_a_run_outlives_it_in_shared_temp_folders_even_after_a_kill(jump_host: JumpHost, farm: SshHostFarm) -> None:
    operator, _ = jump_host.logins
    project = _project(jump_host, farm, {"oscar": operator})
    _give(project.cwd, operator)
    assert _left_in_shared_folders(operator) == []

    done = jump_host.relpromote(operator, "promote", "1.0.0", "--to", "qa", cwd=project.cwd)
    assert done.returncode == 0, done.stderr
    assert _live(farm, "qa-app-1") == "1.0.0"
    assert _left_in_shared_folders(operator) == []
    assert any(p.is_socket() for p in operator.private_folder.iterdir())  # the scan does look where the run wrote

    killed = subprocess.Popen(jump_host.command(operator, [RELPROMOTE, "promote", "1.1.0", "--to", "qa"], project.cwd),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # In the middle of the run: Ansible started and reached the hosts.
        _wait_until(lambda: any(operator.private_folder.glob("run-ansible-*/ansible-local-*")), 120, "Ansible's start")
        _wait_until(lambda: farm["qa-app-1"].path("/opt/shop/releases/1.1.0").exists(), 120, "the upload to qa-app-1")
        killed.send_signal(signal.SIGKILL)  # relpromote itself: no handler, no finally
        killed.wait(timeout=30)
    finally:
        killed.kill()
    _wait_until(lambda: all(c.startswith("ssh: ") for c in _processes_of(operator.uid).values()), 60,
                "the run's processes to end (the lifeline)")
    leftovers = sorted(operator.private_folder.glob("run-*"))
    assert leftovers  # the kill gave relpromote no chance to clean up
    assert [p for p in _left_in_shared_folders(operator) if not p.is_relative_to(operator.private_folder)] == []

    # The next run of the same login removes them.
    held = json.loads(jump_host.relpromote(operator, "--json", "lock", "status", "--env", "qa", cwd=project.cwd).stdout)["lock"]
    assert (held["holder"], held["hostname"]) == ("oscar", f"{operator.name}@{socket.gethostname()}")  # person and login
    released = jump_host.relpromote(operator, "lock", "release", "--env", "qa", "--lock-id", held["lock_id"],
                                    "--reason", "killed in a test", cwd=project.cwd)
    assert released.returncode == 0, released.stderr
    again = jump_host.relpromote(operator, "promote", "1.1.0", "--to", "qa", cwd=project.cwd)
    assert again.returncode == 0, again.stderr
    assert {_live(farm, "qa-app-1"), _live(farm, "qa-app-2")} == {"1.1.0"}
    assert not any(p.exists() for p in leftovers)
    assert _left_in_shared_folders(operator) == []
