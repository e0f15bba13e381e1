"""relpromote/state.py from real ledger entries: what counts as live, and what the gates then decide.

Every entry is appended through the real SQLite ledger with the actor's real key and folded by
trusted_state, as the commands do; the policy tests build states by hand, these check that the
ledger folds into what those gates expect.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from relpromote import events
from relpromote.policy import acceptance_verdict, promotion_verdict, rejection_verdict
from relpromote.state import ProjectState
from tests.unit.real_ledger import NOW, Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    built = Ledger(tmp_path / "ledger.db")
    built.build("1.0.0")
    return built


def gate(verdict: object, rule: str) -> tuple[bool, str]:
    found = next(g for g in verdict.gates if g.rule == rule)  # type: ignore[attr-defined]
    return found.passed, found.reason


def order_to_deployment(ledger: Ledger, state: ProjectState) -> tuple[bool, str]:
    return gate(promotion_verdict(ledger.config, state, state.releases["1.0.0"], "deployment", ledger.person("oscar"), NOW), "order")


def test_a_succeeded_promotion_is_live(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa")
    state = ledger.state()
    qa = state.environments["qa"]
    assert not state.ignored and qa.current == "1.0.0" and qa.current_digest == ledger.digest("1.0.0") and qa.by == "alice"
    assert qa.live_history == ["1.0.0"] and ("1.0.0", "qa") in state.promoted and state.where("1.0.0") == ["qa"]
    assert state.built_by_key["1.0.0"] == ledger.identities["alice"].public_key


@pytest.mark.parametrize("result", ["failed", "interrupted", "rolled_back", "rollback_failed"])
def test_a_promotion_that_did_not_succeed_never_counts_as_live(ledger: Ledger, result: str) -> None:
    ledger.promote("1.0.0", "qa", result=result)
    state = ledger.state()
    qa = state.environments["qa"]
    assert qa.current is None and qa.live_history == [] and ("1.0.0", "qa") not in state.promoted
    assert [h["result"] for h in qa.history] == [result], "it is in the environment's history all the same"
    passed, reason = order_to_deployment(ledger, state)
    assert not passed and "1.0.0 was never promoted to qa" in reason
    accept = acceptance_verdict(ledger.config, state, state.releases["1.0.0"], "qa", ledger.person("quinn"), [])
    assert gate(accept, "live") == (False, "1.0.0 is not live in qa; promote it there first")


def test_a_check_mode_run_never_counts_and_leaves_no_history(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa", check=True)
    state = ledger.state()
    assert state.environments["qa"].current is None and state.environments["qa"].history == [] and not state.promoted
    assert not order_to_deployment(ledger, state)[0]


def test_a_limited_run_never_counts_as_the_environment_live(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa", limit="qa-app-1")
    state = ledger.state()
    assert state.environments["qa"].current is None and ("1.0.0", "qa") not in state.promoted
    assert state.environments["qa"].history[0]["result"] == "succeeded"
    passed, reason = order_to_deployment(ledger, state)
    assert not passed and "never promoted to qa" in reason
    # ... and QA cannot judge it there: a rejection needs the release to have been tried in the environment.
    verdict = rejection_verdict(ledger.config, state, state.releases["1.0.0"], "qa", ledger.person("quinn"), [])
    assert gate(verdict, "was-tested")[0] is False


def test_a_promotion_in_an_environment_the_config_does_not_have_is_not_folded(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "staging")
    state = ledger.state()
    assert all(env.current is None for env in state.environments.values()) and not state.promoted


def test_promoted_and_accepted_opens_the_next_environment(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa")
    passed, reason = order_to_deployment(ledger, ledger.state())
    assert not passed and "1.0.0 was not accepted in qa" in reason
    ledger.accept("1.0.0", "qa")
    assert order_to_deployment(ledger, ledger.state()) == (True, "1.0.0 was promoted to and accepted in qa")


def test_a_failed_verification_marks_the_release_for_good(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa", result="rolled_back", verification_failed=True,
                   rollback={"succeeded": True, "hosts": [], "need_a_person": []})
    state = ledger.state()
    assert state.failed_verification == {"1.0.0": "in qa, rolled back"}
    assert state.unusable("1.0.0") == "failed verification (in qa, rolled back)"
    verdict = promotion_verdict(ledger.config, state, state.releases["1.0.0"], "qa", ledger.person("oscar"), NOW)
    passed, reason = gate(verdict, "not-rejected")
    assert not passed and "1.0.0 failed verification and was rolled back (in qa, rolled back)" in reason


def test_a_failed_automatic_rollback_leaves_hosts_for_a_person_until_a_release_goes_live(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa", result="rollback_failed",
                   rollback={"succeeded": False, "hosts": [], "need_a_person": ["qa-app-2"]})
    assert ledger.state().environments["qa"].attention == ["qa-app-2"]
    ledger.promote("1.0.0", "qa")
    assert ledger.state().environments["qa"].attention == []


def test_a_rejection_stops_the_release_everywhere(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa")
    ledger.reject("1.0.0", "qa", "totals wrong")
    state = ledger.state()
    assert state.unusable("1.0.0") == "was rejected in qa (totals wrong)"
    verdict = promotion_verdict(ledger.config, state, state.releases["1.0.0"], "qa", ledger.person("oscar"), NOW)
    passed, reason = gate(verdict, "not-rejected")
    assert not passed and "1.0.0 was rejected in qa by quinn (the release: totals wrong)" in reason


def test_a_rollback_puts_the_target_live_and_withdraws_what_it_replaced(ledger: Ledger) -> None:
    ledger.build("2.0.0")
    ledger.promote("1.0.0", "qa")
    ledger.promote("2.0.0", "qa")
    ledger.rollback("qa", to="1.0.0", from_version="2.0.0")
    qa = ledger.state().environments["qa"]
    assert qa.current == "1.0.0" and qa.withdrawn == {"2.0.0"} and qa.live_history == ["1.0.0", "2.0.0", "1.0.0"]


def test_a_failed_rollback_changes_nothing_live_and_names_the_hosts(ledger: Ledger) -> None:
    ledger.build("2.0.0")
    ledger.promote("1.0.0", "qa")
    ledger.promote("2.0.0", "qa")
    ledger.rollback("qa", to="1.0.0", from_version="2.0.0", result="failed", need_a_person=["qa-app-1"])
    qa = ledger.state().environments["qa"]
    assert qa.current == "2.0.0" and qa.withdrawn == set() and qa.attention == ["qa-app-1"]


def test_an_entry_of_the_wrong_shape_is_ignored_with_its_reason(ledger: Ledger) -> None:
    ledger.append(events.PROMOTION_FINISHED, "alice", {"version": "1.0.0", "environment": "qa", "result": "succeeded", "check": False})
    state = ledger.state()
    assert state.environments["qa"].current is None
    assert [p.seq for p in state.ignored] == [2] and "promotion.finished entry has the wrong shape (KeyError" in state.ignored[0].reason


def test_an_entry_by_someone_whose_role_could_not_promote_is_ignored(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa", actor="quinn")  # QA may not promote
    state = ledger.state()
    assert state.environments["qa"].current is None and [p.seq for p in state.ignored] == [2]
    assert "quinn (qa) could not promote in qa" in state.ignored[0].reason


def test_head_is_the_last_entry(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa")
    entries = ledger.store.entries()
    assert ledger.state().head == (2, entries[-1].hash)


def test_a_run_that_recorded_its_start_but_not_its_end_leaves_its_hosts_in_doubt(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa")
    ledger.build("2.0.0")
    ledger.append(events.PROMOTION_STARTED, "alice", {"environment": "qa", "version": "2.0.0", "lock_id": "L1", "hosts": ["qa-2", "qa-1"]})
    qa = ledger.state().environments["qa"]
    assert qa.current == "1.0.0", "a run that never said how it ended put nothing live"
    assert qa.hosts_in_doubt == ["qa-1", "qa-2"] and qa.in_doubt["L1"]["why"] == "it never recorded its end"
    ledger.promote("2.0.0", "qa", lock_id="L1")
    settled = ledger.state().environments["qa"]
    assert settled.current == "2.0.0" and settled.in_doubt == {} and settled.hosts_in_doubt == []


def test_a_finished_run_that_could_not_tell_what_some_hosts_run_keeps_them_in_doubt(ledger: Ledger) -> None:
    ledger.append(events.PROMOTION_STARTED, "alice", {"environment": "qa", "version": "1.0.0", "lock_id": "L2", "hosts": ["qa-1", "qa-2"]})
    ledger.promote("1.0.0", "qa", result="failed", lock_id="L2", unsettled=["qa-2"])
    qa = ledger.state().environments["qa"]
    assert qa.current is None and qa.hosts_in_doubt == ["qa-2"] and qa.in_doubt["L2"]["why"] == "it could not tell what these hosts run"


def smoke(failed: int = 0) -> dict[str, object]:
    return {"kind": "smoke", "file": "smoke.xml", "tests": 2, "passed": 2 - failed, "failed": failed, "errors": 0, "skipped": 0}


def test_evidence_a_promotion_recorded_counts_for_its_own_version_only(ledger: Ledger) -> None:
    ledger.build("2.0.0")
    ledger.promote("1.0.0", "qa", evidence=[smoke()])
    state = ledger.state()
    assert state.environments["qa"].evidence == [{**smoke(), "version": "1.0.0"}]
    quinn = ledger.person("quinn")
    accept = acceptance_verdict(ledger.config, state, state.releases["1.0.0"], "qa", quinn, [])
    assert gate(accept, "evidence-complete") == (True, "evidence smoke covers what qa requires")
    ledger.promote("2.0.0", "qa")
    state = ledger.state()
    other = acceptance_verdict(ledger.config, state, state.releases["2.0.0"], "qa", quinn, [])
    assert gate(other, "evidence-complete") == (False, "qa requires evidence of kind smoke; pass --evidence smoke=FILE.xml")


def test_what_each_entry_records_for_the_views(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa")
    ledger.accept("1.0.0", "qa")
    ledger.append(events.APPROVAL_GRANTED, "carol", {"version": "1.0.0", "digest": ledger.digest("1.0.0"), "environment": "production",
                                                     "ticket": "CHG-7", "expires_at": "2099-01-01T00:00:00.000000Z", "plan": {"hosts": ["p-1"]}})
    state = ledger.state()
    entries = ledger.store.entries()
    qa = state.environments["qa"]
    assert qa.history == [{"seq": 2, "kind": "promotion.finished", "version": "1.0.0", "result": "succeeded", "at": entries[1].recorded_at}]
    assert (qa.since, qa.by) == (entries[1].recorded_at, "alice")
    acceptance = state.accepted[("1.0.0", "qa")]
    assert (acceptance.version, acceptance.environment, acceptance.actor, acceptance.at, acceptance.evidence, acceptance.note) == (
        "1.0.0", "qa", "quinn", entries[2].recorded_at, (), "")
    approval = state.approvals[0]
    assert (approval.ticket, approval.approver, approval.at, approval.plan) == ("CHG-7", "carol", entries[3].recorded_at, {"hosts": ["p-1"]})
    assert approval.approver_key == ledger.identities["carol"].public_key


def test_a_later_run_that_switched_nothing_does_not_clear_the_hosts_left_for_a_person(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa", result="rollback_failed", rollback={"succeeded": False, "hosts": [], "need_a_person": ["qa-app-2"]})
    ledger.promote("1.0.0", "qa", result="failed")  # failed before any host switched: no rollback ran
    assert ledger.state().environments["qa"].attention == ["qa-app-2"]
    ledger.promote("1.0.0", "qa", result="rolled_back", rollback={"succeeded": True, "hosts": [], "need_a_person": []})
    assert ledger.state().environments["qa"].attention == ["qa-app-2"], "a rollback that succeeded elsewhere does not vouch for qa-app-2"
