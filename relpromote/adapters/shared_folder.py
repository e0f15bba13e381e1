"""A project folder several operators share on one host: the group that owns relpromote's files (`group:`).

With `group: NAME` in relpromote.yml, the ledger (its file and SQLite's -wal, -shm and -journal beside it), the
artifact store and the run folders belong to that group: folders 2770 (setgid, so what is made in them takes the
group), files 0660, files that are read-only by design (stored artifacts) 0440, nothing for anyone outside the group.
The process's umask becomes 0007 so that every file relpromote, SQLite or Ansible makes there is born that way, and
the ledger file is made here before SQLite opens it (SQLite gives -wal and -shm the mode of the database file).

What this login owns and finds with another group or mode is fixed when the project is opened and again when the
command ends (ansible-runner closes each run folder to 0700 while it runs); what belongs to another login and cannot
be fixed is reported in one line. Symbolic links are never followed. Without `group:` nothing here runs and the files
stay private to whoever made them.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from relpromote.errors import BadInput

FOLDER_MODE = 0o2770
FILE_MODE = 0o660
READ_ONLY_MODE = 0o440
UMASK = 0o007
SQLITE_SIBLINGS = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class SharedFolder:
    """The parts of a project that a group of operators shares, and the group."""

    group: str
    gid: int
    folders: tuple[Path, ...]  # made if missing and kept 2770 (parents before children)
    trees: tuple[Path, ...]  # everything under these is the group's: the store, the run folders
    ledger: Path | None  # the SQLite ledger file (its -wal, -shm and -journal follow it)

    def open(self) -> list[str]:
        """Set the umask, make the folders and the ledger file, fix what is ours: the problems left, one line each."""
        os.umask(UMASK)
        for folder in self.folders:
            with contextlib.suppress(OSError):  # one that cannot be made fails where it is used, with its own message
                folder.mkdir(mode=0o770, parents=True, exist_ok=True)
        if self.ledger is not None:
            with contextlib.suppress(OSError):
                os.close(os.open(self.ledger, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE))
        return self.repair()

    def repair(self) -> list[str]:
        """Give every shared file this login may change the group and its mode; report (at most one line) the rest."""
        others: list[tuple[Path, os.stat_result]] = []
        for path in self._essentials():
            info = self._fix(path)
            if info is not None:
                others.append((path, info))
        for tree in self.trees:
            for path in _walk(tree):
                self._fix(path)  # others' run folders are closed only while their run lasts: their owner fixes them
        return [self._report(others)] if others else []

    def _essentials(self) -> Iterator[Path]:
        """What every operator must be able to write: the folders and the ledger's files."""
        yield from self.folders
        if self.ledger is not None:
            yield self.ledger
            for suffix in SQLITE_SIBLINGS:
                yield self.ledger.with_name(self.ledger.name + suffix)

    def _fix(self, path: Path) -> os.stat_result | None:
        """Fix `path` if it is off and ours to fix; its stat when it is off and not ours (None otherwise)."""
        try:
            info = os.lstat(path)
        except OSError:
            return None
        wanted = wanted_mode(info.st_mode)
        if wanted is None or (info.st_gid == self.gid and stat.S_IMODE(info.st_mode) == wanted):
            return None  # a symbolic link, a socket (never followed, never changed) or already right
        if info.st_uid != os.geteuid() and os.geteuid() != 0:
            return info
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_DIRECTORY if stat.S_ISDIR(info.st_mode) else 0)
        try:
            descriptor = os.open(path, flags)
        except OSError:
            return info
        try:
            opened = os.fstat(descriptor)
            if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
                return info  # replaced between the look and the open: leave it
            if opened.st_gid != self.gid:
                os.fchown(descriptor, -1, self.gid)
            os.fchmod(descriptor, wanted)  # after the chown, which clears the setgid bit
        except OSError:
            return info
        finally:
            os.close(descriptor)
        return None

    def _report(self, others: Sequence[tuple[Path, os.stat_result]]) -> str:
        path, info = others[0]
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        owner = _user(info.st_uid)
        return (f"{path}{more}: not shared with group {self.group} (owner {owner}, group {_group(info.st_gid)}, mode "
                f"{stat.S_IMODE(info.st_mode):04o}) and not yours to fix; {owner} fixes it by running any relpromote "
                f"command in this project, or root by `chgrp {self.group}` and `chmod {wanted_mode(info.st_mode) or 0:04o}`")


def wanted_mode(mode: int) -> int | None:
    """The group's mode for a file of `mode`: folders 2770, files 0660 (0440 if read-only), executables keep x."""
    if stat.S_ISDIR(mode):
        return FOLDER_MODE
    if not stat.S_ISREG(mode):
        return None
    wanted = FILE_MODE if mode & stat.S_IWUSR else READ_ONLY_MODE
    return wanted | (0o110 if mode & stat.S_IXUSR else 0)


def group_id(name: str, source: str) -> int:
    """The group's id; BadInput naming the config's `group:` when the group is unknown or this login is not in it."""
    try:
        entry = grp.getgrnam(name)
    except KeyError:
        raise BadInput(f"{source}: group: no group '{name}' on this host; create it (groupadd {name}) and add the "
                       "operators to it, or fix the name") from None
    if os.geteuid() != 0 and entry.gr_gid != os.getegid() and entry.gr_gid not in os.getgroups():
        login = _user(os.geteuid())
        raise BadInput(f"{source}: group: you ({login}) are not in group '{name}', which shares this project; "
                       f"ask for `usermod -aG {name} {login.split(' ')[0]}` and log in again")
    return entry.gr_gid


def shared_folder(group: str, source: str, state: Path, runs: Path, store: Path, ledger: Path | None) -> SharedFolder:
    """The project's shared parts: the state folder (.relpromote), the run folders, the store, the ledger's folder."""
    root = state.parent
    store, ledger = Path(os.path.normpath(store)), Path(os.path.normpath(ledger)) if ledger is not None else None
    folders: list[Path] = []
    for folder in (state, runs, store, store / "sha256", *((ledger.parent,) if ledger is not None else ())):
        # Inside the project: shared with every folder between it and the project; elsewhere (an absolute store or
        # ledger path): only the folder itself. The project folder itself is never changed.
        chain = [p for p in (*reversed(folder.parents), folder) if p.is_relative_to(root)] if folder.is_relative_to(root) else [folder]
        folders += [p for p in chain if p != root and p not in folders]
    return SharedFolder(group, group_id(group, source), tuple(folders), (runs, store), ledger)


def _walk(top: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(top, onerror=lambda _: None):
        for name in dirs + files:
            yield Path(folder) / name


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"gid {gid}"
