"""Delivery metrics on a signed ledger built here with known times: every figure computed by hand below."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from relpromote import events
from relpromote.ledger import Entry, seal
from relpromote.metrics import DEFINITIONS, Period, delivery_metrics
from tests.unit.real_ledger import new_identity

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday
H = timedelta(hours=1)
D = timedelta(days=1)
ALICE = new_identity()
COMMITS = {"c100": T0 - 30 * H}


class Book:
    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, at: datetime, kind: str, payload: dict[str, Any]) -> None:
        self.entries.append(seal(self.entries[-1] if self.entries else None, kind, "alice", ALICE, payload, at))

    def build(self, at: datetime, version: str, changes: list[tuple[str, list[str]]]) -> None:
        manifest = {"version": version, "changes": [{"id": c, "type": "fix", "title": c, "owner": "dana", "why": "w", "how": "h",
                                                     "commits": commits} for c, commits in changes]}
        self.add(at, events.RELEASE_BUILT, {"version": version, "digest": version * 8, "size": 1, "manifest": manifest,
                                            "source": {"path": "/src"}})

    def promote(self, at: datetime, version: str, env: str, result: str = "succeeded", **extra: Any) -> None:
        self.add(at, events.PROMOTION_FINISHED, {"version": version, "environment": env, "check": False, "limit": None,
                                                 "result": result, "verification_failed": False, **extra})

    def rollback(self, at: datetime, env: str, to: str, from_version: str) -> None:
        self.add(at, events.ROLLBACK_FINISHED, {"environment": env, "version": to, "from_version": from_version, "result": "succeeded"})


def book() -> Book:
    b = Book()
    b.build(T0, "1.0.0", [("CH-100", ["c100"]), ("CH-101", [])])
    b.promote(T0 + 1 * H, "1.0.0", "qa")
    b.promote(T0 + 6 * H, "1.0.0", "production")                      # lead: CH-100 36 h (from its commit), CH-101 6 h (from build)
    b.build(T0 + 2 * D, "1.1.0", [("CH-100", []), ("CH-102", [])])   # CH-100 again: counted at its first arrival only
    b.promote(T0 + 2 * D + 4 * H, "1.1.0", "production", result="rolled_back", verification_failed=True)  # failure; incident opens
    b.promote(T0 + 2 * D + 5 * H, "1.1.0", "production", check=True)  # a check: never counted
    b.build(T0 + 3 * D, "1.2.0", [("CH-102", []), ("CH-103", [])])
    b.promote(T0 + 3 * D + 2 * H, "1.2.0", "production")               # restores the 1.1.0 failure: 22 h; CH-102 2 h, CH-103 2 h
    b.rollback(T0 + 3 * D + 10 * H, "production", "1.0.0", "1.2.0")   # 1.2.0 rolled back: a failure, an incident
    b.promote(T0 + 4 * D, "1.2.0", "production", limit="prod-1")        # limited: an attempt, not a deployment
    b.build(T0 + 5 * D, "1.3.0", [("CH-104", [])])
    b.promote(T0 + 5 * D + 3 * H, "1.3.0", "production")               # restores the rollback: 41 h; CH-104 3 h
    b.promote(T0 + 6 * D, "1.3.0", "production", result="failed")      # failed, nothing switched: open incident
    return b


def test_the_four_figures_on_known_times() -> None:
    period = Period(T0, T0 + 7 * D)
    figures = delivery_metrics(book().entries, "production", period, lambda source, commit: COMMITS.get(commit))
    frequency = figures["deployment_frequency"]
    assert frequency["deployments"] == 3 and frequency["per_week"] == 3.0 and frequency["definition"] == DEFINITIONS["deployment_frequency"]

    lead = figures["lead_time"]
    assert [(i["change"], i["from"], i["hours"]) for i in lead["items"]] == [
        ("CH-100", "commit", 36.0), ("CH-101", "build", 6.0), ("CH-102", "build", 2.0), ("CH-103", "build", 2.0), ("CH-104", "build", 3.0)]
    assert lead["median_hours"] == 3.0 and lead["mean_hours"] == 9.8 and lead["max_hours"] == 36.0

    failures = figures["change_failure_rate"]
    # Attempts: 1.0.0, 1.1.0 (rolled back), 1.2.0, 1.2.0 limited, 1.3.0, 1.3.0 failed = 6; failed: 1.1.0, 1.2.0 (rolled back later), 1.3.0 failed.
    assert failures["deployments"] == 6 and failures["failed"] == 3 and failures["rate"] == 0.5
    assert [f["version"] for f in failures["failures"]] == ["1.1.0", "1.2.0", "1.3.0"]
    assert failures["failures"][0]["why"] == "failed verification" and failures["failures"][1]["why"].startswith("rolled back at")

    restore = figures["time_to_restore"]
    assert [(i["what"], i["version"], i["hours"], i["restored_by"]) for i in restore["items"]] == [
        ("failed promotion", "1.1.0", 22.0, "1.2.0"), ("rollback", "1.2.0", 41.0, "1.3.0")]
    assert restore["median_hours"] == 31.5 and restore["incidents"] == 3 and [o["version"] for o in restore["open"]] == ["1.3.0"]


def test_the_period_bounds_every_figure() -> None:
    figures = delivery_metrics(book().entries, "production", Period(T0 + 3 * D, T0 + 4 * D))
    assert figures["deployment_frequency"]["deployments"] == 1 and figures["deployment_frequency"]["per_week"] == 7.0
    assert [i["change"] for i in figures["lead_time"]["items"]] == ["CH-102", "CH-103"]  # 1.1.0 never went live: CH-102 first did with 1.2.0
    assert figures["change_failure_rate"]["deployments"] == 1 and figures["change_failure_rate"]["failed"] == 1
    qa = delivery_metrics(book().entries, "qa", Period(T0, T0 + 7 * D))
    assert qa["deployment_frequency"]["deployments"] == 1 and qa["change_failure_rate"]["rate"] == 0.0 and qa["time_to_restore"]["incidents"] == 0
    empty = delivery_metrics([], "production", Period(T0, T0 + D))
    assert empty["change_failure_rate"]["rate"] is None and empty["lead_time"]["median_hours"] is None
