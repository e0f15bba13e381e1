"""The config as git knows it: which commit and bytes a decision was made under, and the config a commit had.

Every ledger entry records its config's commit and sha256 (`config_stamp`), so `audit verify` and the
gates can judge a decision by the roles the committed config gave at the time (`committed_config`).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import subprocess
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relpromote.errors import BadInput

if TYPE_CHECKING:  # `config_stamp` (status from a checkpoint) needs no schema; `committed_config` imports it when used
    from relpromote.config import Config


def _git(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, check=False)


def _relative(config_path: Path) -> tuple[Path, str] | None:
    """The repository holding the config and the config's path inside it, or None outside git."""
    folder = config_path.resolve().parent
    top = _git(folder, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        return None
    root = Path(top.stdout.strip())
    return root, config_path.resolve().relative_to(root).as_posix()


def _blob_id(data: bytes, length: int) -> str:
    """The id git gives a blob of these exact bytes (sha1, or sha256 in a repository of that object format)."""
    algorithm = hashlib.sha256 if length == 64 else hashlib.sha1
    return algorithm(b"blob %d\0" % len(data) + data).hexdigest()


def config_stamp(config_path: Path) -> dict[str, Any]:
    """The config's sha256, the project's commit, and whether the config is exactly as committed there.

    One git process (every command, `status` included, stamps its config): the repository's top, HEAD's commit and the
    id of the config's blob in HEAD; the config is as committed when that blob's id is the id of the file's bytes."""
    try:
        data = config_path.read_bytes()
    except OSError:
        data = b""
    stamp: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest(), "commit": None, "committed": False}
    resolved = config_path.resolve()
    found = _git(resolved.parent, "rev-parse", "--show-toplevel", "HEAD", f"HEAD:./{resolved.name}")
    lines = found.stdout.splitlines()
    ids = [line for line in lines[1:] if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", line)]
    if not lines or not ids:  # outside git, or a repository with no commit yet
        return stamp
    stamp["commit"] = ids[0]
    # With the config not in HEAD, git names the commit, echoes the unknown path and exits 128.
    stamp["committed"] = found.returncode == 0 and len(ids) == 2 and ids[1] == _blob_id(data, len(ids[1]))
    return stamp


def resolve_commit(config_path: Path, revision: str) -> str | None:
    """The full commit a revision (HEAD, a branch, a short hash) of the config's repository names, or None."""
    located = _relative(config_path)
    if located is None or revision.startswith("-"):
        return None
    found = _git(located[0], "rev-parse", "-q", "--verify", f"{revision}^{{commit}}")
    return found.stdout.strip() if found.returncode == 0 else None


def committed_config(config_path: Path) -> Callable[[str], Config | str | None]:
    """A lookup: commit -> the config file as committed there, or why there is none (None: a config
    this relpromote can no longer read, so the current one decides).

    A long ledger names hundreds of commits: one `git cat-file --batch` answers them all (two git processes
    per commit took 5 s on 1,000 commits), and each distinct config file is parsed once (the config changes
    far less often than the project's commit)."""
    from relpromote.config import parse_config

    located = _relative(config_path)
    known: dict[str, Config | str | None] = {}  # commits never change: ask git once per commit
    parsed: dict[str, Config | None] = {}  # blob id -> its config
    objects: _Objects | None = None

    def at(commit: str) -> Config | str | None:
        if commit not in known:
            known[commit] = _at(commit)
        return known[commit]

    def _at(commit: str) -> Config | str | None:
        nonlocal objects
        if located is None:
            return "cannot be checked: the project is not a git repository"
        root, name = located
        if not _FULL_COMMIT.fullmatch(commit):  # what config_stamp records; anything else (HEAD, a branch) names no commit
            return "is not in the project's git history"
        if objects is None:
            objects = _Objects(root)
        if objects.read(f"{commit}^{{commit}}") is None:
            return "is not in the project's git history"
        blob = objects.read(f"{commit}:{name}")
        if blob is None:
            return f"has no {name}"
        oid, data = blob
        if oid not in parsed:
            try:
                parsed[oid] = parse_config(data.decode("utf-8", "replace"), f"{name} at {commit[:12]}")
            except BadInput:
                parsed[oid] = None
        return parsed[oid]

    return at


def committed_config_bytes(config_path: Path) -> Callable[[str], bytes | None]:
    """A lookup: commit -> the config file's bytes as committed there (`git show COMMIT:relpromote.yml`), or None."""
    located = _relative(config_path)
    objects: _Objects | None = None

    def at(commit: str) -> bytes | None:
        nonlocal objects
        if located is None or not _FULL_COMMIT.fullmatch(commit):
            return None
        if objects is None:
            objects = _Objects(located[0])
        blob = objects.read(f"{commit}:{located[1]}")
        return None if blob is None else blob[1]

    return at


_FULL_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class _Objects:
    """One `git cat-file --batch` process for a command's lookups (ended when the lookup is dropped, or at exit)."""

    def __init__(self, root: Path) -> None:
        self._process = subprocess.Popen(["git", "-C", str(root), "cat-file", "--batch"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        weakref.finalize(self, _end, self._process)

    def read(self, name: str) -> tuple[str, bytes] | None:
        """(object id, contents) of `name` (an object name without whitespace), or None when git has no such object."""
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(name.encode() + b"\n")
            process.stdin.flush()
            header = process.stdout.readline().split()
        except OSError:
            return None
        if len(header) != 3 or not header[2].isdigit():  # "<name> missing", "<name> ambiguous", or git is gone
            return None
        data = process.stdout.read(int(header[2]))
        process.stdout.read(1)  # the newline after the contents
        return header[0].decode(), data


def _end(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        if process.stdin is not None:
            process.stdin.close()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
    if process.stdout is not None:
        process.stdout.close()
