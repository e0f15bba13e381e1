"""relpromote/policy.py: every gate's rule, verdict and reason, exactly (the survivors of `make mutate`, tests/MUTANTS.md).

Each test fixes what a person reads when a gate refuses or lets pass (`relpromote promote` prints the gates'
`as_data`), so a gate whose rule name, outcome or reason changed is noticed, and the edges of each rule
(the newest approval that does not count hiding an older one that does, a validity of exactly the maximum,
a parity check exactly max_age old, more than three ledger problems) are pinned.
"""

from __future__ import annotations

import dataclasses
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from relpromote import events
from relpromote.adapters.config_history import committed_config
from relpromote.authority import AuthorityStatus, InForce, authority_digest, authority_document
from relpromote.config import AllowConfig, ApprovalConfig, GlobalAllowConfig, ParityConfig, ParityGateConfig, Person, parse_config
from relpromote.errors import Refused
from relpromote.ledger import Problem, format_time
from relpromote.policy import (
    Gate,
    Verdict,
    acceptance_verdict,
    allowed_roles,
    approval_verdict,
    committed_gate,
    config_gate,
    entry_authority,
    ledger_gate,
    parity_gate,
    parse_duration,
    plan_changes,
    plan_summary,
    promotion_verdict,
    rejection_verdict,
    require_role,
    revise_verdict,
    role_gate,
    trusted_state,
    valid_approval,
)
from relpromote.release import Release
from relpromote.state import Acceptance, Approval, EnvironmentState, ParityCheck, ProjectState, Rejection
from tests.unit.real_ledger import CONFIG_TEXT, ROLES, Ledger


def key(letter: str) -> str:
    return "ed25519:" + letter * 43 + "="


ALICE = Person(name="alice", key=key("A"), roles=["release_manager"])
OSCAR = Person(name="oscar", key=key("O"), roles=["operator"])
QUINN = Person(name="quinn", key=key("Q"), roles=["qa"])
CAROL = Person(name="carol", key=key("C"), roles=["change_manager"])
DAVE = Person(name="dave", key=key("D"), roles=["change_manager"])
BOB = Person(name="bob", key=key("B"), roles=["change_manager", "release_manager"])
NOBODY = Person(name="nemo", key=key("N"), roles=[])
PEOPLE = [ALICE, OSCAR, QUINN, CAROL, DAVE, BOB, NOBODY]
CONFIG = parse_config(
    """
project: shop
promotion_path: [qa, deployment, production]
environments:
  qa: {inventory: i/qa, evidence: [unit]}
  deployment:
    inventory: i/deployment
    freeze: [{reason: friday evenings, cron: "* 16-23 * * 5"}]
  production: {inventory: i/production, protected: true}
""",
    "relpromote.yml",
).model_copy(update={"people": PEOPLE})
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # a Thursday
FRIDAY_EVENING = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)
DIGEST = "d" * 64
RELEASE = Release("1.0.0", DIGEST, 1, "alice", "t", {"changes": [{"id": "CH-1", "commits": ["abc"]}, {"id": "CH-2", "commits": ["def"]}]}, {})


def state(**fields: Any) -> ProjectState:
    result = ProjectState({"1.0.0": RELEASE}, {name: EnvironmentState(name) for name in CONFIG.promotion_path},
                          built_by_key={"1.0.0": ALICE.key}, head=(7, "h" * 64))
    for name, value in fields.items():
        setattr(result, name, value)
    return result


def accepted(*environments: str) -> dict[tuple[str, str], Acceptance]:
    return {("1.0.0", e): Acceptance("1.0.0", e, "quinn", "t", (), "") for e in environments}


READY = {"promoted": {("1.0.0", "qa"), ("1.0.0", "deployment")}, "accepted": accepted("qa", "deployment")}
PLAN = {"hosts": ["web1", "web2"], "config": "c" * 64, "inventory": "i" * 64, "playbooks": "p" * 64, "roles": "r" * 64, "ansible.cfg": "a" * 64}
EXPIRES = format_time(NOW + timedelta(hours=4))


def approval(**changes: Any) -> Approval:
    fields: dict[str, Any] = {"version": "1.0.0", "digest": DIGEST, "environment": "production", "ticket": "CHG-1", "approver": "carol",
                              "at": "t", "expires_at": EXPIRES, "approver_key": CAROL.key}
    fields.update(changes)
    return Approval(**fields)


def gates(verdict: Verdict) -> list[tuple[str, bool, str]]:
    data = verdict.as_data()
    assert all(set(g) == {"rule", "passed", "reason"} for g in data)
    return [(g["rule"], g["passed"], g["reason"]) for g in data]


# Gate, Verdict, roles


def test_a_gate_and_a_refusal_carry_every_gate_as_data() -> None:
    verdict = Verdict((Gate("role", True, "ok"), Gate("order", False, "first"), Gate("freeze", False, "second")))
    assert Gate("role", True, "ok").as_data() == {"rule": "role", "passed": True, "reason": "ok"}
    assert verdict.first_failure() == Gate("order", False, "first") and not verdict.allowed
    with pytest.raises(Refused) as refused:
        verdict.enforce("promotion")
    assert str(refused.value) == "promotion refused by rule 'order': first"
    assert refused.value.detail == {"gates": [{"rule": "role", "passed": True, "reason": "ok"},
                                              {"rule": "order", "passed": False, "reason": "first"},
                                              {"rule": "freeze", "passed": False, "reason": "second"}]}
    assert Verdict((Gate("role", True, "ok"),)).first_failure() is None
    Verdict((Gate("role", True, "ok"),)).enforce("promotion")  # nothing refused, nothing raised


