"""Build a release once: package, digest, store, record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relpromote import events
from relpromote.adapters import git
from relpromote.adapters.files import read_named_file
from relpromote.artifact import build_artifact, read_artifact
from relpromote.config import Person
from relpromote.errors import BadInput, Refused
from relpromote.identity import Identity
from relpromote.ledger import Entry
from relpromote.manifest import MAX_MANIFEST_BYTES, Manifest, parse_manifest
from relpromote.policy import require_role
from relpromote.project import Project
from relpromote.release import BuildOutcome, Release, decide_build
from relpromote.release_files import RULES, verified_files_digest
from relpromote.usecases.verdicts import state_of


@dataclass(frozen=True)
class BuildResult:
    release: Release
    outcome: BuildOutcome
    path: Path

    def as_data(self) -> dict[str, Any]:
        return {**self.release.as_data(), "outcome": self.outcome.value, "artifact": str(self.path)}


def read_manifest(path: Path, version: str) -> Manifest:
    try:
        # Read no further than a manifest can be (parse_manifest names the limit); a pipe or device must not hang.
        text = read_named_file(path, 16 * MAX_MANIFEST_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such manifest; pass --manifest FILE with the release's changes") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the manifest ({exc})") from None
    manifest = parse_manifest(text, str(path))
    if manifest.version != version:
        raise BadInput(f"{path}: manifest is for version {manifest.version}, not {version}; build the version the manifest plans")
    return manifest


def build_release(
    project: Project,
    identity: Identity,
    actor: Person,
    version: str,
    source: Path,
    manifest: Manifest,
    *,
    allow_dirty: bool | None = None,
    tag: bool | None = None,
    extra_source: dict[str, Any] | None = None,
) -> BuildResult:
    require_role(project.config, actor, "build")
    if not source.is_dir():
        raise BadInput(f"{source}: source is not a directory; pass --source DIR with the application to package")
    allow_dirty = project.config.source.allow_dirty if allow_dirty is None else allow_dirty
    tag = project.config.source.tag if tag is None else tag
    source_record: dict[str, Any] = {"path": str(source.resolve())}
    files = None
    mtime = 0
    if git.is_work_tree(source):
        state = git.source_state(source)  # refuses a repository with no commits: nothing to release
        if state.dirty and not allow_dirty:
            raise Refused(
                f"{source}: the git work tree has uncommitted changes; commit them, or pass --allow-dirty "
                "(recorded in the ledger)"
            )
        source_record.update(commit=state.commit, dirty=state.dirty)
        files, mtime = list(state.files), state.commit_time
    elif tag:
        raise BadInput(f"{source}: not a git work tree, so it cannot be tagged; drop --tag")
    for change in manifest.changes:
        if change.commits and "commit" not in source_record:
            raise BadInput(f"change {change.id} lists commits, but {source} is not a git work tree")
    source_record.update(extra_source or {})

    release_info = {"project": project.config.project, "version": version, "source_commit": source_record.get("commit")}
    known = project.state().releases.get(version)
    digest, path = project.store.write(
        lambda out: build_artifact(source, manifest, release_info, out, files=files, mtime=mtime)
    )
    read_artifact(path)  # what we stored must pass the same checks a host will apply
    try:
        outcome = decide_build(known, version, digest)
    except Refused:
        if digest not in {r.digest for r in project.state().releases.values()}:
            path.unlink()  # bytes no release owns
        raise
    if outcome is BuildOutcome.SAME:
        assert known is not None
        return BuildResult(known, outcome, path)
    if tag and "commit" in source_record:
        tag_name = f"{project.config.source.tag_prefix}{version}"
        git.tag_commit(source, tag_name, source_record["commit"], f"release {version} sha256:{digest}", actor.name)
        source_record["tag"] = tag_name
    with path.open("rb") as stored:
        # What each host's manifest of this release must say, signed with the record (release_files.py).
        unpacked = {"rules": RULES, "digest": verified_files_digest(stored, digest)}
    payload = {
        "version": version,
        "digest": digest,
        "size": path.stat().st_size,
        "manifest": manifest.as_data(),
        "source": source_record,
        "files": unpacked,
    }

    def still_new(entries: list[Entry]) -> None:
        # Re-decided inside the append's transaction: of two builds of one version, one records it.
        if decide_build(state_of(project, entries).releases.get(version), version, digest) is BuildOutcome.SAME:
            raise _BuiltMeanwhile

    try:
        project.ledger.append(events.RELEASE_BUILT, actor.name, identity, payload, still_new)
    except _BuiltMeanwhile:
        pass  # the same bytes were recorded by a concurrent build: nothing more to do
    except Refused:
        if digest not in {r.digest for r in project.state().releases.values()}:
            path.unlink(missing_ok=True)
        raise
    release = project.state().releases[version]
    return BuildResult(release, outcome, path)


class _BuiltMeanwhile(Exception):
    """Another build recorded these very bytes for this version while this one was packaging."""
