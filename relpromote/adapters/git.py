"""Git, as configuration management: which commit a build or a promotion came from, and tags."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from relpromote.errors import BadInput, Refused


@dataclass(frozen=True)
class SourceState:
    commit: str
    dirty: bool
    files: tuple[str, ...]  # what a build packages: tracked and untracked-but-not-ignored files
    commit_time: int


def _git(directory: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, check=check)
    except subprocess.CalledProcessError as exc:
        raise BadInput(f"{directory}: git {' '.join(args[:2])} failed: {exc.stderr.strip().splitlines()[-1:] or ''}") from None


def is_work_tree(directory: Path) -> bool:
    result = _git(directory, "rev-parse", "--is-inside-work-tree", check=False)
    return result.returncode == 0 and result.stdout.strip() == "true"


def has_commits(directory: Path) -> bool:
    return _git(directory, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode == 0


def source_state(directory: Path) -> SourceState:
    """What a build of the git work tree `directory` packages; a repository without commits has nothing to release."""
    if not has_commits(directory):
        raise BadInput(f"{directory}: the git repository has no commits, so there is nothing to release; commit the application first")
    commit = _git(directory, "rev-parse", "HEAD").stdout.strip()
    status = _git(directory, "status", "--porcelain", "--untracked-files=all", "--", ".").stdout
    listed = _git(directory, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", ".").stdout
    files = tuple(sorted(name for name in set(listed.split("\0")) if name and (directory / name).exists()))
    commit_time = int(_git(directory, "show", "-s", "--format=%ct", "HEAD").stdout.strip())
    return SourceState(commit, bool(status.strip()), files, commit_time)


def dirty_paths(directory: Path, paths: list[str]) -> list[str]:
    """Paths under `directory` (relative to it) with uncommitted changes."""
    status = _git(directory, "status", "--porcelain", "--untracked-files=all", "--", *paths).stdout
    return [line[3:] for line in status.splitlines() if line.strip()]


def head_commit(directory: Path) -> str | None:
    if not is_work_tree(directory) or not has_commits(directory):
        return None
    return _git(directory, "rev-parse", "HEAD").stdout.strip()


def tagger(directory: Path, person: str) -> list[str]:
    """Git options naming who tags: the user's own git identity when git has one, else the relpromote person
    (a fresh machine or a service account has no git identity, and an annotated tag needs one)."""
    if _git(directory, "var", "GIT_COMMITTER_IDENT", check=False).returncode == 0:
        return []
    return ["-c", f"user.name={person}", "-c", f"user.email={person}@relpromote.invalid"]


def tag_commit(directory: Path, tag: str, commit: str, message: str, person: str) -> None:
    existing = _git(directory, "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}", check=False)
    if existing.returncode == 0:
        if existing.stdout.strip() != commit:
            raise Refused(f"git tag {tag} already points at {existing.stdout.strip()[:12]}, not {commit[:12]}; pick a new version")
        return
    _git(directory, *tagger(directory, person), "tag", "-a", tag, commit, "-m", message)