def test_role_reasons_name_the_person_the_act_the_place_and_the_allowed_roles() -> None:
    assert role_gate(CONFIG, ALICE, "break_glass", "deployment") == Gate("role", True, "alice holds release_manager, which may break glass in deployment")
    assert role_gate(CONFIG, ALICE, "build") == Gate("role", True, "alice holds release_manager, which may build")
    assert role_gate(CONFIG, NOBODY, "lock_release", "qa") == Gate(
        "role", False, "nemo (no roles) may not lock release in qa; allowed roles: release_manager, operator")
    assert role_gate(CONFIG, BOB, "accept", "qa") == Gate("role", False, "bob (change_manager, release_manager) may not accept in qa; allowed roles: qa")
    assert role_gate(CONFIG, QUINN, "build") == Gate("role", False, "quinn (qa) may not build; allowed roles: release_manager")


def test_configured_roles_replace_the_defaults() -> None:
    config = CONFIG.model_copy(update={"allow": GlobalAllowConfig(build=["operator"])})
    production = config.environments["production"].model_copy(update={"allow": AllowConfig(promote=["qa"], break_glass=["operator"])})
    config = config.model_copy(update={"environments": {**config.environments, "production": production}})
    assert allowed_roles(config, "build", None) == ("operator",)
    assert allowed_roles(config, "promote", "production") == ("qa",)
    assert allowed_roles(config, "break_glass", "production") == ("operator",)
    assert allowed_roles(config, "rollback", "production") == ("release_manager",)
    assert allowed_roles(CONFIG, "promote", "production") == ("release_manager",)
    assert allowed_roles(CONFIG, "promote", "qa") == ("operator", "release_manager")


def test_require_role_refuses_with_the_rule_and_passes_silently() -> None:
    require_role(CONFIG, ALICE, "lock_release", "qa")
    with pytest.raises(Refused) as refused:
        require_role(CONFIG, QUINN, "break_glass", "deployment")
    assert str(refused.value) == ("break glass refused by rule 'role': quinn (qa) may not break glass in deployment; "
                                  "allowed roles: release_manager")


# Promotion


def test_a_promotion_that_passes_says_why_each_gate_passed() -> None:
    verdict = promotion_verdict(CONFIG, state(**READY, approvals=[approval()]), RELEASE, "production", ALICE, NOW)
    assert gates(verdict) == [
        ("role", True, "alice holds release_manager, which may promote in production"),
        ("ledger", True, "every entry verifies (head #7)"),
        ("committed", True, "the config's commit was not looked up"),
        ("not-rejected", True, "1.0.0 has no rejection"),
        ("order", True, "1.0.0 was promoted to and accepted in deployment"),
        ("approval", True, f"approved by carol under CHG-1 until {EXPIRES[:16]}"),
        ("freeze", True, "production is not frozen"),
    ]
    first = promotion_verdict(CONFIG, state(), RELEASE, "qa", OSCAR, NOW)
    assert gates(first)[4] == ("order", True, "qa is the first environment")


def test_a_refused_promotion_names_each_failing_gate_exactly() -> None:
    s = state(promoted={("1.0.0", "qa")}, ignored=[Problem(3, "forged")], config_record={"commit": "f" * 40, "committed": False},
              rejections={"1.0.0": [Rejection("1.0.0", "qa", "quinn", "t", ("CH-1", "CH-2"), "breaks export")]})
    verdict = promotion_verdict(CONFIG, s, RELEASE, "production", OSCAR, NOW)
    assert gates(verdict) == [
        ("role", False, "oscar (operator) may not promote in production; allowed roles: release_manager"),
        ("ledger", False, "production is protected and 1 ledger entries do not verify (#3: forged); "
                          "see `relpromote audit verify` and restore the ledger from a verified copy"),
        ("committed", False, f"production is protected and the config (relpromote.yml) differs from commit {'f' * 12}; "
                             "commit it: who may do what changes only through a committed config"),
        ("not-rejected", False, "1.0.0 was rejected in qa by quinn (changes CH-1, CH-2: breaks export); build a new version (relpromote revise)"),
        ("order", False, "1.0.0 was never promoted to deployment; promote it to deployment and accept it there first"),
        ("approval", False, "production needs a valid approval: no approval recorded for these bytes"),
        ("freeze", True, "production is not frozen"),
    ]
    not_accepted = promotion_verdict(CONFIG, state(promoted={("1.0.0", "qa")}), RELEASE, "deployment", OSCAR, NOW)
    assert gates(not_accepted)[4] == ("order", False, "1.0.0 was not accepted in qa; record `relpromote accept 1.0.0 --env qa` first")


def test_a_rejection_of_the_whole_release_and_a_failed_verification_are_named() -> None:
    whole = state(rejections={"1.0.0": [Rejection("1.0.0", "qa", "quinn", "t", ("CH-1",), "old"), Rejection("1.0.0", "deployment", "carol", "t", (), "slow")]})
    assert gates(promotion_verdict(CONFIG, whole, RELEASE, "qa", OSCAR, NOW))[3] == (
        "not-rejected", False, "1.0.0 was rejected in deployment by carol (the release: slow); build a new version (relpromote revise)")
    failed = state(failed_verification={"1.0.0": "smoke tests failed"})
    assert gates(promotion_verdict(CONFIG, failed, RELEASE, "qa", OSCAR, NOW))[3] == (
        "not-rejected", False, "1.0.0 failed verification and was rolled back (smoke tests failed); build a new version")


def test_the_freeze_gate_names_the_window_and_who_broke_the_glass() -> None:
    s = state(promoted={("1.0.0", "qa")}, accepted=accepted("qa"))
    assert gates(promotion_verdict(CONFIG, s, RELEASE, "deployment", OSCAR, FRIDAY_EVENING))[-1] == (
        "freeze", False, "deployment is frozen (friday evenings); wait, or break glass with --break-glass REASON")
    assert gates(promotion_verdict(CONFIG, s, RELEASE, "deployment", ALICE, FRIDAY_EVENING, break_glass="outage"))[-1] == (
        "freeze", True, "frozen (friday evenings); break-glass by alice: outage")
    assert gates(promotion_verdict(CONFIG, s, RELEASE, "deployment", OSCAR, FRIDAY_EVENING, break_glass="please"))[-1] == (
        "freeze", False, "frozen (friday evenings); oscar (operator) may not break glass in deployment; allowed roles: release_manager")


