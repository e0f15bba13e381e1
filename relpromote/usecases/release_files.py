"""The files digest a run passes to the hosts (`release_files_digest`): what a release's on-host manifest must be.

From the signed build record when it was computed by today's rules (relpromote/release_files.py RULES), else from the
stored artifact, read whole and checked against the ledger's sha256 in the same pass - never from a file an insider
with the project folder could edit. Remembered for the process only.
"""

from __future__ import annotations

from relpromote.errors import BadInput
from relpromote.project import Project
from relpromote.release import Release
from relpromote.release_files import RULES, verified_files_digest

_computed: dict[str, str] = {}


def files_digest_of(project: Project, release: Release) -> str | None:
    """The release's files digest, or None when the build record lacks it and this machine's store has no artifact to
    compute it from (a pulling controller): the hosts then trust their manifests as they are."""
    if release.files_rules == RULES and release.files_digest:
        return release.files_digest
    if release.digest in _computed:
        return _computed[release.digest]
    path = project.store.path_for(release.digest)
    if not path.exists():
        return None
    with path.open("rb") as artifact:
        found = _computed[release.digest] = verified_files_digest(artifact, release.digest)
    return found


def files_vars(project: Project, release: Release, *, strict: bool = True) -> dict[str, str]:
    """The extra var for `release`'s run: `release_files_digest`, when known. Not `strict` (an automatic rollback, which
    must run whatever): a stored artifact that is not the ledger's bytes gives none, as for a build recorded before."""
    try:
        digest = files_digest_of(project, release)
    except BadInput:
        if strict:
            raise
        return {}
    return {"release_files_digest": digest} if digest else {}
