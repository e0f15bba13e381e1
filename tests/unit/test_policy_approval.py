"""relpromote/policy.py's approval gate from real ledger entries: separation of duties end to end,
and the exact instant an approval expires.

The approver always holds change_manager, so the role check passes and only the rule under test
can refuse; each refusal asserts that rule's reason.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from relpromote.ledger import format_time
from relpromote.policy import approval_verdict, promotion_verdict, role_gate
from relpromote.state import ProjectState
from tests.unit.real_ledger import NOW, Ledger


def ready_for_production(tmp_path: Path, builder: str) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.db")
    ledger.build("1.0.0", actor=builder)
    for environment in ("qa", "deployment"):
        ledger.promote("1.0.0", environment)
        ledger.accept("1.0.0", environment)
    return ledger


def approval_gate(ledger: Ledger, requester: str, state: ProjectState | None = None) -> tuple[bool, str]:
    state = state or ledger.state()
    verdict = promotion_verdict(ledger.config, state, state.releases["1.0.0"], "production", ledger.person(requester), NOW)
    assert [g.rule for g in verdict.gates if not g.passed] in ([], ["approval"]), verdict.as_data()
    found = next(g for g in verdict.gates if g.rule == "approval")
    return found.passed, found.reason


def in_hours(hours: float) -> str:
    return format_time(NOW + timedelta(hours=hours))


def test_an_approval_by_the_releases_builder_does_not_count_at_promotion(tmp_path: Path) -> None:
    ledger = ready_for_production(tmp_path, builder="bob")  # bob builds and is a change manager
    ledger.approve("1.0.0", "production", "bob", in_hours(4))
    state = ledger.state()
    assert not state.ignored and len(state.approvals) == 1, "the entry itself is valid: bob may approve"
    assert role_gate(ledger.config, ledger.person("bob"), "approve", "production").passed
    passed, reason = approval_gate(ledger, "alice", state)
    assert not passed and reason == "production needs a valid approval: approval CHG-1 was given by the release's builder bob (same key)"
    # The same approval by another change manager counts.
    ledger.approve("1.0.0", "production", "carol", in_hours(4), ticket="CHG-2")
    assert approval_gate(ledger, "alice") == (True, "approved by carol under CHG-2 until " + in_hours(4)[:16])


def test_an_approval_by_the_requester_does_not_count(tmp_path: Path) -> None:
    ledger = ready_for_production(tmp_path, builder="alice")
    ledger.approve("1.0.0", "production", "bob", in_hours(4))
    passed, reason = approval_gate(ledger, "bob")  # bob is a release manager too: the role gate lets him promote
    assert not passed and reason.endswith("approval CHG-1 was given by bob, who requests this promotion (same key)")
    assert approval_gate(ledger, "alice")[0]


def test_the_approval_verdict_refuses_the_builder_before_anything_is_recorded(tmp_path: Path) -> None:
    ledger = ready_for_production(tmp_path, builder="bob")
    state = ledger.state()
    verdict = approval_verdict(ledger.config, state, state.releases["1.0.0"], "production", ledger.person("bob"), timedelta(hours=4))
    assert [g.rule for g in verdict.gates if not g.passed] == ["separation-of-duties"]
    assert verdict.first_failure().reason == "bob built 1.0.0 (with the same key) and may not approve it; another change manager must"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("expires", "counts"),
    [(timedelta(0), False), (timedelta(microseconds=-1), False), (timedelta(microseconds=1), True), (timedelta(hours=1), True)],
)
def test_an_approval_is_void_from_the_exact_instant_it_expires(tmp_path: Path, expires: timedelta, counts: bool) -> None:
    ledger = ready_for_production(tmp_path, builder="alice")
    ledger.approve("1.0.0", "production", "carol", format_time(NOW + expires))
    passed, reason = approval_gate(ledger, "alice")
    assert passed is counts, reason
    if not counts:
        assert reason == f"production needs a valid approval: approval CHG-1 expired at {format_time(NOW + expires)[:16]}"


def test_an_approval_for_other_bytes_or_another_environment_does_not_count(tmp_path: Path) -> None:
    ledger = ready_for_production(tmp_path, builder="alice")
    ledger.approve("1.0.0", "deployment", "carol", in_hours(4))
    assert approval_gate(ledger, "alice") == (False, "production needs a valid approval: no approval recorded for these bytes")