def test_outside_a_protected_environment_the_ledger_and_config_gates_pass_and_say_so() -> None:
    s = state(ignored=[Problem(n, f"bad {n}") for n in range(1, 6)], config_record={"commit": None, "committed": False})
    verdict = promotion_verdict(CONFIG, s, RELEASE, "qa", OSCAR, NOW)
    assert gates(verdict)[1:3] == [
        ("ledger", True, "ignoring 5 ledger entries that do not verify (#1: bad 1; #2: bad 2; #3: bad 3 and 2 more)"),
        ("committed", True, "the config is not in a git repository with a commit (recorded; qa is not protected)"),
    ]


# Approvals


@pytest.mark.parametrize(
    ("newest", "why"),
    [
        (approval(environment="deployment"), "no approval recorded for these bytes"),
        (approval(digest="e" * 64, ticket="CHG-2"), "approval CHG-2 is for other bytes (eeeeeeeeeeee)"),
        (approval(expires_at=format_time(NOW), ticket="CHG-2"), f"approval CHG-2 expired at {format_time(NOW)[:16]}"),
        (approval(approver="alice", approver_key=ALICE.key, ticket="CHG-2"), "approval CHG-2 was given by alice, who may no longer approve"),
        (approval(approver="mallory", approver_key=key("M"), ticket="CHG-2"), "approval CHG-2 was given by mallory, who may no longer approve"),
        (approval(approver="bob", approver_key=BOB.key, ticket="CHG-2"), "approval CHG-2 was given by bob, who requests this promotion (same key)"),
    ],
)
def test_an_approval_that_does_not_count_never_hides_an_older_one_that_does(newest: Approval, why: str) -> None:
    alone = state(**READY, approvals=[newest])
    assert valid_approval(CONFIG, alone, RELEASE, "production", BOB, NOW) == (None, why)
    behind = state(**READY, approvals=[approval(approver="dave", approver_key=DAVE.key), newest])
    assert valid_approval(CONFIG, behind, RELEASE, "production", BOB, NOW) == (behind.approvals[0], f"approved by dave under CHG-1 until {EXPIRES[:16]}")


def test_an_approval_by_the_builder_never_hides_an_older_one_that_counts() -> None:
    s = state(**READY, built_by_key={"1.0.0": BOB.key}, approvals=[approval(), approval(approver="bob", approver_key=BOB.key, ticket="CHG-2")])
    assert valid_approval(CONFIG, s, RELEASE, "production", ALICE, NOW) == (s.approvals[0], f"approved by carol under CHG-1 until {EXPIRES[:16]}")
    s.approvals.pop(0)
    assert valid_approval(CONFIG, s, RELEASE, "production", ALICE, NOW) == (
        None, "approval CHG-2 was given by the release's builder bob (same key)")


def test_without_separation_of_duties_the_builder_and_the_requester_may_approve() -> None:
    production = CONFIG.environments["production"].model_copy(update={"approval": ApprovalConfig(separation_of_duties=False)})
    config = CONFIG.model_copy(update={"environments": {**CONFIG.environments, "production": production}})
    s = state(**READY, built_by_key={"1.0.0": BOB.key}, approvals=[approval(approver="bob", approver_key=BOB.key)])
    assert valid_approval(config, s, RELEASE, "production", BOB, NOW)[0] is s.approvals[0]
    assert gates(approval_verdict(config, s, RELEASE, "production", BOB, timedelta(hours=1)))[4:] == [
        ("validity", True, "valid for 1:00:00"), ("order", True, "1.0.0 was promoted to and accepted in deployment")]


def test_an_approval_counts_only_for_the_plan_it_covers() -> None:
    covered = approval(plan=PLAN)
    s = state(**READY, approvals=[covered])
    found, why = valid_approval(CONFIG, s, RELEASE, "production", ALICE, NOW, dict(PLAN))
    assert found is covered
    assert why == (f"approved by carol under CHG-1 until {EXPIRES[:16]}; it covers 2 hosts (web1, web2), "
                   f"config cccccccc, inventory iiiiiiii, playbooks pppppppp, roles rrrrrrrr")
    moved = {**PLAN, "hosts": ["web2", "web3", "web4"], "config": "x" * 64, "ansible.cfg": "b" * 64}
    assert valid_approval(CONFIG, s, RELEASE, "production", ALICE, NOW, moved) == (
        None, "approval CHG-1 covers another plan: since it, hosts (+web3, +web4, -web1), config, ansible.cfg changed; approve again")
    without = state(**READY, approvals=[approval()])
    assert valid_approval(CONFIG, without, RELEASE, "production", ALICE, NOW, dict(PLAN)) == (
        None, "approval CHG-1 records no plan (hosts, config, inventory, roles); approve again")
    # An older approval of this very plan still counts behind a newer one of another plan or of none.
    for newer in (approval(ticket="CHG-2", plan={**PLAN, "roles": "z" * 64}), approval(ticket="CHG-2")):
        both = state(**READY, approvals=[covered, newer])
        assert valid_approval(CONFIG, both, RELEASE, "production", ALICE, NOW, dict(PLAN))[0] is covered
    # promotion_verdict passes the plan on.
    refused = promotion_verdict(CONFIG, s, RELEASE, "production", ALICE, NOW, plan=moved)
    assert [g for g in gates(refused) if not g[1]] == [("approval", False, "production needs a valid approval: approval CHG-1 covers another "
                                                       "plan: since it, hosts (+web3, +web4, -web1), config, ansible.cfg changed; approve again")]


