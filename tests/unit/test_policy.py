from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from relpromote.config import Person, parse_config
from relpromote.errors import Refused
from relpromote.ledger import format_time
from relpromote.policy import (
    acceptance_verdict,
    approval_verdict,
    committed_gate,
    promotion_verdict,
    rejection_verdict,
    role_gate,
)
from relpromote.release import Release
from relpromote.state import Acceptance, Approval, EnvironmentState, ProjectState, Rejection


def key(letter: str) -> str:
    return "ed25519:" + letter * 43 + "="


CONFIG = parse_config(
    """
project: shop
promotion_path: [qa, deployment, production]
environments:
  qa: {inventory: i/qa, evidence: [unit, regression]}
  deployment:
    inventory: i/deployment
    freeze: [{reason: year-end, start: 2026-12-20, end: 2027-01-02}, {reason: friday evenings, cron: "* 16-23 * * 5"}]
  production: {inventory: i/production, protected: true}
""",
    "x",
)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # a Thursday
ALICE = Person(name="alice", key=key("A"), roles=["release_manager"])
OSCAR = Person(name="oscar", key=key("O"), roles=["operator"])
QUINN = Person(name="quinn", key=key("Q"), roles=["qa"])
CAROL = Person(name="carol", key=key("C"), roles=["change_manager"])
BOSS = Person(name="bob", key=key("B"), roles=["change_manager", "release_manager"])
PEOPLE = {p.name: p for p in (ALICE, OSCAR, QUINN, CAROL, BOSS)}
CONFIG = CONFIG.model_copy(update={"people": [ALICE, OSCAR, QUINN, CAROL, BOSS]})
RELEASE = Release("1.0.0", "d" * 64, 1, "alice", "t", {"changes": [{"id": "CH-1"}, {"id": "CH-2"}]}, {})


def state(**kwargs: object) -> ProjectState:
    envs = {name: EnvironmentState(name) for name in CONFIG.promotion_path}
    result = ProjectState({"1.0.0": RELEASE}, envs, built_by_key={"1.0.0": ALICE.key})
    for key, value in kwargs.items():
        setattr(result, key, value)
    return result


def accepted_in(*envs: str) -> dict[tuple[str, str], Acceptance]:
    return {("1.0.0", e): Acceptance("1.0.0", e, "quinn", "t", (), "") for e in envs}


def approval(**changes: object) -> Approval:
    fields: dict[str, object] = {
        "version": "1.0.0", "digest": "d" * 64, "environment": "production", "ticket": "CHG-1", "approver": "carol",
        "at": "t", "expires_at": format_time(NOW + timedelta(hours=4)),
    }
    fields.update(changes)
    fields.setdefault("approver_key", PEOPLE[str(fields["approver"])].key)
    return Approval(**fields)  # type: ignore[arg-type]


def failed_rules(verdict: object) -> list[str]:
    return [g.rule for g in verdict.gates if not g.passed]  # type: ignore[attr-defined]


def test_roles_default_and_refuse() -> None:
    assert role_gate(CONFIG, OSCAR, "promote", "qa").passed
    assert not role_gate(CONFIG, OSCAR, "promote", "production").passed  # protected: release managers only
    refused = role_gate(CONFIG, QUINN, "promote", "qa")
    assert not refused.passed and "allowed roles: operator, release_manager" in refused.reason


def test_first_environment_has_no_order_gate() -> None:
    assert promotion_verdict(CONFIG, state(), RELEASE, "qa", OSCAR, NOW).allowed


def test_skipping_qa_is_refused_naming_the_missing_step() -> None:
    verdict = promotion_verdict(CONFIG, state(), RELEASE, "deployment", OSCAR, NOW)
    assert failed_rules(verdict) == ["order"]
    with pytest.raises(Refused, match=r"rule 'order': 1\.0\.0 was never promoted to qa"):
        verdict.enforce("promotion")


def test_promoted_but_not_accepted_is_refused() -> None:
    verdict = promotion_verdict(CONFIG, state(promoted={("1.0.0", "qa")}), RELEASE, "deployment", OSCAR, NOW)
    assert "was not accepted in qa" in verdict.first_failure().reason  # type: ignore[union-attr]


def test_promoted_and_accepted_passes_the_order_gate() -> None:
    s = state(promoted={("1.0.0", "qa")}, accepted=accepted_in("qa"))
    assert promotion_verdict(CONFIG, s, RELEASE, "deployment", OSCAR, NOW).allowed


def test_rejected_release_can_never_be_promoted() -> None:
    s = state(rejections={"1.0.0": [Rejection("1.0.0", "qa", "quinn", "t", ("CH-2",), "breaks export")]})
    verdict = promotion_verdict(CONFIG, s, RELEASE, "qa", OSCAR, NOW)
    assert failed_rules(verdict) == ["not-rejected"] and "changes CH-2" in verdict.first_failure().reason  # type: ignore[union-attr]


PRODUCTION_READY = {"promoted": {("1.0.0", "qa"), ("1.0.0", "deployment")}, "accepted": accepted_in("qa", "deployment")}


def test_production_needs_an_approval() -> None:
    verdict = promotion_verdict(CONFIG, state(**PRODUCTION_READY), RELEASE, "production", ALICE, NOW)
    assert failed_rules(verdict) == ["approval"]


