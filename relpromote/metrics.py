"""Delivery metrics of one environment over a period, from the ledger: the four DORA figures.

Pure: a function of ledger entries, a period and (optionally) when each source commit was made, so a
test can give it entries with known times. Each figure carries its definition, written next to it
wherever it is shown (`relpromote metrics`, the status page).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relpromote import events
from relpromote.ledger import Entry, format_time, parse_time

DEFINITIONS = {
    "deployment_frequency": "How often a release went live: promotions to the environment that succeeded on every host "
                            "(not --check, not --limit), per week of the period.",
    "lead_time": "For each change that went live in the environment during the period, for the first time: the time from the "
                 "change's first listed commit (its author date), or from the release's build when it lists none, to the "
                 "promotion that put it live. Median and mean.",
    "change_failure_rate": "Of the promotions to the environment during the period (every attempt, --check aside), the share that "
                           "failed, failed verification, or put live a release that was later rolled back from the environment "
                           "before another release went live there.",
    "time_to_restore": "For each failure during the period (a promotion that did not succeed, or a rollback of a live release): "
                       "the time from it to the next promotion that succeeded in the environment. Median and mean; failures not "
                       "yet followed by one are listed as open.",
}

CommitTime = Callable[[str, str], datetime | None]
"""(source path, commit id) -> when the commit was authored, or None when it cannot be told."""


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime

    def holds(self, moment: datetime) -> bool:
        return self.since <= moment < self.until

    @property
    def days(self) -> float:
        return max((self.until - self.since).total_seconds() / 86400, 1e-9)


def _hours(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() / 3600, 3)


def _summary(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"median_hours": None, "mean_hours": None, "max_hours": None}
    return {"median_hours": round(statistics.median(values), 3), "mean_hours": round(statistics.fmean(values), 3),
            "max_hours": round(max(values), 3)}


def _goes_live(entry: Entry, environment: str) -> bool:
    p = entry.payload
    return (entry.kind == events.PROMOTION_FINISHED and p.get("environment") == environment and not p.get("check")
            and not p.get("limit") and p.get("result") == "succeeded")


def _attempt(entry: Entry, environment: str) -> bool:
    return entry.kind == events.PROMOTION_FINISHED and entry.payload.get("environment") == environment and not entry.payload.get("check")


def delivery_metrics(
    entries: Iterable[Entry], environment: str, period: Period, commit_time: CommitTime | None = None
) -> dict[str, Any]:
    """The four figures for `environment` over `period`, each with its definition and the items it counts."""
    rows = [e for e in entries if not e.corrupt]
    moment = {e.seq: parse_time(e.recorded_at) for e in rows}
    builds = {str(e.payload.get("version")): e for e in rows if e.kind == events.RELEASE_BUILT}
    attempts = [e for e in rows if _attempt(e, environment)]
    live = [e for e in attempts if _goes_live(e, environment)]
    rollbacks = [e for e in rows if e.kind == events.ROLLBACK_FINISHED and e.payload.get("environment") == environment]

    # Deployment frequency.
    deployed = [e for e in live if period.holds(moment[e.seq])]
    frequency = {"deployments": len(deployed), "per_week": round(len(deployed) / period.days * 7, 3),
                 "per_day": round(len(deployed) / period.days, 3), "definition": DEFINITIONS["deployment_frequency"]}

    # Lead time for changes: each change counted at its first arrival in the environment.
    seen: set[str] = set()
    lead_items: list[dict[str, Any]] = []
    for entry in live:
        build = builds.get(str(entry.payload.get("version")))
        if build is None:
            continue
        for change in build.payload.get("manifest", {}).get("changes", []):
            change_id = str(change.get("id"))
            if change_id in seen:
                continue
            seen.add(change_id)
            if not period.holds(moment[entry.seq]):
                continue
            start, origin = moment[build.seq], "build"
            commits = list(change.get("commits") or [])
            source = str((build.payload.get("source") or {}).get("path") or "")
            if commits and commit_time is not None:
                authored = [t for t in (commit_time(source, c) for c in commits) if t is not None]
                if authored:
                    start, origin = min(authored), "commit"
            lead_items.append({"change": change_id, "version": entry.payload.get("version"), "from": origin, "start": format_time(start),
                               "live_at": entry.recorded_at, "hours": _hours(start, moment[entry.seq])})
    lead = {"change_count": len(lead_items), **_summary([i["hours"] for i in lead_items]), "items": lead_items,
            "definition": DEFINITIONS["lead_time"]}

    # Change failure rate.
    counted = [e for e in attempts if period.holds(moment[e.seq])]
    failures: list[dict[str, Any]] = []
    for entry in counted:
        p = entry.payload
        why = None
        if p.get("verification_failed"):
            why = "failed verification"
        elif p.get("result") != "succeeded":
            why = str(p.get("result")).replace("_", " ")
        elif _goes_live(entry, environment):
            later_live = next((e for e in live if e.seq > entry.seq), None)
            undone = next((r for r in rollbacks if r.seq > entry.seq and (later_live is None or r.seq < later_live.seq)
                           and r.payload.get("result") == "succeeded" and r.payload.get("from_version") == p.get("version")), None)
            if undone is not None:
                why = f"rolled back at {undone.recorded_at}"
        if why is not None:
            failures.append({"seq": entry.seq, "version": p.get("version"), "at": entry.recorded_at, "why": why})
    failure_rate = {"deployments": len(counted), "failed": len(failures),
                    "rate": round(len(failures) / len(counted), 4) if counted else None, "failures": failures,
                    "definition": DEFINITIONS["change_failure_rate"]}

    # Time to restore: from a failed promotion or a rollback of a live release to the next promotion that succeeded.
    starts = [e for e in attempts if e.payload.get("result") != "succeeded" or e.payload.get("verification_failed")]
    starts += [r for r in rollbacks if r.payload.get("from_version")]
    restore_items: list[dict[str, Any]] = []
    open_items: list[dict[str, Any]] = []
    for failure in sorted(starts, key=lambda e: e.seq):
        if not period.holds(moment[failure.seq]):
            continue
        what = "rollback" if failure.kind == events.ROLLBACK_FINISHED else "failed promotion"
        version = failure.payload.get("from_version") if what == "rollback" else failure.payload.get("version")
        restored = next((e for e in live if e.seq > failure.seq), None)
        item = {"seq": failure.seq, "what": what, "version": version, "at": failure.recorded_at}
        if restored is None:
            open_items.append(item)
        else:
            restore_items.append({**item, "restored_at": restored.recorded_at, "restored_by": restored.payload.get("version"),
                                  "hours": _hours(moment[failure.seq], moment[restored.seq])})
    restore = {"incidents": len(restore_items) + len(open_items), "restored": len(restore_items),
               **_summary([i["hours"] for i in restore_items]), "items": restore_items, "open": open_items,
               "definition": DEFINITIONS["time_to_restore"]}

    return {"environment": environment, "since": format_time(period.since), "until": format_time(period.until),
            "days": round(period.days, 3), "deployment_frequency": frequency, "lead_time": lead,
            "change_failure_rate": failure_rate, "time_to_restore": restore}