def test_plans_compare_hosts_as_sets_and_each_digest_by_name() -> None:
    assert plan_changes(PLAN, {**PLAN, "hosts": ["web2", "web1"]}) == []
    assert plan_changes({}, {}) == []
    assert plan_changes({"hosts": None}, {"hosts": ["b", "a"]}) == ["hosts (+a, +b)"]
    assert plan_changes(PLAN, {}) == ["hosts (-web1, -web2)", "config", "inventory", "playbooks", "roles", "ansible.cfg"]
    assert plan_changes(PLAN, {**PLAN, "inventory": "j", "playbooks": "q", "roles": "s"}) == ["inventory", "playbooks", "roles"]
    many = {"hosts": [f"h{n}" for n in range(7)], "config": "0123456789"}
    assert plan_summary(many) == "7 hosts (h0, h1, h2, h3, h4, …), config 01234567, inventory , playbooks , roles "
    assert plan_summary({"hosts": [f"h{n}" for n in range(5)]}) == "5 hosts (h0, h1, h2, h3, h4), config , inventory , playbooks , roles "
    assert plan_summary({}) == "0 hosts (), config , inventory , playbooks , roles "


def test_the_approval_verdict_says_why_each_gate_passed_or_refused() -> None:
    s = state(**READY)
    assert gates(approval_verdict(CONFIG, s, RELEASE, "production", CAROL, timedelta(days=7))) == [
        ("role", True, "carol holds change_manager, which may approve in production"),
        ("ledger", True, "every entry verifies (head #7)"),
        ("committed", True, "the config's commit was not looked up"),
        ("not-rejected", True, "1.0.0 has no rejection"),
        ("separation-of-duties", True, "carol did not build 1.0.0"),
        ("validity", True, "valid for 7 days, 0:00:00"),  # exactly the maximum is allowed
        ("order", True, "1.0.0 was promoted to and accepted in deployment"),
    ]
    bad = state(**READY, ignored=[Problem(2, "edited")], config_record={"commit": "", "committed": False})
    refused = approval_verdict(CONFIG, bad, RELEASE, "production", CAROL, timedelta(days=7, seconds=1))
    assert [g for g in gates(refused) if not g[1]] == [
        ("ledger", False, "production is protected and 1 ledger entries do not verify (#2: edited); "
                          "see `relpromote audit verify` and restore the ledger from a verified copy"),
        ("committed", False, "production is protected and the config (relpromote.yml) is not in a git repository with a commit; "
                             "commit it: who may do what changes only through a committed config"),
        ("validity", False, "an approval may last at most 7d; shorten --expires"),
    ]


def test_approving_where_no_approval_is_required_still_follows_the_defaults() -> None:
    s = state(built_by_key={"1.0.0": CAROL.key})
    assert gates(approval_verdict(CONFIG, s, RELEASE, "qa", CAROL, timedelta(days=8)))[4:6] == [
        ("separation-of-duties", False, "carol built 1.0.0 (with the same key) and may not approve it; another change manager must"),
        ("validity", False, "an approval may last at most 7d; shorten --expires"),
    ]


# Parity


PARITY_CONFIG = CONFIG.model_copy(update={"parity": ParityConfig(gate=ParityGateConfig(max_age="24h"))})
CHECKED_AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def parity_state(within: bool = True, accepted_in: tuple[str, ...] = ("qa", "deployment")) -> ProjectState:
    check = ParityCheck("deployment", "production", format_time(CHECKED_AT), "oscar", within, "2 ports differ")
    return state(**{**READY, "accepted": accepted(*accepted_in)}, parity={("deployment", "production"): check})


def test_the_parity_gate_reasons_and_its_exact_age_limit() -> None:
    at = format_time(CHECKED_AT)[:16]
    assert parity_gate(PARITY_CONFIG, parity_state(), RELEASE, CHECKED_AT + timedelta(hours=24)) == Gate(
        "parity", True, f"deployment mirrored production at {at} (within 24h) and accepted 1.0.0")
    assert parity_gate(PARITY_CONFIG, parity_state(), RELEASE, CHECKED_AT + timedelta(hours=24, microseconds=1)) == Gate(
        "parity", False, f"the last parity check of deployment against production ({at}) is older than 24h; "
                         "run `relpromote parity deployment production`")
    assert parity_gate(PARITY_CONFIG, parity_state(within=False), RELEASE, CHECKED_AT) == Gate(
        "parity", False, f"deployment did not mirror production at the last check ({at}): 2 ports differ; "
                         "fix the drift, then run `relpromote parity deployment production`")
    assert parity_gate(PARITY_CONFIG, parity_state(accepted_in=("qa",)), RELEASE, CHECKED_AT) == Gate(
        "parity", False, "1.0.0 was not accepted in deployment, the mirror of production; record `relpromote accept 1.0.0 --env deployment` first")


# Acceptance, rejection


def evidence(kind: str, failed: int = 0) -> dict[str, Any]:
    return {"kind": kind, "file": f"{kind}.xml", "tests": 3, "failed": failed, "errors": 0, "skipped": 0, "passed": 3 - failed}


def live_in(environment: str, **fields: Any) -> ProjectState:
    s = state(**fields)
    s.environments[environment].current = "1.0.0"
    return s


def test_the_acceptance_verdict_says_why_each_gate_passed() -> None:
    assert gates(acceptance_verdict(CONFIG, live_in("qa"), RELEASE, "qa", QUINN, [evidence("unit"), evidence("extra")])) == [
        ("role", True, "quinn holds qa, which may accept in qa"),
        ("ledger", True, "every entry verifies (head #7)"),
        ("not-rejected", True, "1.0.0 has no rejection"),
        ("live", True, "1.0.0 is live in qa"),
        ("evidence-passes", True, "all evidence passes"),
        ("evidence-complete", True, "evidence extra, unit covers what qa requires"),
    ]
    assert gates(acceptance_verdict(CONFIG, live_in("deployment"), RELEASE, "deployment", QUINN, []))[5] == (
        "evidence-complete", True, "evidence none covers what deployment requires")


def test_the_acceptance_verdict_names_what_is_missing_or_failing() -> None:
    s = state(ignored=[Problem(4, "edited")])
    refused = acceptance_verdict(CONFIG, s, RELEASE, "production", QUINN, [evidence("unit", failed=1)])
    assert [g for g in gates(refused) if not g[1]] == [
        ("ledger", False, "production is protected and 1 ledger entries do not verify (#4: edited); "
                          "see `relpromote audit verify` and restore the ledger from a verified copy"),
        ("live", False, "1.0.0 is not live in production; promote it there first"),
        ("evidence-passes", False, "evidence unit (unit.xml) has 1 failed and 0 errored tests"),
    ]


