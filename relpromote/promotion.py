"""Promotions: putting one release live on every host of one environment, and what came of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from relpromote.adapters.runner import HostResult, RunResult


@dataclass(frozen=True)
class HostOutcome:
    """What a host ran before and after the promotion (from the role's published stats)."""

    host: str
    previous: str | None
    current: str | None
    switched: bool
    result: HostResult
    published: bool = True  # False: the host never said what it runs (it failed or vanished first)
    tampered: tuple[str, ...] = ()  # what differed from the release's file manifest on the host (it was unpacked again)

    def as_data(self) -> dict[str, Any]:
        data = {**self.result.as_data(), "previous": self.previous, "current": self.current, "switched": self.switched}
        if self.result.error:
            # e.g. the restart hook's {step, command, rc, output (its last lines), problem}
            data["error"] = dict(self.result.error)
        if self.tampered:
            data["tampered"] = list(self.tampered)
        return data

    @property
    def failure(self) -> str:
        """What went wrong on this host, on one line ("" when nothing did)."""
        if self.result.succeeded:
            return ""
        return one_line(self.result.message) or ("unreachable" if self.result.unreachable else "failed")


@dataclass(frozen=True)
class PromotionOutcome:
    version: str
    digest: str
    environment: str
    check: bool
    succeeded: bool
    duration: float
    hosts: tuple[HostOutcome, ...]
    run_id: str
    project_commit: str | None
    project_dirty: bool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return sum(h.result.changed for h in self.hosts)

    @property
    def switched(self) -> list[str]:
        return [h.host for h in self.hosts if h.switched]

    def as_data(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "digest": self.digest,
            "environment": self.environment,
            "check": self.check,
            "result": "succeeded" if self.succeeded else "failed",
            "duration_s": round(self.duration, 3),
            "changed": self.changed,
            "switched": self.switched,
            "hosts": [h.as_data() for h in self.hosts],
            "run_id": self.run_id,
            "project_commit": self.project_commit,
            "project_dirty": self.project_dirty,
            **self.extra,
        }


def one_line(text: str) -> str:
    return " ".join(text.split())


def host_failures(hosts: Sequence[HostOutcome], most: int = 3) -> str:
    """Why the hosts failed, on one line: "a, b: what failed; c: what else" (hosts with the same failure together)."""
    by_failure: dict[str, list[str]] = {}
    for host in hosts:
        if host.failure:
            by_failure.setdefault(host.failure, []).append(host.host)
    parts = [f"{', '.join(names)}: {failure}" for failure, names in list(by_failure.items())[:most]]
    if len(by_failure) > most:
        parts.append(f"and {sum(len(n) for n in list(by_failure.values())[most:])} more host(s)")
    return "; ".join(parts)


def host_outcomes(run: RunResult, stats_key: str) -> tuple[HostOutcome, ...]:
    """Join ansible's per-host counts with what the role published under `stats_key` per host."""
    published: dict[str, Any] = run.custom_stats.get(stats_key) or {}
    outcomes = []
    for host in sorted(set(run.hosts) | set(published)):
        facts = published.get(host) or {}
        outcomes.append(
            HostOutcome(
                host=host,
                previous=facts.get("previous") or None,
                current=facts.get("current") or None,
                switched=bool(facts.get("switched")),
                result=run.hosts.get(host, HostResult(host)),
                published=bool(facts),
                tampered=tuple(facts.get("tampered") or ()),
            )
        )
    return tuple(outcomes)
