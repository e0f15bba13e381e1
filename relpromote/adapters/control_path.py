"""The operator's private folder: SSH control sockets and the temporary files of a run.

On a shared jump host a predictable folder in world-writable /tmp (the old `/tmp/rp-cp`) can be made
by another user first: Ansible only creates a missing control folder, it never checks one that
exists, so that user could swap the sockets and see every SSH session of the run. relpromote picks
a folder per user — `$XDG_RUNTIME_DIR/relpromote` when that runtime folder is usable, else
`/tmp/relpromote-<uid>` — creates it atomically with mode 0700 and checks it before every run (not a
symbolic link, a directory, owned by this user, mode exactly 0700, in a parent nobody else can
rename it out of). Anything else is refused with exit 2 and never used.

Temporary folders of a run live in the same private folder (`run_temp`), are removed when the run
ends, also after a failure, and a killed run's leftovers are removed by the next run: each folder
holds a lock that dies with its process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from relpromote.errors import BadInput

# A Unix socket path has at most 107 bytes (sun_path is 108 with the NUL). Under the folder Ansible names a
# control socket "/" + a hash (10 characters by default, 40 for a control_path of %(directory)s/%%C), and ssh
# first binds a temporary name: the socket's path + "." + 16 random characters (58 bytes at most). A run's
# temporary folder here is Ansible's local temp: it puts its ssh-agent's socket at
# <folder>/run-ansible-XXXXXXXX/ansible-local-<pid><8>/ssh_agent/agent.sock (71 bytes at most).
MAX_SOCKET_PATH = 107
MAX_FOLDER_LENGTH = 34  # /run/user/<uid>/relpromote and /tmp/relpromote-<uid> fit for any uid

RUN_TEMP_PREFIX = "run-"
_ALIVE = ".alive"
_STARTING_GRACE = 60.0  # seconds a run folder without its lock may be a run that is starting


def default_folder(environ: Mapping[str, str] | None = None, euid: int | None = None) -> Path:
    """Where this user's private folder belongs: under a usable $XDG_RUNTIME_DIR, else /tmp/relpromote-<uid>."""
    environ = os.environ if environ is None else environ
    euid = os.geteuid() if euid is None else euid
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if runtime and _usable_runtime_dir(Path(runtime), euid):
        candidate = Path(runtime) / "relpromote"
        if len(os.fsencode(str(candidate))) <= MAX_FOLDER_LENGTH:
            return candidate
    return Path("/tmp") / f"relpromote-{euid}"


def private_folder(folder: Path | None = None) -> Path:
    """This user's private folder, created 0700 if missing and checked; BadInput (exit 2) naming it otherwise."""
    folder = default_folder() if folder is None else folder
    if len(os.fsencode(str(folder))) > MAX_FOLDER_LENGTH:
        raise BadInput(f"{folder}: too long for SSH control sockets (at most {MAX_FOLDER_LENGTH} bytes); "
                       "set XDG_RUNTIME_DIR to a shorter folder of yours")
    _check_parent(folder)
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass  # checked below like any folder that was there before
    except OSError as exc:
        raise BadInput(f"{folder}: cannot create the private folder for SSH control sockets ({exc.strerror}); "
                       "set XDG_RUNTIME_DIR to a folder of yours") from None
    else:
        _own_mode(folder)  # a umask may have taken bits away; what we just made is ours to fix
    check_folder(folder)
    return folder


def check_folder(folder: Path) -> None:
    """Refuse (BadInput) unless `folder` is a real directory, owned by this user, with mode 0700."""
    try:
        info = os.lstat(folder)
    except OSError as exc:
        raise BadInput(f"{folder}: the private folder for SSH control sockets cannot be checked ({exc.strerror})") from None
    problem = ""
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISDIR(info.st_mode):
        problem = "is not a folder"
    elif info.st_uid != os.geteuid():
        problem = f"belongs to {_user(info.st_uid)}, not to you ({_user(os.geteuid())})"
    elif stat.S_IMODE(info.st_mode) != 0o700:
        problem = f"has mode {stat.S_IMODE(info.st_mode):04o}, not 0700"
    if problem:
        raise BadInput(f"{folder}: {problem}; relpromote refuses it for SSH control sockets (whoever can enter it can take "
                       "over your SSH sessions): remove it, or set XDG_RUNTIME_DIR to a folder only you can enter")


def ssh_envvars(folder: Path | None = None) -> dict[str, str]:
    """What every Ansible run of relpromote gets: its SSH control sockets in the checked private folder."""
    return {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(private_folder(folder))}


class RunTemp:
    """A fresh 0700 folder for one run's temporary files in the private folder; `close()` removes it.

    It holds a lock (flock on `.alive`) while it lives: the kernel drops it when the process dies however it dies, so
    the next run knows the folder is a leftover and removes it (`sweep_leftovers`).
    """

    def __init__(self, label: str, folder: Path | None = None) -> None:
        base = private_folder(folder)
        sweep_leftovers(base)
        self.path = Path(tempfile.mkdtemp(prefix=f"{RUN_TEMP_PREFIX}{label}-", dir=base))
        self._alive: int | None = os.open(self.path / _ALIVE, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._alive, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._alive is not None:
            os.close(self._alive)
            self._alive = None


@contextlib.contextmanager
def run_temp(label: str, folder: Path | None = None) -> Iterator[Path]:
    """A RunTemp's folder for the length of a `with` block, removed after it however it ends."""
    temp = RunTemp(label, folder)
    try:
        yield temp.path
    finally:
        temp.close()


def sweep_leftovers(base: Path) -> list[Path]:
    """Remove the run folders in `base` whose run is gone (their lock is free): what a killed run left."""
    removed: list[Path] = []
    with os.scandir(base) as entries:
        runs = [Path(e.path) for e in entries if e.name.startswith(RUN_TEMP_PREFIX) and e.is_dir(follow_symlinks=False)]
    for path in runs:
        if _run_is_gone(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _run_is_gone(path: Path) -> bool:
    try:
        alive = os.open(path / _ALIVE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        # Made but not yet locked (a run starting now), or a run killed in between: gone once it is old.
        with contextlib.suppress(OSError):
            return time.time() - os.lstat(path).st_mtime > _STARTING_GRACE
        return False
    except OSError:
        return False
    try:
        fcntl.flock(alive, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(alive)
    return True


def _usable_runtime_dir(path: Path, euid: int) -> bool:
    """$XDG_RUNTIME_DIR as its specification promises it: absolute, a real folder of this user, closed to others."""
    if not path.is_absolute():
        return False
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == euid and not info.st_mode & 0o077


def _check_parent(folder: Path) -> None:
    """The parent must not let anyone else rename the folder away: owned by root or us, others' writes only if sticky."""
    try:
        info = os.stat(folder.parent)
    except OSError as exc:
        raise BadInput(f"{folder.parent}: cannot hold the private folder for SSH control sockets ({exc.strerror})") from None
    if info.st_uid not in (0, os.geteuid()) or (info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX):
        raise BadInput(f"{folder}: others may rename it away (its parent belongs to {_user(info.st_uid)}, mode "
                       f"{stat.S_IMODE(info.st_mode):04o}); relpromote will not keep SSH control sockets there: "
                       "set XDG_RUNTIME_DIR to a folder only you can enter")


def _own_mode(folder: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            if os.fstat(descriptor).st_uid == os.geteuid():
                os.fchmod(descriptor, 0o700)
        finally:
            os.close(descriptor)


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