def test_a_revision_needs_the_full_retest_in_the_first_environment_only() -> None:
    revised = Release("1.0.1", DIGEST, 1, "alice", "t", {"changes": [{"id": "CH-1"}], "dropped": ["CH-2"]}, {})
    s = live_in("qa")
    s.environments["qa"].current = "1.0.1"
    s.environments["deployment"].current = "1.0.1"
    missing = acceptance_verdict(CONFIG, s, revised, "qa", QUINN, [evidence("unit")])
    assert gates(missing)[-1] == ("evidence-complete", False, "qa requires evidence of kind regression; pass --evidence regression=FILE.xml")
    both = acceptance_verdict(CONFIG, s, revised, "qa", QUINN, [])
    assert gates(both)[-1] == ("evidence-complete", False, "qa requires evidence of kind unit, regression; pass --evidence unit=FILE.xml")
    assert acceptance_verdict(CONFIG, s, revised, "qa", QUINN, [evidence("unit"), evidence("regression")]).allowed
    assert acceptance_verdict(CONFIG, s, revised, "deployment", QUINN, []).allowed, "later environments ask for no re-test"
    revise = CONFIG.source.revise.model_copy(update={"retest": ["unit"]})
    retest_unit = CONFIG.model_copy(update={"source": CONFIG.source.model_copy(update={"revise": revise})})
    assert gates(acceptance_verdict(retest_unit, s, revised, "qa", QUINN, []))[-1] == (
        "evidence-complete", False, "qa requires evidence of kind unit; pass --evidence unit=FILE.xml"), "a kind already required is asked once"


def test_the_rejection_verdict_names_unknown_changes_and_ignores_a_damaged_ledger() -> None:
    tried = state(promoted={("1.0.0", "production")}, ignored=[Problem(2, "edited")])
    assert gates(rejection_verdict(CONFIG, tried, RELEASE, "production", CAROL, ["CH-1"])) == [
        ("role", True, "carol holds change_manager, which may reject in production"),
        ("ledger", True, "ignoring 1 ledger entries that do not verify (#2: edited)"),
    ]
    refused = rejection_verdict(CONFIG, state(), RELEASE, "qa", QUINN, ["CH-1", "CH-9"])
    assert gates(refused)[2:] == [
        ("changes-exist", False, "1.0.0 has no change CH-9; its changes: CH-1, CH-2"),
        ("was-tested", False, "1.0.0 was never promoted to qa, so it cannot be judged there"),
    ]


# Revise


PLANNED = Release("1.0.0", DIGEST, 1, "alice", "t", {"planned_release": "2026-11-30T12:00:00", "changes": [
    {"id": "CH-1", "commits": ["abc"]}, {"id": "CH-2", "commits": ["def"]}, {"id": "CH-3"}]}, {})


def rejected(*changes: str) -> dict[str, list[Rejection]]:
    return {"1.0.0": [Rejection("1.0.0", "qa", "quinn", "t", changes, "broken")]}


def test_a_revision_that_passes_says_why_each_gate_passed() -> None:
    verdict = revise_verdict(CONFIG, state(rejections=rejected("CH-2")), PLANNED, ALICE, ["CH-2"], "1.0.1", NOW)
    assert gates(verdict) == [
        ("role", True, "alice holds release_manager, which may build"),
        ("rejected-first", True, "every dropped change was rejected"),
        ("deadline", True, "changes may be dropped until 2026-11-28 12:00"),
    ]
    assert gates(revise_verdict(CONFIG, state(rejections=rejected("CH-2")), RELEASE, ALICE, ["CH-2"], "1.0.1", NOW))[-1] == (
        "deadline", True, "the release plans no date, so no deadline applies")


def test_a_rejection_of_the_whole_release_lets_any_change_be_dropped() -> None:
    assert revise_verdict(CONFIG, state(rejections=rejected()), PLANNED, ALICE, ["CH-1"], "1.0.1", NOW).allowed
    assert revise_verdict(CONFIG, state(rejections=rejected()), PLANNED, ALICE, ["CH-1", "CH-2"], "1.0.1", NOW).allowed


def test_a_revision_names_every_rule_it_breaks() -> None:
    s = state(rejections=rejected("CH-3"))
    s.releases["1.0.1"] = RELEASE
    late = datetime(2026, 11, 28, 12, 0, 1, tzinfo=UTC)
    verdict = revise_verdict(CONFIG, s, PLANNED, QUINN, ["CH-9", "CH-1", "CH-3"], "1.0.1", late)
    assert gates(verdict) == [
        ("role", False, "quinn (qa) may not build; allowed roles: release_manager"),
        ("changes-exist", False, "1.0.0 has no change CH-9; its changes: CH-1, CH-2, CH-3"),
        ("rejected-first", False, "CH-1 was not rejected; record `relpromote reject 1.0.0 --env ENV --change CH-1` first"),
        ("revertible", False, "change CH-3 lists no commits, so it cannot be reverted in source; add them to the manifest"),
        ("new-version", False, "1.0.1 already exists; choose a new version"),
        ("deadline", False, "too late to drop changes: the deadline was 2026-11-28 12:00, 2d before the planned release on 2026-11-30T12:00:00"),
    ]
    assert revise_verdict(CONFIG, state(rejections=rejected("CH-3")), PLANNED, ALICE, ["CH-3"], "1.0.1", datetime(2026, 11, 28, 12, 0, tzinfo=UTC)) \
        .gates[-1].passed, "the deadline instant itself is still in time"


def test_dropping_every_change_leaves_nothing_to_release() -> None:
    everything = state(rejections=rejected())
    verdict = revise_verdict(CONFIG, everything, RELEASE, ALICE, ["CH-1", "CH-2"], "1.0.1", NOW)
    assert [g for g in gates(verdict) if not g[1]] == [("something-left", False, "dropping every change leaves nothing to release")]


