"""The parity gate (relpromote.policy.parity_gate) on a real ledger: parity.checked entries signed and folded."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relpromote import events
from relpromote.config import ParityConfig, ParityGateConfig, parse_config
from relpromote.errors import BadInput
from relpromote.policy import promotion_verdict
from tests.unit.real_ledger import Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    built = Ledger(tmp_path / "ledger.db")
    built.config = built.config.model_copy(update={"parity": ParityConfig(gate=ParityGateConfig(max_age="24h"))})
    built.build("1.0.0")
    built.promote("1.0.0", "qa")
    built.accept("1.0.0", "qa")
    built.promote("1.0.0", "deployment", actor="oscar")
    return built


def parity(ledger: Ledger, result: str = "within", environment: str = "deployment", reference: str = "production") -> None:
    ledger.append(events.PARITY_CHECKED, "oscar", {"environment": environment, "reference": reference, "result": result,
                                                   "differences": [], "summary": f"{environment} vs {reference}: {result}"})


def parity_gate(ledger: Ledger, now: datetime | None = None, environment: str = "production") -> tuple[bool, str] | None:
    state = ledger.state()
    verdict = promotion_verdict(ledger.config, state, state.releases["1.0.0"], environment, ledger.person("alice"),
                                now or datetime.now(UTC))
    found = [g for g in verdict.gates if g.rule == "parity"]
    return (found[0].passed, found[0].reason) if found else None


def test_a_recent_passed_check_and_acceptance_in_the_mirror_pass(ledger: Ledger) -> None:
    ledger.accept("1.0.0", "deployment")
    parity(ledger)
    passed, reason = parity_gate(ledger) or (False, "")
    assert passed and "deployment mirrored production" in reason and "accepted 1.0.0" in reason


def test_never_checked_refuses(ledger: Ledger) -> None:
    ledger.accept("1.0.0", "deployment")
    assert parity_gate(ledger) == (False, "deployment was never checked against production; run `relpromote parity deployment production`")


def test_a_check_older_than_max_age_refuses(ledger: Ledger) -> None:
    ledger.accept("1.0.0", "deployment")
    parity(ledger)
    passed, reason = parity_gate(ledger, datetime.now(UTC) + timedelta(hours=25)) or (True, "")
    assert not passed and "is older than 24h" in reason
    assert (parity_gate(ledger, datetime.now(UTC) + timedelta(hours=23)) or (False, ""))[0]


def test_the_last_check_decides_even_after_an_earlier_pass(ledger: Ledger) -> None:
    ledger.accept("1.0.0", "deployment")
    parity(ledger)
    parity(ledger, "drifted")
    passed, reason = parity_gate(ledger) or (True, "")
    assert not passed and "did not mirror production" in reason and "deployment vs production: drifted" in reason
    parity(ledger)
    assert (parity_gate(ledger) or (False, ""))[0]


def test_a_check_the_other_way_round_does_not_count(ledger: Ledger) -> None:
    ledger.accept("1.0.0", "deployment")
    parity(ledger, environment="production", reference="deployment")
    assert not (parity_gate(ledger) or (True, ""))[0]


def test_the_release_must_be_accepted_in_the_mirror(ledger: Ledger) -> None:
    parity(ledger)
    passed, reason = parity_gate(ledger) or (True, "")
    assert not passed and reason.startswith("1.0.0 was not accepted in deployment, the mirror of production")


def test_only_the_configured_environment_has_the_gate(ledger: Ledger) -> None:
    assert parity_gate(ledger, environment="deployment") is None
    ledger.config = ledger.config.model_copy(update={"parity": ParityConfig()})
    assert parity_gate(ledger) is None


def test_a_forged_check_never_counts(ledger: Ledger) -> None:
    ledger.accept("1.0.0", "deployment")
    outsider = Ledger(ledger.path.parent / "other.db")  # someone whose key the config does not list
    ledger.store.append(events.PARITY_CHECKED, "oscar", outsider.identities["oscar"],
                        {"environment": "deployment", "reference": "production", "result": "within", "summary": ""})
    assert not (parity_gate(ledger) or (True, ""))[0]


def test_the_gate_names_environments_the_config_has() -> None:
    text = """
project: shop
promotion_path: [qa, production]
environments: {qa: {inventory: a}, production: {inventory: b}}
parity: {gate: {environment: production, mirror: deployment}}
"""
    with pytest.raises(BadInput, match=re.escape("parity.gate.mirror: environment 'deployment' is not defined")):
        parse_config(text, "relpromote.yml")
