"""Releases: one version, one immutable artifact, one digest; and the rule that a version is built once."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from relpromote.errors import Refused


@dataclass(frozen=True)
class Release:
    version: str
    digest: str
    size: int
    built_by: str
    built_at: str
    manifest: dict[str, Any]
    source: dict[str, Any]
    # The sha256 of the manifest a host's unpack writes (relpromote/release_files.py), as recorded at build, and the
    # RULES it was computed by; None for a build recorded before either.
    files_digest: str | None = None
    files_rules: int | None = None

    @property
    def changes(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("changes", []))

    def as_data(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "digest": self.digest,
            "size": self.size,
            "built_by": self.built_by,
            "built_at": self.built_at,
            "changes": self.changes,
            "dropped": self.manifest.get("dropped", []),
            "source": self.source,
        }


class BuildOutcome(Enum):
    NEW = "new"
    SAME = "same"  # already built with these exact bytes: nothing to do


def decide_build(existing: Release | None, version: str, digest: str) -> BuildOutcome:
    """A version names one set of bytes forever."""
    if existing is None:
        return BuildOutcome.NEW
    if existing.digest == digest:
        return BuildOutcome.SAME
    raise Refused(
        f"release {version} already exists with digest {existing.digest[:12]}, these bytes are {digest[:12]}; "
        "a version is immutable: build a new version"
    )