# Durations, ledger and config gates, committed gate


@pytest.mark.parametrize(("text", "length"), [("1m", timedelta(minutes=1)), ("90m", timedelta(minutes=90)), ("12h", timedelta(hours=12)),
                                              ("7d", timedelta(days=7)), ("2w", timedelta(weeks=2)), ("1w", timedelta(weeks=1))])
def test_durations_in_each_unit(text: str, length: timedelta) -> None:
    assert parse_duration(text) == length


@pytest.mark.parametrize("text", ["0d", "5x", "xd", "d", "", "-1h", "1.5h", "5M"])
def test_what_is_not_a_duration_is_refused_naming_the_forms(text: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_duration(text)
    assert str(refused.value) == f"{text!r} is not a duration like 30m, 12h, 7d or 2w"


def test_the_ledger_gate_shows_three_problems_and_counts_the_rest() -> None:
    three = state(ignored=[Problem(n, "x") for n in (4, 5, 6)])
    assert ledger_gate(three, "qa", protected=False) == Gate("ledger", True, "ignoring 3 ledger entries that do not verify (#4: x; #5: x; #6: x)")
    four = state(ignored=[Problem(n, "x") for n in (4, 5, 6, 9)])
    assert ledger_gate(four, "production", protected=True) == Gate(
        "ledger", False, "production is protected and 4 ledger entries do not verify (#4: x; #5: x; #6: x and 1 more); "
                         "see `relpromote audit verify` and restore the ledger from a verified copy")
    assert ledger_gate(state(), "production", protected=True) == Gate("ledger", True, "every entry verifies (head #7)")


def test_the_config_gate_in_each_case() -> None:
    commit = "0123456789abcdef" * 2
    assert config_gate(state(), "production", True) == Gate("committed", True, "the config's commit was not looked up")
    assert config_gate(state(config_record={"commit": commit, "committed": True}), "production", True) == Gate(
        "committed", True, "the config is as committed in 0123456789ab")
    assert config_gate(state(config_record={"commit": commit, "committed": False}), "qa", False) == Gate(
        "committed", True, "the config differs from commit 0123456789ab (recorded; qa is not protected)")
    assert config_gate(state(config_record={"commit": commit, "committed": False}), "production", True) == Gate(
        "committed", False, "production is protected and the config (relpromote.yml) differs from commit 0123456789ab; "
                            "commit it: who may do what changes only through a committed config")


def test_the_committed_gate_in_each_case() -> None:
    dirty = ["a.yml", "b.yml", "c.yml", "d.yml"]
    assert committed_gate("production", True, "0123456789abcdef", []) == Gate(
        "committed", True, "project at commit 0123456789ab with no uncommitted changes")
    assert committed_gate("production", True, None, []) == Gate("committed", True, "project at commit ? with no uncommitted changes")
    assert committed_gate("qa", False, None, dirty) == Gate(
        "committed", True, "uncommitted changes in a.yml, b.yml, c.yml (recorded; qa is not protected)")
    assert committed_gate("production", True, "abc", dirty) == Gate(
        "committed", False, "production is protected and the project has uncommitted changes in a.yml, b.yml, c.yml; commit them")


# The authority of each entry under the committed config it recorded (a real git repository, a real ledger)


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True).stdout.strip()


def config_text(ledger: Ledger, roles: dict[str, list[str]]) -> str:
    people = "".join(f"  - {{name: {name}, key: '{ledger.identities[name].public_key}', roles: [{', '.join(r)}]}}\n" for name, r in roles.items())
    return CONFIG_TEXT + "people:\n" + people


@pytest.fixture
def project(tmp_path: Path) -> tuple[Ledger, Path, str]:
    """A ledger and a git repository whose first commit gave oscar the release_manager role (now he is an operator again)."""
    ledger = Ledger(tmp_path / "ledger.db")
    folder = tmp_path / "project"
    folder.mkdir()
    git(folder, "init", "-q")
    (folder / "relpromote.yml").write_text(config_text(ledger, {**ROLES, "oscar": ["release_manager"]}))
    git(folder, "add", "relpromote.yml")
    git(folder, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "then")
    return ledger, folder / "relpromote.yml", git(folder, "rev-parse", "HEAD")


def test_an_entry_is_judged_by_the_committed_config_it_recorded(project: tuple[Ledger, Path, str]) -> None:
    ledger, path, commit = project
    ledger.store.stamp = lambda: {"commit": commit, "committed": True}
    ledger.build("1.0.0", actor="oscar")  # oscar was a release manager in that commit
    config_at = committed_config(path)
    entry = ledger.store.entries()[-1]
    assert entry_authority(ledger.config, entry, config_at) is None
    assert entry_authority(ledger.config, entry) == (
        "oscar (operator) could not build under the current config; allowed roles: release_manager")
    state = trusted_state(ledger.store.entries(), ledger.config, config_at)
    assert state.ignored == [] and "1.0.0" in state.releases
    assert [p.line() for p in trusted_state(ledger.store.entries(), ledger.config).ignored] == [
        "#1: oscar (operator) could not build under the current config; allowed roles: release_manager"]


def test_an_entry_made_under_an_uncommitted_config_is_judged_by_the_current_one(project: tuple[Ledger, Path, str]) -> None:
    ledger, path, commit = project
    ledger.store.stamp = lambda: {"commit": commit, "committed": False}
    ledger.build("1.0.0", actor="oscar")
    state = trusted_state(ledger.store.entries(), ledger.config, committed_config(path))
    assert [p.line() for p in state.ignored] == ["#1: oscar (operator) could not build under the current config; allowed roles: release_manager"]


