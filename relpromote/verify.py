"""Drift: what runs on each host of an environment against what the ledger says runs there.

Pure: a function of what the hosts reported (roles/release_deploy tasks/verify.yml: the `current` link, the live
release's digest, its files against their manifest, the application's answer) and the ledger's record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# How many differing files one line names; the record keeps them all.
NAMED_FILES = 5


@dataclass(frozen=True)
class HostCheck:
    """One host: what it runs, and each way that differs from the record (empty: it agrees)."""

    host: str
    current: str | None
    digest: str | None
    app_version: str | None
    integrity: tuple[str, ...]
    differences: tuple[str, ...]
    reachable: bool = True

    @property
    def agrees(self) -> bool:
        return not self.differences

    def as_data(self) -> dict[str, Any]:
        return {
            "host": self.host, "reachable": self.reachable, "current": self.current, "digest": self.digest,
            "app_version": self.app_version, "integrity": list(self.integrity), "differences": list(self.differences),
        }


def _short(digest: str | None) -> str:
    return (digest or "none")[:12]


def _answer(app: Mapping[str, Any]) -> str:
    if app.get("status") is None:
        return f"nothing ({app.get('error') or 'no answer'})"
    version = app.get("version")
    return f"{version!r} (HTTP {app.get('status')})" if version is not None else f"no version (HTTP {app.get('status')})"


def check_host(host: str, facts: Mapping[str, Any], version: str | None, digest: str | None) -> HostCheck:
    """Compare one host's report with the recorded release `version` (None: the ledger records nothing live)."""
    current = str(facts.get("current") or "") or None
    found_digest = str(facts.get("digest") or "") or None
    app = facts.get("app") or {}
    app_version = app.get("version") if isinstance(app, Mapping) else None
    integrity = tuple(str(p) for p in facts.get("integrity") or ())
    differences: list[str] = []
    if current != version:
        differences.append(f"current is {current or 'absent'}, the ledger says {version or 'nothing is live'}")
    elif version is not None and digest is not None and found_digest != digest:
        differences.append(f"releases/{version} holds digest {_short(found_digest)}, the ledger recorded {_short(digest)}")
    if integrity:
        named = ", ".join(integrity[:NAMED_FILES]) + (f" and {len(integrity) - NAMED_FILES} more" if len(integrity) > NAMED_FILES else "")
        differences.append(f"files differ from the release's manifest: {named}")
    if version is not None and app_version != version:
        differences.append(f"the application answers {_answer(app if isinstance(app, Mapping) else {})}, not {version!r}")
    if version is None and app_version is not None:
        differences.append(f"the application answers {app_version!r}, the ledger says nothing is live")
    return HostCheck(host, current, found_digest, app_version if isinstance(app_version, str) else None, integrity, tuple(differences))


def unreachable(host: str, message: str) -> HostCheck:
    return HostCheck(host, None, None, None, (), (f"could not be read: {' '.join(message.split()) or 'unreachable'}",), reachable=False)


def summary_line(environment: str, checks: list[HostCheck]) -> str:
    """One line: which hosts differ and how (the first difference of each)."""
    drifted = [c for c in checks if not c.agrees]
    if not drifted:
        return f"every host of {environment} runs what the ledger says ({len(checks)} host(s))"
    parts = [f"{c.host}: {'; '.join(c.differences)}" for c in drifted]
    return f"{environment} drifted from the ledger on {len(drifted)} of {len(checks)} host(s): " + " | ".join(parts)
