"""Source rollback: the next release without the rejected changes, built from a release branch."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relpromote import events
from relpromote.adapters import git
from relpromote.adapters.control_path import RunTemp
from relpromote.config import Person
from relpromote.errors import BadInput, Refused, RunFailed
from relpromote.identity import Identity
from relpromote.ledger import utc_now
from relpromote.manifest import Manifest
from relpromote.policy import revise_verdict
from relpromote.project import Project
from relpromote.usecases.build import BuildResult, build_release


def revise(
    project: Project, identity: Identity, actor: Person, version: str, drop: Sequence[str], new_version: str
) -> tuple[BuildResult, dict[str, Any]]:
    state = project.state()
    release = state.release(version)
    revise_verdict(project.config, state, release, actor, drop, new_version, utc_now()).enforce(f"revision of {version}")
    source = Path(release.source.get("path", ""))
    commit = release.source.get("commit")
    if not commit or not git.is_work_tree(source):
        raise BadInput(f"{version} was not built from a git work tree ({source}); revise needs the application's repository")
    reasons = {c: r.reason for r in state.rejections.get(version, []) for c in (r.changes or [x["id"] for x in release.changes])}
    changes = {c["id"]: c for c in release.changes}
    to_revert = [sha for change_id in drop for sha in changes[change_id]["commits"]]
    branch = f"release/{new_version}"
    temp = RunTemp("revise")  # the operator's private folder; a killed run's is removed by the next
    worktree = temp.path / "src"
    _run_git(source, "worktree", "add", "-q", "-b", branch, str(worktree), commit)
    try:
        # Newest first, so later commits that build on earlier ones are undone before them.
        for sha in reversed(to_revert):
            result = subprocess.run(["git", "-C", str(worktree), *_author(actor), "revert", "--no-edit", sha], capture_output=True, text=True)
            if result.returncode != 0:
                subprocess.run(["git", "-C", str(worktree), "revert", "--abort"], capture_output=True)
                raise RunFailed(f"reverting {sha} (from {', '.join(drop)}) conflicts with later work; revert it by hand on a branch and build that")
        manifest = Manifest.model_validate({
            "version": new_version,
            "planned_release": release.manifest.get("planned_release"),
            "changes": [c for c in release.changes if c["id"] not in drop],
            "dropped": [
                *release.manifest.get("dropped", []),
                *({"id": c, "reason": reasons.get(c, "dropped"), "from_version": version} for c in drop),
            ],
        })
        built = build_release(project, identity, actor, new_version, worktree, manifest, allow_dirty=False,
                              extra_source={"path": str(source), "branch": branch, "revised_from": version})
    except BaseException:
        _run_git(source, "worktree", "remove", "--force", str(worktree), check=False)
        _run_git(source, "branch", "-D", branch, check=False)
        raise
    finally:
        temp.close()
    _run_git(source, "worktree", "prune", check=False)
    link = {"from_version": version, "version": new_version, "dropped": list(drop), "reverted_commits": to_revert,
            "branch": branch, "commit": built.release.source.get("commit"), "retest": project.config.source.revise.retest}
    project.ledger.append(events.RELEASE_REVISED, actor.name, identity, link)
    return built, link


def _author(actor: Person) -> list[str]:
    return ["-c", f"user.name={actor.name}", "-c", f"user.email={actor.name}@relpromote.invalid"]


def _run_git(directory: Path, *args: str, check: bool = True) -> None:
    result = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        message = (result.stderr.strip().splitlines() or ["git failed"])[-1]
        raise Refused(f"git {args[0]} in {directory} failed: {message}") if "already exists" in message else BadInput(
            f"git {args[0]} in {directory} failed: {message}"
        )