def test_a_recorded_commit_outside_the_history_never_counts(project: tuple[Ledger, Path, str]) -> None:
    ledger, path, _ = project
    ledger.store.stamp = lambda: {"commit": "f" * 40, "committed": True}
    ledger.build("1.0.0")  # alice may build under any config
    asked: list[str] = []
    lookup = committed_config(path)

    def config_at(commit: str) -> Any:
        asked.append(commit)
        return lookup(commit)

    state = trusted_state(ledger.store.entries(), ledger.config, config_at)
    assert [p.line() for p in state.ignored] == [f"#1: recorded under config commit {'f' * 12}, which is not in the project's git history"]
    assert asked == ["f" * 40], "each commit is looked up once"


def test_a_role_held_under_the_recorded_config_counts_only_in_its_place(project: tuple[Ledger, Path, str]) -> None:
    ledger, path, commit = project
    ledger.store.stamp = lambda: {"commit": commit, "committed": True}
    ledger.build("1.0.0")
    ledger.append(events.PROMOTION_FINISHED, "quinn", {"version": "1.0.0", "digest": ledger.digest("1.0.0"), "environment": "qa", "check": False,
                                                       "result": "succeeded", "limit": None, "evidence": [], "rollback": None,
                                                       "verification_failed": False, "hosts": []})
    entry = ledger.store.entries()[-1]
    assert entry_authority(ledger.config, entry, committed_config(path)) == (
        f"quinn (qa) could not promote in qa under the config of commit {commit[:12]}; allowed roles: operator, release_manager")
    elsewhere = ledger.store.entries()[-1].payload | {"environment": "gone"}
    assert entry_authority(ledger.config, type(entry)(**{**entry.__dict__, "payload": elsewhere}), committed_config(path)) is None


def test_a_key_no_person_holds_under_the_governing_config_is_named(project: tuple[Ledger, Path, str]) -> None:
    ledger, path, commit = project
    (path.parent / "relpromote.yml").write_text(config_text(ledger, {"alice": ["release_manager"]}))
    git(path.parent, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "only alice")
    only_alice = git(path.parent, "rev-parse", "HEAD")
    ledger.store.stamp = lambda: {"commit": only_alice, "committed": True}
    ledger.build("1.0.0", actor="bob")
    entry = ledger.store.entries()[-1]
    assert entry_authority(ledger.config, entry, committed_config(path)) == f"bob's key is not among the people of the config of commit {only_alice[:12]}"
    # The chain still names bob as the current config does: only his authority then is in question.
    state = trusted_state(ledger.store.entries(), ledger.config, committed_config(path))
    assert [p.line() for p in state.ignored] == [f"#1: bob's key is not among the people of the config of commit {only_alice[:12]}"]
    assert commit != only_alice


def test_a_name_the_recorded_config_gave_a_key_is_that_keys_name_for_the_entry(project: tuple[Ledger, Path, str]) -> None:
    ledger, path, _ = project
    renamed = {("robert" if name == "bob" else name): roles for name, roles in ROLES.items()}
    people = "".join(f"  - {{name: {name}, key: '{ledger.identities['bob' if name == 'robert' else name].public_key}', roles: [{', '.join(r)}]}}\n"
                     for name, r in renamed.items())
    path.write_text(CONFIG_TEXT + "people:\n" + people)
    git(path.parent, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "bob was robert")
    then = git(path.parent, "rev-parse", "HEAD")
    ledger.store.stamp = lambda: {"commit": then, "committed": True}
    ledger.store.append(events.RELEASE_BUILT, "robert", ledger.identities["bob"], {
        "version": "1.0.0", "digest": "d" * 64, "size": 1, "manifest": {"version": "1.0.0", "changes": []}})
    assert trusted_state(ledger.store.entries(), ledger.config, committed_config(path)).ignored == []
    assert [p.line() for p in trusted_state(ledger.store.entries(), ledger.config).ignored] == ["#1: signed with bob's key but recorded as robert"]
    ledger.store.stamp = lambda: {"commit": then, "committed": False}
    ledger.store.append(events.RELEASE_BUILT, "robert", ledger.identities["bob"], {
        "version": "1.0.1", "digest": "e" * 64, "size": 1, "manifest": {"version": "1.0.1", "changes": []}})
    assert [p.line() for p in trusted_state(ledger.store.entries(), ledger.config, committed_config(path)).ignored] == [
        "#2: signed with bob's key but recorded as robert"], "an uncommitted config names no one"


# Where an approved authority is required (authority.require_approval): the gate, the note, and the decisions left out


OTHER_DOCUMENT = authority_document(CONFIG.model_copy(update={"people": [ALICE]}))
DOCUMENT = authority_document(CONFIG)
CURRENT = authority_digest(DOCUMENT)
OLD = authority_digest(OTHER_DOCUMENT)


def authority(in_force: InForce | None, unapproved: list[Problem] | None = None) -> AuthorityStatus:
    return AuthorityStatus(CURRENT, DOCUMENT, [in_force] if in_force else [], {OLD: OTHER_DOCUMENT, CURRENT: DOCUMENT}, ("production",),
                           unapproved=unapproved or [])


def authority_gates(status: AuthorityStatus, environment: str = "production") -> list[tuple[str, bool, str]]:
    verdict = promotion_verdict(CONFIG, state(**READY, approvals=[approval()], authority=status), RELEASE, environment, ALICE, NOW)
    return [g for g in gates(verdict) if g[0] == "authority"]


def test_the_authority_gate_names_the_authority_in_force() -> None:
    assert authority_gates(authority(None)) == [
        ("authority", True, f"the config's authority {CURRENT[:12]} becomes the root on its first use (trusted on first use)")]
    assert authority_gates(authority(InForce(CURRENT, 3, "alice", root=True))) == [
        ("authority", True, f"the config is the authority in force {CURRENT[:12]} (the root, trusted on first use, #3)")]
    assert authority_gates(authority(InForce(CURRENT, 5, "carol"))) == [
        ("authority", True, f"the config is the authority in force {CURRENT[:12]} (approved by carol, #5)")]
    assert authority_gates(authority(InForce(CURRENT, 5, "carol")), "qa") == [], "qa requires no approved authority"
    left = [Problem(7, "approval.granted by bob was made under x"), Problem(8, "b"), Problem(9, "c")]
    assert authority_gates(authority(InForce(CURRENT, 5, "carol"), left)) == [
        ("authority", True, f"the config is the authority in force {CURRENT[:12]} (approved by carol, #5); not counted here, made under "
                            "an authority never approved: #7: approval.granted by bob was made under x; #8: b and 1 more")]
    assert authority_gates(authority(InForce(CURRENT, 5, "carol"), left[:2]))[0][2].endswith(
        "never approved: #7: approval.granted by bob was made under x; #8: b")


