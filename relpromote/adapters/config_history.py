"""The config as git knows it: which commit and bytes a decision was made under, and the config a commit had.

Every ledger entry records its config's commit and sha256 (`config_stamp`), so `audit verify` and the
gates can judge a decision by the roles the committed config gave at the time (`committed_config`).
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relpromote.config import Config, parse_config
from relpromote.errors import BadInput


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


def config_stamp(config_path: Path) -> dict[str, Any]:
    """The config's sha256, the project's commit, and whether the config is exactly as committed there."""
    try:
        data = config_path.read_bytes()
    except OSError:
        data = b""
    stamp: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest(), "commit": None, "committed": False}
    located = _relative(config_path)
    if located is None:
        return stamp
    root, name = located
    head = _git(root, "rev-parse", "-q", "--verify", "HEAD^{commit}")
    if head.returncode != 0:
        return stamp
    stamp["commit"] = head.stdout.strip()
    blob = subprocess.run(["git", "-C", str(root), "show", f"HEAD:{name}"], capture_output=True, check=False)
    stamp["committed"] = blob.returncode == 0 and blob.stdout == data
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
    this relpromote can no longer read, so the current one decides)."""
    located = _relative(config_path)
    known: dict[str, Config | str | None] = {}  # commits never change: ask git once per commit

    def at(commit: str) -> Config | str | None:
        if commit not in known:
            known[commit] = _at(commit)
        return known[commit]

    def _at(commit: str) -> Config | str | None:
        if located is None:
            return "cannot be checked: the project is not a git repository"
        root, name = located
        if _git(root, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
            return "is not in the project's git history"
        blob = _git(root, "show", f"{commit}:{name}")
        if blob.returncode != 0:
            return f"has no {name}"
        try:
            return parse_config(blob.stdout, f"{name} at {commit[:12]}")
        except BadInput:
            return None

    return at
