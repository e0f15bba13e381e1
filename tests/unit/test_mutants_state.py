"""relpromote/state.py: exactly what each kind of entry folds into (the survivors of `make mutate` on
relpromote.state, tests/MUTANTS.md): what `status`, `show` and the gates read, from real signed entries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relpromote import events
from relpromote.errors import BadInput
from relpromote.ledger import Entry, Problem
from relpromote.state import EnvironmentState, ParityCheck, ProjectState, Rejection, fold
from tests.unit.real_ledger import Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    built = Ledger(tmp_path / "ledger.db")
    built.build("1.0.0")
    return built


def entries(ledger: Ledger) -> list[Entry]:
    return ledger.store.entries()


def test_a_built_release_is_folded_with_who_built_it_when_and_its_source(ledger: Ledger) -> None:
    ledger.append(events.RELEASE_BUILT, "bob", {"version": "2.0.0", "digest": "e" * 64, "size": 42, "manifest": {"version": "2.0.0"},
                                                "source": {"commit": "abc"}})
    state = ledger.state()
    first, second = entries(ledger)
    built = state.releases["2.0.0"]
    assert (built.version, built.digest, built.size, built.built_by, built.built_at) == ("2.0.0", "e" * 64, 42, "bob", second.recorded_at)
    assert (built.manifest, built.source) == ({"version": "2.0.0"}, {"commit": "abc"})
    assert state.releases["1.0.0"].source == {} and state.releases["1.0.0"].built_at == first.recorded_at
    assert state.built_by_key == {"1.0.0": ledger.identities["alice"].public_key, "2.0.0": ledger.identities["bob"].public_key}


def test_an_unknown_version_is_refused_naming_the_built_ones(ledger: Ledger) -> None:
    state = ledger.state()
    assert state.release("1.0.0") is state.releases["1.0.0"]
    with pytest.raises(BadInput) as refused:
        state.release("9.9.9")
    assert str(refused.value) == "unknown version 9.9.9; built releases: 1.0.0 (see `relpromote releases`)"
    with pytest.raises(BadInput) as none:
        ProjectState({}, {}).release("1.0.0")
    assert str(none.value) == "unknown version 1.0.0; built releases: none yet (see `relpromote releases`)"


def test_a_rejection_is_folded_with_its_changes_reason_and_author(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa")
    ledger.append(events.VERDICT_REJECTED, "quinn", {"version": "1.0.0", "environment": "qa", "changes": ["CH-1"], "reason": "slow"})
    ledger.append(events.VERDICT_REJECTED, "carol", {"version": "1.0.0", "environment": "qa", "reason": "whole"})
    state = ledger.state()
    at = [e.recorded_at for e in entries(ledger)]
    assert state.rejections == {"1.0.0": [Rejection("1.0.0", "qa", "quinn", at[2], ("CH-1",), "slow"),
                                          Rejection("1.0.0", "qa", "carol", at[3], (), "whole")]}
    assert state.unusable("1.0.0") == "was rejected in qa (whole)"
    assert state.where("1.0.0") == ["qa"] and state.where("2.0.0") == []


def test_a_failed_verification_is_named_before_a_rejection(ledger: Ledger) -> None:
    assert ledger.state().unusable("1.0.0") is None
    ledger.promote("1.0.0", "qa", result="rolled_back", verification_failed=True)
    ledger.reject("1.0.0", "qa")
    assert ledger.state().unusable("1.0.0") == "failed verification (in qa, rolled back)"


def test_an_environment_as_the_views_show_it(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa", lock_id="L1")
    ledger.append(events.PROMOTION_STARTED, "alice", {"environment": "qa", "version": "1.0.0", "lock_id": "L2", "hosts": ["b", "a"], "limit": "a"})
    ledger.append(events.VERIFY_FINISHED, "oscar", {"environment": "qa", "result": "drift", "drifted": ["qa-1"], "reason": "link moved"})
    qa = ledger.state().environments["qa"]
    at = [e.recorded_at for e in entries(ledger)]
    run = {"run": "promotion", "version": "1.0.0", "lock_id": "L2", "seq": 3, "at": at[2], "by": "alice", "hosts": ["a", "b"], "limit": "a",
           "why": "it never recorded its end"}
    verify = {"seq": 4, "at": at[3], "by": "oscar", "result": "drift", "drifted": ["qa-1"], "reason": "link moved"}
    assert qa.as_data() == {
        "environment": "qa", "current": "1.0.0", "digest": ledger.digest("1.0.0"), "since": at[1], "by": "alice", "needs_a_person": [],
        "last_refresh": None, "last_verify": verify, "drifted": ["qa-1"], "in_doubt": [run], "hosts_in_doubt": ["a", "b"],
    }


def test_drift_counts_until_a_later_promotion_or_rollback(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa")
    ledger.append(events.VERIFY_FINISHED, "oscar", {"environment": "qa", "result": "drift", "drifted": ["qa-2", "qa-1"]})
    ledger.append(events.VERIFY_FINISHED, "oscar", {"environment": "nowhere", "result": "ok"})
    qa = ledger.state().environments["qa"]
    assert qa.drifted == ["qa-2", "qa-1"] and qa.last_verify is not None and qa.last_verify["reason"] is None
    ledger.promote("1.0.0", "qa")
    assert ledger.state().environments["qa"].drifted == []
    ledger.append(events.VERIFY_FINISHED, "oscar", {"environment": "qa", "result": "ok"})
    assert ledger.state().environments["qa"].last_verify == {
        "seq": 6, "at": entries(ledger)[-1].recorded_at, "by": "oscar", "result": "ok", "drifted": [], "reason": None}
    assert EnvironmentState("qa").drifted == []


def test_a_refresh_is_in_doubt_until_its_end_is_recorded(ledger: Ledger) -> None:
    ledger.append(events.REFRESH_STARTED, "oscar", {"environment": "qa"})
    ledger.append(events.REFRESH_STARTED, "oscar", {"environment": "nowhere"})
    at = [e.recorded_at for e in entries(ledger)]
    state = fold(entries(ledger), ledger.config)
    assert state.environments["qa"].last_refresh == {"at": at[1], "by": "oscar", "result": "in_doubt", "snapshot_time": None}
    ledger.append(events.REFRESH_FINISHED, "oscar", {"environment": "qa", "result": "succeeded", "snapshot_time": "2026-11-25T00:00:00Z"})
    ledger.append(events.REFRESH_FINISHED, "oscar", {"environment": "nowhere", "result": "succeeded"})
    state = fold(entries(ledger), ledger.config)
    assert state.environments["qa"].last_refresh == {"at": entries(ledger)[3].recorded_at, "by": "oscar", "result": "succeeded",
                                                     "snapshot_time": "2026-11-25T00:00:00Z"}
    assert state.ignored == []


def test_the_last_parity_check_of_each_pair_is_kept(ledger: Ledger) -> None:
    for result, summary in (("differs", "2 ports"), ("within", None)):
        payload: dict[str, Any] = {"environment": "deployment", "reference": "production", "result": result}
        if summary:
            payload["summary"] = summary
        ledger.append(events.PARITY_CHECKED, "oscar", payload)
    ledger.append(events.PARITY_CHECKED, "oscar", {"environment": "qa", "reference": "production", "result": "differs", "summary": "x"})
    at = [e.recorded_at for e in entries(ledger)]
    assert ledger.state().parity == {
        ("deployment", "production"): ParityCheck("deployment", "production", at[2], "oscar", True, ""),
        ("qa", "production"): ParityCheck("qa", "production", at[3], "oscar", False, "x"),
    }


def test_a_rollback_is_recorded_in_the_history_and_settles_its_run(ledger: Ledger) -> None:
    ledger.build("2.0.0")
    ledger.promote("1.0.0", "qa")
    ledger.promote("2.0.0", "qa")
    ledger.append(events.ROLLBACK_STARTED, "alice", {"environment": "qa", "version": "1.0.0", "lock_id": "R1", "hosts": ["qa-1"]})
    assert ledger.state().environments["qa"].in_doubt["R1"]["run"] == "rollback"
    ledger.rollback("qa", "1.0.0", "2.0.0", lock_id="R1")
    ledger.rollback("nowhere", "1.0.0", "2.0.0")
    qa = ledger.state().environments["qa"]
    at = [e.recorded_at for e in entries(ledger)]
    assert qa.history[-1] == {"seq": 6, "kind": "rollback.finished", "version": "1.0.0", "result": "succeeded", "at": at[5]}
    assert (qa.current, qa.since, qa.by, qa.in_doubt, qa.withdrawn, qa.live_history) == ("1.0.0", at[5], "alice", {}, {"2.0.0"}, ["1.0.0", "2.0.0", "1.0.0"])
    assert ledger.state().ignored == []


def test_a_rollback_back_to_the_live_release_withdraws_nothing(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa")
    ledger.rollback("qa", "1.0.0", "1.0.0")  # hosts that drifted brought back to the recorded release
    ledger.rollback("qa", "1.0.0", None)
    qa = ledger.state().environments["qa"]
    assert qa.withdrawn == set() and qa.current == "1.0.0"


def test_a_failed_rollback_with_a_lock_keeps_the_hosts_left_for_a_person(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa", result="rollback_failed", rollback={"succeeded": False, "hosts": [], "need_a_person": ["qa-2"]})
    ledger.rollback("qa", "1.0.0", None, result="failed", lock_id="R2")  # reached no host and named no one
    assert ledger.state().environments["qa"].attention == ["qa-2"]
    ledger.rollback("qa", "1.0.0", None, result="failed", lock_id="R3", need_a_person=["qa-1"])
    assert ledger.state().environments["qa"].attention == ["qa-1"]


def test_a_reconcile_that_failed_without_naming_anyone_keeps_who_needs_a_person(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa", result="rollback_failed", rollback={"succeeded": False, "hosts": [], "need_a_person": ["qa-2"]})
    ledger.rollback("qa", "1.0.0", "1.0.0", result="failed", reconcile=True, lock_id="C1")
    qa = ledger.state().environments["qa"]
    assert qa.attention == ["qa-2"] and qa.history[-1]["result"] == "failed"


def test_a_run_end_keeps_the_hosts_it_could_not_tell_under_its_own_lock_or_sequence(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa", result="failed", unsettled=["qa-2", "qa-1"], limit="qa-*")
    ledger.promote("1.0.0", "qa", result="failed", lock_id="L9", unsettled=["qa-3"])
    at = [e.recorded_at for e in entries(ledger)]
    assert ledger.state().environments["qa"].in_doubt == {
        "#2": {"run": "promotion", "version": "1.0.0", "lock_id": "", "seq": 2, "at": at[1], "by": "alice", "hosts": ["qa-1", "qa-2"],
               "limit": "qa-*", "why": "it could not tell what these hosts run"},
        "L9": {"run": "promotion", "version": "1.0.0", "lock_id": "L9", "seq": 3, "at": at[2], "by": "alice", "hosts": ["qa-3"],
               "limit": None, "why": "it could not tell what these hosts run"},
    }
    ledger.promote("1.0.0", "qa", lock_id="L10", settles=["#2", "L9"])
    assert ledger.state().environments["qa"].in_doubt == {}


def test_a_run_started_in_an_environment_the_config_does_not_have_is_not_folded(ledger: Ledger) -> None:
    ledger.append(events.PROMOTION_STARTED, "alice", {"environment": "nowhere", "version": "1.0.0", "lock_id": "L1"})
    state = ledger.state()
    assert state.ignored == [] and all(env.in_doubt == {} for env in state.environments.values())


def test_the_problems_of_a_fold_are_in_sequence_order(ledger: Ledger) -> None:
    ledger.append(events.PROMOTION_FINISHED, "alice", {"environment": "qa"})
    ledger.append(events.VERDICT_ACCEPTED, "quinn", {"environment": "qa"})
    state = fold(entries(ledger), ledger.config, [Problem(3, "late"), Problem(1, "early")])
    assert [p.seq for p in state.ignored] == [1, 2, 3]
    assert state.ignored[1].reason == "promotion.finished entry has the wrong shape (KeyError: 'version')"
    assert state.releases == {}, "an entry named in `ignore` is not folded"
    assert state.head == (3, entries(ledger)[-1].hash)


def test_the_state_an_environment_decides_on(ledger: Ledger) -> None:
    state = ledger.state()
    assert state.for_environment("production") is state, "no authority: every environment decides on the whole state"


def test_an_acceptance_keeps_its_evidence_and_note_and_defaults_them(ledger: Ledger) -> None:
    report = {"kind": "unit", "file": "unit.xml", "tests": 1, "passed": 1, "failed": 0, "errors": 0, "skipped": 0}
    ledger.append(events.VERDICT_ACCEPTED, "quinn", {"version": "1.0.0", "environment": "qa", "evidence": [report], "note": "looks good"})
    ledger.append(events.VERDICT_ACCEPTED, "quinn", {"version": "1.0.0", "environment": "deployment"})
    state = ledger.state()
    assert state.ignored == []
    qa, deployment = state.accepted[("1.0.0", "qa")], state.accepted[("1.0.0", "deployment")]
    assert (qa.evidence, qa.note) == ((report,), "looks good")
    assert (deployment.evidence, deployment.note) == ((), "")


def test_a_promotion_entry_without_evidence_or_the_hosts_left_is_still_folded(ledger: Ledger) -> None:
    payload = {"version": "1.0.0", "digest": ledger.digest("1.0.0"), "environment": "qa", "check": False, "result": "rollback_failed",
               "rollback": {"succeeded": False}}
    ledger.append(events.PROMOTION_FINISHED, "alice", payload)
    state = ledger.state()
    assert state.ignored == [] and state.environments["qa"].evidence == [] and state.environments["qa"].attention == []


def test_a_rollback_puts_the_targets_digest_live(ledger: Ledger) -> None:
    ledger.build("2.0.0")
    ledger.promote("2.0.0", "qa")
    ledger.rollback("qa", "1.0.0", "2.0.0")
    assert ledger.state().environments["qa"].current_digest == ledger.digest("1.0.0")


def test_a_reconcile_that_succeeded_clears_who_needed_a_person(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa", result="rollback_failed", rollback={"succeeded": False, "hosts": [], "need_a_person": ["qa-2"]})
    ledger.rollback("qa", "1.0.0", "1.0.0", reconcile=True, lock_id="C1")
    qa = ledger.state().environments["qa"]
    assert qa.attention == [] and qa.current is None and qa.history[-1]["result"] == "succeeded", "nothing new went live"


def test_a_failed_rollback_that_names_no_one_and_holds_no_lock_leaves_no_one(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa", result="rollback_failed", rollback={"succeeded": False, "hosts": [], "need_a_person": ["qa-2"]})
    ledger.append(events.ROLLBACK_FINISHED, "alice", {"environment": "qa", "version": "1.0.0", "digest": ledger.digest("1.0.0"),
                                                      "from_version": None, "reason": "bad", "automatic": False, "result": "failed"})
    state = ledger.state()
    assert state.ignored == [] and state.environments["qa"].attention == []


def test_an_unknown_version_lists_every_built_release(ledger: Ledger) -> None:
    ledger.build("2.0.0")
    with pytest.raises(BadInput) as refused:
        ledger.state().release("3.0.0")
    assert str(refused.value) == "unknown version 3.0.0; built releases: 1.0.0, 2.0.0 (see `relpromote releases`)"


def test_a_failed_rollback_names_the_hosts_it_switched_off_the_record_too(ledger: Ledger) -> None:
    ledger.build("1.1.0")
    ledger.promote("1.0.0", "qa")
    ledger.promote("1.1.0", "qa")
    hosts = [{"host": "qa-1", "target": "1.0.0", "ok": True, "now_runs": "1.0.0", "switched": True, "message": ""},
             {"host": "qa-2", "target": "1.0.0", "ok": False, "now_runs": "1.1.0", "switched": False, "message": "hook"},
             {"host": "qa-3", "target": "1.0.0", "ok": True, "now_runs": "1.1.0", "switched": False, "message": ""}]
    ledger.rollback("qa", "1.0.0", "1.1.0", result="failed", lock_id="R4", hosts=hosts, need_a_person=["qa-2"])
    qa = ledger.state().environments["qa"]
    assert qa.current == "1.1.0" and qa.attention == ["qa-1", "qa-2"]