def test_valid_approval_passes() -> None:
    s = state(**PRODUCTION_READY, approvals=[approval()])
    assert promotion_verdict(CONFIG, s, RELEASE, "production", ALICE, NOW).allowed


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"digest": "e" * 64}, "for other bytes"),
        ({"expires_at": format_time(NOW - timedelta(minutes=1))}, "expired"),
        ({"approver": "alice"}, "may no longer approve"),  # alice holds no approving role
        ({"environment": "deployment"}, "no approval recorded"),
    ],
)
def test_approvals_that_do_not_count(changes: dict[str, object], why: str) -> None:
    s = state(**PRODUCTION_READY, approvals=[approval(**changes)])
    verdict = promotion_verdict(CONFIG, s, RELEASE, "production", ALICE, NOW)
    assert failed_rules(verdict) == ["approval"] and why in verdict.first_failure().reason  # type: ignore[union-attr]


def test_approver_may_not_be_the_requester() -> None:
    s = state(**PRODUCTION_READY, approvals=[approval(approver="bob")])
    verdict = promotion_verdict(CONFIG, s, RELEASE, "production", BOSS, NOW)
    assert "who requests this promotion" in verdict.first_failure().reason  # type: ignore[union-attr]
    assert promotion_verdict(CONFIG, s, RELEASE, "production", ALICE, NOW).allowed


def test_self_approval_by_the_builder_is_refused() -> None:
    built_by_bob = Release("1.0.0", "d" * 64, 1, "bob", "t", {"changes": []}, {})
    s = state(**PRODUCTION_READY, built_by_key={"1.0.0": BOSS.key})
    verdict = approval_verdict(CONFIG, s, built_by_bob, "production", BOSS, timedelta(hours=1))
    assert failed_rules(verdict) == ["separation-of-duties"]
    assert approval_verdict(CONFIG, s, built_by_bob, "production", CAROL, timedelta(hours=1)).allowed


def test_approval_validity_is_capped_and_needs_the_previous_step() -> None:
    too_long = approval_verdict(CONFIG, state(**PRODUCTION_READY), RELEASE, "production", CAROL, timedelta(days=30))
    assert failed_rules(too_long) == ["validity"]
    early = approval_verdict(CONFIG, state(), RELEASE, "production", CAROL, timedelta(hours=1))
    assert failed_rules(early) == ["order"]


def test_freeze_by_date_range_and_cron_and_break_glass() -> None:
    s = state(promoted={("1.0.0", "qa")}, accepted=accepted_in("qa"))
    christmas = datetime(2027, 1, 2, 23, 59, tzinfo=UTC)  # the range includes its last day
    assert failed_rules(promotion_verdict(CONFIG, s, RELEASE, "deployment", OSCAR, christmas)) == ["freeze"]
    friday_evening = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)
    assert failed_rules(promotion_verdict(CONFIG, s, RELEASE, "deployment", OSCAR, friday_evening)) == ["freeze"]
    assert promotion_verdict(CONFIG, s, RELEASE, "deployment", OSCAR, datetime(2026, 11, 27, 15, 59, tzinfo=UTC)).allowed
    glass = promotion_verdict(CONFIG, s, RELEASE, "deployment", ALICE, friday_evening, break_glass="payment outage")
    assert glass.allowed and "break-glass by alice: payment outage" in glass.gates[-1].reason
    operator_glass = promotion_verdict(CONFIG, s, RELEASE, "deployment", OSCAR, friday_evening, break_glass="please")
    assert failed_rules(operator_glass) == ["freeze"]


def evidence(kind: str, failed: int = 0) -> dict[str, object]:
    return {"kind": kind, "file": f"{kind}.xml", "tests": 3, "failed": failed, "errors": 0, "skipped": 0, "passed": 3 - failed}


def test_acceptance_needs_live_release_and_required_passing_evidence() -> None:
    live = state(promoted={("1.0.0", "qa")})
    live.environments["qa"].current = "1.0.0"
    assert acceptance_verdict(CONFIG, live, RELEASE, "qa", QUINN, [evidence("unit"), evidence("regression")]).allowed
    missing = acceptance_verdict(CONFIG, live, RELEASE, "qa", QUINN, [evidence("unit")])
    assert failed_rules(missing) == ["evidence-complete"] and "regression" in missing.first_failure().reason  # type: ignore[union-attr]
    failing = acceptance_verdict(CONFIG, live, RELEASE, "qa", QUINN, [evidence("unit", failed=1), evidence("regression")])
    assert failed_rules(failing) == ["evidence-passes"]
    assert failed_rules(acceptance_verdict(CONFIG, state(), RELEASE, "qa", QUINN, [evidence("unit"), evidence("regression")])) == ["live"]
    assert failed_rules(acceptance_verdict(CONFIG, live, RELEASE, "qa", OSCAR, [evidence("unit"), evidence("regression")])) == ["role"]


def test_rejection_names_real_changes_of_a_tested_release() -> None:
    tried = state(promoted={("1.0.0", "qa")})
    assert rejection_verdict(CONFIG, tried, RELEASE, "qa", QUINN, ["CH-2"]).allowed
    assert failed_rules(rejection_verdict(CONFIG, tried, RELEASE, "qa", QUINN, ["CH-9"])) == ["changes-exist"]
    assert failed_rules(rejection_verdict(CONFIG, state(), RELEASE, "qa", QUINN, [])) == ["was-tested"]


def test_protected_environment_needs_a_committed_project() -> None:
    assert not committed_gate("production", True, "abc", ["inventories/production/hosts.yml"]).passed
    assert committed_gate("qa", False, "abc", ["inventories/qa/hosts.yml"]).passed
    assert committed_gate("production", True, "abc", []).passed