def test_an_unapproved_authority_refuses_where_one_is_required_and_is_noted_when_approving() -> None:
    status = authority(InForce(OLD, 2, "alice", root=True))
    assert not status.approved
    assert authority_gates(status) == [("authority", False, f"production requires an approved authority: {status.unapproved_reason()}")]
    note = approval_verdict(CONFIG, state(**READY, authority=status), RELEASE, "production", CAROL, timedelta(hours=1))
    assert [g for g in gates(note) if g[0] == "authority"] == [
        ("authority", True, f"recorded, but it counts in production only once the authority is approved: {status.unapproved_reason()}")]
    assert note.allowed
    for approved in (authority(InForce(CURRENT, 2, "alice", root=True)), None):
        quiet = approval_verdict(CONFIG, state(**READY, authority=approved), RELEASE, "production", CAROL, timedelta(hours=1))
        assert [g for g in gates(quiet) if g[0] == "authority"] == []
    elsewhere = approval_verdict(CONFIG, state(**READY, authority=status), RELEASE, "deployment", CAROL, timedelta(hours=1))
    assert [g for g in gates(elsewhere) if g[0] == "authority"] == []


def test_where_an_approved_authority_is_required_the_gates_decide_without_the_decisions_left_out() -> None:
    left = [Problem(11, "approval.granted by carol was made under authority 0123, which no approver approved"),
            Problem(12, "verdict.accepted by quinn records no authority"),
            Problem(13, "approval.granted by dave records no authority, so it counts only where no approved authority is required")]
    status = authority(InForce(CURRENT, 2, "alice", root=True), left)
    whole = state(**READY, approvals=[approval()], authority=status)
    whole.required_view = state(**READY, authority=status)  # the same state without the approval made under no approved authority
    verdict = promotion_verdict(CONFIG, whole, RELEASE, "production", ALICE, NOW)
    assert [g for g in gates(verdict) if not g[1]] == [("approval", False, "production needs a valid approval: no approval recorded for these "
                                                       "bytes; not counted: #13: approval.granted by dave records no authority, so it "
                                                       "counts only where no approved authority is required")]
    assert promotion_verdict(CONFIG, whole, RELEASE, "deployment", OSCAR, NOW).allowed, "deployment decides on every decision"
    status.required = ()
    assert promotion_verdict(CONFIG, whole, RELEASE, "production", ALICE, NOW).allowed


def test_the_edges_of_summaries_revisions_and_authority_reasons(tmp_path: Path) -> None:
    six = {"hosts": [f"h{n}" for n in range(6)]}
    assert plan_summary(six) == "6 hosts (h0, h1, h2, h3, h4, …), config , inventory , playbooks , roles "
    never_rejected = revise_verdict(CONFIG, state(), RELEASE, ALICE, ["CH-1"], "1.0.1", NOW)
    assert gates(never_rejected)[1] == ("rejected-first", False, "CH-1 was not rejected; record `relpromote reject 1.0.0 --env ENV --change CH-1` first")
    ledger = Ledger(tmp_path / "ledger.db")
    ledger.build("1.0.0")
    ledger.append(events.VERDICT_ACCEPTED, "bob", {"version": "1.0.0", "environment": "qa", "evidence": [], "note": ""})
    assert [p.line() for p in ledger.state().ignored] == [
        "#2: bob (change_manager, release_manager) could not accept in qa under the current config; allowed roles: qa"]
    roleless = ledger.config.model_copy(update={"people": [p.model_copy(update={"roles": []}) if p.name == "bob" else p for p in ledger.config.people]})
    assert entry_authority(roleless, ledger.store.entries()[-1]) == "bob (no roles) could not accept in qa under the current config; allowed roles: qa"


def test_the_approval_left_out_named_is_the_latest_and_only_when_there_is_one(tmp_path: Path) -> None:
    def refused_reason(left: list[Problem]) -> str:
        status = authority(InForce(CURRENT, 2, "alice", root=True), left)
        whole = state(**READY, authority=status)
        whole.required_view = state(**READY, authority=status)
        return next(g for g in gates(promotion_verdict(CONFIG, whole, RELEASE, "production", ALICE, NOW)) if g[0] == "approval")[2]

    three = [Problem(n, f"approval.granted by carol #{n}") for n in (11, 12, 13)]
    assert refused_reason(three).endswith("; not counted: #13: approval.granted by carol #13")
    assert refused_reason([Problem(12, "verdict.accepted by quinn records no authority")]) == (
        "production needs a valid approval: no approval recorded for these bytes")
    ledger = Ledger(tmp_path / "ledger.db")
    ledger.append(events.LOCK_RELEASED, "quinn", {"environment": "qa", "lock_id": "L1", "reason": "stuck"})
    assert [p.line() for p in ledger.state().ignored] == [
        "#1: quinn (qa) could not lock release in qa under the current config; allowed roles: release_manager, operator"]


def test_the_signature_check_given_to_trusted_state_is_the_one_the_chain_uses(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    ledger.build("1.0.0")
    entries = ledger.store.entries()
    forged = dataclasses.replace(entries[0], signature=ledger.identities["bob"].sign(entries[0].hash.encode()))
    assert [p.seq for p in trusted_state([forged], ledger.config).ignored] == [1]
    assert trusted_state([forged], ledger.config, signature_ok=lambda key, message, signature: True).ignored == [], (
        "a memo of signatures already verified stands in for the check (relpromote.adapters.verified_cache)")
