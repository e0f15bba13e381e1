"""The execution node's judgement of a run request (relpromote.node_plan): signed plan, pinned signers, approvals."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from relpromote.identity import Identity, generate_identity
from relpromote.ledger import Entry, format_time, seal, utc_now
from relpromote.node_plan import (
    NodePlan,
    NodeSigner,
    RequestRefused,
    check_run_vars,
    judge_request,
    make_request,
    parse_request,
    stream_digest,
)

DIGEST = hashlib.sha256(b"release").hexdigest()
STREAM = stream_digest(b"stream")


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Identity]:
    folder = tmp_path_factory.mktemp("keys")
    return {name: generate_identity(Path(folder / f"{name}.key")) for name in ("alice", "carol", "mallory")}


def signers(people: dict[str, Identity]) -> list[NodeSigner]:
    return [NodeSigner("alice", people["alice"].public_key, ("promote", "rollback", "unlock")),
            NodeSigner("carol", people["carol"].public_key, ("approve",))]


def plan_of(people: dict[str, Identity], signer: str = "alice", **changes: object) -> NodePlan:
    plan = NodePlan("shop", "production", "promote", "1.0.0", DIGEST, "lock1", "playbooks/promote.yml", None, False, STREAM,
                    signer, people[signer].public_key, format_time(utc_now()))
    return dataclasses.replace(plan, **changes)  # type: ignore[arg-type]


def approval(people: dict[str, Identity], by: str = "carol", **payload: object) -> Entry:
    body = {"version": "1.0.0", "digest": DIGEST, "environment": "production", "ticket": "CHG-1",
            "expires_at": format_time(utc_now() + timedelta(hours=1)), **payload}
    return seal(None, "approval.granted", by, people[by], body, utc_now())


def judge(people: dict[str, Identity], plan: NodePlan, signature: str | None = None, approvals: list[Entry] | None = None,
          required: bool = True) -> str:
    signature = people[plan.signer].sign(plan.message()) if signature is None else signature
    line = make_request(plan, signature, approvals if approvals is not None else [approval(people)])
    parsed, sig, entries = parse_request(line)
    return judge_request(parsed, sig, entries, signers(people), "production", required, utc_now())


def refusal(people: dict[str, Identity], plan: NodePlan, **kwargs: object) -> str:
    with pytest.raises(RequestRefused) as caught:
        judge(people, plan, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in caught.value.reason
    return caught.value.reason


def test_a_signed_approved_plan_is_run_and_names_its_approver(people: dict[str, Identity]) -> None:
    assert judge(people, plan_of(people)) == "carol"
    assert judge(people, plan_of(people, action="rollback"), approvals=[]) == ""  # a rollback needs no approval
    assert judge(people, plan_of(people), approvals=[], required=False) == ""


def test_unsigned_and_wrongly_signed_plans_are_refused(people: dict[str, Identity]) -> None:
    plan = plan_of(people)
    with pytest.raises(RequestRefused, match="not signed"):
        parse_request(make_request(plan, "", []))
    assert "does not pin for mallory" in refusal(people, plan_of(people, "mallory"))
    assert "does not verify" in refusal(people, plan, signature=people["mallory"].sign(plan.message()))
    assert "does not verify" in refusal(people, plan, signature=people["alice"].sign(plan_of(people, version="2.0.0").message()))
    assert "does not pin for alice" in refusal(people, plan_of(people, signer="alice", public_key=people["mallory"].public_key),
                                               signature=people["mallory"].sign(plan_of(people, public_key=people["mallory"].public_key).message()))
    assert "unknown action" in refusal(people, plan_of(people, action="unknown"))


def test_a_signer_acts_only_as_pinned(people: dict[str, Identity]) -> None:
    carol_plan = plan_of(people, "carol")
    assert "carol may not promote in production" in refusal(people, carol_plan)
    assert "this node runs production, not qa" in refusal(people, plan_of(people, environment="qa"))


def test_approvals_must_verify_be_pinned_match_the_bytes_and_be_in_time(people: dict[str, Identity]) -> None:
    plan = plan_of(people)
    assert "no approval" in refusal(people, plan, approvals=[])
    assert "whom this node does not pin as an approver" in refusal(people, plan, approvals=[approval(people, by="mallory")])
    assert "whom this node does not pin as an approver" in refusal(people, plan, approvals=[approval(people, by="alice")])
    assert "other bytes" in refusal(people, plan, approvals=[approval(people, digest="0" * 64)])
    assert "other bytes" in refusal(people, plan, approvals=[approval(people, environment="qa")])
    assert "expired" in refusal(people, plan, approvals=[approval(people, expires_at=format_time(utc_now() - timedelta(minutes=1)))])
    good = approval(people)
    edited = dataclasses.replace(good, payload={**good.payload, "version": "1.0.0", "ticket": "CHG-2"})
    assert "does not verify" in refusal(people, plan, approvals=[edited])
    not_an_approval = seal(None, "promotion.started", "carol", people["carol"], dict(good.payload), utc_now())
    assert "not an approval" in refusal(people, plan, approvals=[not_an_approval])
    assert judge(people, plan, approvals=[approval(people, digest="0" * 64), good]) == "carol"  # one valid approval is enough
    both = [NodeSigner("alice", people["alice"].public_key, ("promote", "approve"))]
    own = approval(people, by="alice")
    with pytest.raises(RequestRefused, match="who requests this run"):
        judge_request(plan, people["alice"].sign(plan.message()), [own], both, "production", True, utc_now())


def test_an_old_or_future_plan_is_refused_as_a_replay(people: dict[str, Identity]) -> None:
    assert "replayed" in refusal(people, plan_of(people, made_at=format_time(utc_now() - timedelta(minutes=16))))
    assert "replayed" in refusal(people, plan_of(people, made_at=format_time(utc_now() + timedelta(minutes=6))))
    assert "not readable" in refusal(people, plan_of(people, made_at="yesterday"))
    assert judge(people, plan_of(people, made_at=format_time(utc_now() - timedelta(minutes=14)))) == "carol"


def test_requests_that_are_not_plans_are_refused(people: dict[str, Identity]) -> None:
    for line in (b"not json\n", b'{"kwargs": {}}\n', json.dumps({"format": "relpromote-node-request/1"}).encode() + b"\n"):
        with pytest.raises(RequestRefused):
            parse_request(line)
    body = json.loads(make_request(plan_of(people), "sig", []))
    body["plan"]["check"] = "no"
    with pytest.raises(RequestRefused, match="check is malformed"):
        parse_request(json.dumps(body).encode())
    assert "not a sha256" in refusal(people, plan_of(people, stream="abc"))


def test_the_stream_must_run_the_signed_plan(people: dict[str, Identity]) -> None:
    plan = plan_of(people)
    good = {"relpromote_environment": "production", "release_version": "1.0.0", "release_digest": DIGEST}
    check_run_vars(plan, "playbooks/promote.yml", good)
    with pytest.raises(RequestRefused, match=r"runs playbooks/rollback\.yml"):
        check_run_vars(plan, "playbooks/rollback.yml", good)
    for name, value in (("release_version", "1.0.1"), ("release_digest", "0" * 64), ("relpromote_environment", "qa")):
        with pytest.raises(RequestRefused, match=name):
            check_run_vars(plan, "playbooks/promote.yml", {**good, name: value})
    check_run_vars(plan_of(people, action="rollback", playbook="playbooks/rollback.yml"), "playbooks/rollback.yml",
                   {"relpromote_environment": "production", "release_version": "0.9.0"})
