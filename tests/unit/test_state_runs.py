"""relpromote/state.py: runs that recorded their start (intent before effect) and how their end settles them.

Entries go through the real SQLite ledger, signed with real keys, and are folded by trusted_state as the commands do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relpromote import events
from tests.unit.real_ledger import Ledger

QA = ["qa-app-1", "qa-app-2"]


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    built = Ledger(tmp_path / "ledger.db")
    built.build("1.0.0")
    built.build("1.1.0")
    built.promote("1.0.0", "qa", lock_id="run-0")
    return built


def started(ledger: Ledger, kind: str, lock_id: str, version: str = "1.1.0", hosts: list[str] | None = None, **extra: Any) -> None:
    ledger.append(kind, "alice", {"environment": "qa", "version": version, "digest": ledger.digest(version), "lock_id": lock_id,
                                  "hosts": QA if hosts is None else hosts, **extra})


def test_a_run_that_never_recorded_its_end_is_in_doubt_and_names_its_hosts(ledger: Ledger) -> None:
    started(ledger, events.PROMOTION_STARTED, "run-1")
    state = ledger.state()
    qa = state.environments["qa"]
    assert not state.ignored
    assert qa.current == "1.0.0", "the recorded release is still the last one that went live"
    assert list(qa.in_doubt) == ["run-1"] and qa.hosts_in_doubt == QA
    doubt = qa.in_doubt["run-1"]
    assert (doubt["run"], doubt["version"], doubt["by"], doubt["why"]) == ("promotion", "1.1.0", "alice", "it never recorded its end")
    assert qa.as_data()["hosts_in_doubt"] == QA
    assert state.environments["deployment"].in_doubt == {}


def test_the_runs_own_end_settles_it(ledger: Ledger) -> None:
    started(ledger, events.PROMOTION_STARTED, "run-1")
    ledger.promote("1.1.0", "qa", lock_id="run-1")
    qa = ledger.state().environments["qa"]
    assert qa.in_doubt == {} and qa.current == "1.1.0"


def test_a_failed_end_settles_the_run_and_changes_nothing_live(ledger: Ledger) -> None:
    started(ledger, events.PROMOTION_STARTED, "run-1")
    ledger.promote("1.1.0", "qa", result="rolled_back", lock_id="run-1")
    qa = ledger.state().environments["qa"]
    assert qa.in_doubt == {} and qa.current == "1.0.0"


def test_an_end_without_the_same_lock_id_does_not_settle_a_run_in_doubt(ledger: Ledger) -> None:
    started(ledger, events.PROMOTION_STARTED, "run-1")
    ledger.promote("1.1.0", "qa", lock_id="run-2")  # a later run that does not say it settles run-1
    assert list(ledger.state().environments["qa"].in_doubt) == ["run-1"]


def test_a_later_run_settles_the_runs_it_names_and_keeps_the_hosts_it_could_not_tell(ledger: Ledger) -> None:
    started(ledger, events.PROMOTION_STARTED, "run-1")
    started(ledger, events.PROMOTION_STARTED, "run-2")
    ledger.promote("1.1.0", "qa", result="rolled_back", lock_id="run-2", settles=["run-1"], unsettled=["qa-app-2"])
    qa = ledger.state().environments["qa"]
    assert list(qa.in_doubt) == ["run-2"] and qa.hosts_in_doubt == ["qa-app-2"]
    assert qa.in_doubt["run-2"]["why"] == "it could not tell what these hosts run"
    ledger.rollback("qa", "1.0.0", None, reconcile=True, lock_id="run-3", settles=["run-2"])
    qa = ledger.state().environments["qa"]
    assert qa.in_doubt == {} and qa.hosts_in_doubt == []


def test_a_reconcile_settles_without_going_live_or_withdrawing_anything(ledger: Ledger) -> None:
    started(ledger, events.PROMOTION_STARTED, "run-1")
    before = ledger.state().environments["qa"]
    started(ledger, events.ROLLBACK_STARTED, "run-2", version="1.0.0", reconcile=True)
    assert sorted(ledger.state().environments["qa"].in_doubt) == ["run-1", "run-2"]
    ledger.rollback("qa", "1.0.0", None, reconcile=True, lock_id="run-2", settles=["run-1"])
    qa = ledger.state().environments["qa"]
    assert qa.in_doubt == {} and qa.current == "1.0.0"
    assert (qa.since, qa.live_history, qa.withdrawn) == (before.since, before.live_history, set())


def test_a_failed_reconcile_names_the_hosts_for_a_person(ledger: Ledger) -> None:
    started(ledger, events.ROLLBACK_STARTED, "run-2", version="1.0.0", reconcile=True)
    ledger.rollback("qa", "1.0.0", None, result="failed", reconcile=True, lock_id="run-2", need_a_person=["qa-app-2"])
    qa = ledger.state().environments["qa"]
    assert qa.attention == ["qa-app-2"] and qa.in_doubt == {} and qa.current == "1.0.0"


def test_a_manual_rollback_that_reached_no_host_keeps_who_needs_a_person(ledger: Ledger) -> None:
    ledger.rollback("qa", "1.0.0", None, result="failed", need_a_person=["qa-app-1"])
    ledger.rollback("qa", "1.0.0", None, result="failed", lock_id="run-4", need_a_person=[])
    assert ledger.state().environments["qa"].attention == ["qa-app-1"]


def test_a_started_entry_by_someone_who_may_not_promote_does_not_count(ledger: Ledger) -> None:
    ledger.append(events.PROMOTION_STARTED, "quinn", {"environment": "qa", "version": "1.1.0", "lock_id": "forged", "hosts": QA})
    state = ledger.state()
    assert state.environments["qa"].in_doubt == {}
    assert any("could not promote" in problem.reason for problem in state.ignored)


def test_a_started_entry_without_a_lock_id_is_ignored_as_malformed(ledger: Ledger) -> None:
    ledger.append(events.PROMOTION_STARTED, "alice", {"environment": "qa", "version": "1.1.0", "hosts": QA})
    state = ledger.state()
    assert state.environments["qa"].in_doubt == {}
    assert any("wrong shape" in problem.reason for problem in state.ignored)
