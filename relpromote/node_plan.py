"""The signed run plan an execution node checks before it runs anything (pure: no I/O).

A controller that runs a protected environment through its execution node (docs/execution-node.md) sends, ahead of
ansible-runner's transmit stream, a *run request*: the *plan* (what is to run: project, environment, action, version,
digest, the run's lock id, playbook, limit, check, and the sha256 of the transmit stream that follows), the plan's
signature by the person who asks, and the approval entries of the ledger the run relies on (each signed by its approver).

The node judges the request against what is pinned on the node alone (`NodeSigner`s: name, public key, acts each may
sign): the plan's signer must be pinned for the plan's action, each approval must be an intact ledger entry signed by a
signer pinned for `approve`, for these bytes, in this environment, unexpired, and not the requester's own. Anything
else is refused, with the reason on one line.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from relpromote.config import NAME_PATTERN, VaultConfig
from relpromote.identity import verify_signature
from relpromote.ledger import Entry, canonical_json, entry_hash, parse_time

REQUEST_FORMAT = "relpromote-node-request/1"
SIGNED_PREFIX = b"relpromote node plan\n"  # a plan's signature is never a ledger entry's, nor the reverse
ACTIONS = ("promote", "rollback", "unlock")  # unlock: giving back the run's host leases after a run that could not
APPROVAL_KIND = "approval.granted"  # mirrors relpromote.events.APPROVAL_GRANTED
SHA256 = re.compile(r"[0-9a-f]{64}")
# A plan is made right before its stream is sent: an older one (or one from the future) is a replay, or a clock to fix.
PLAN_MAX_AGE = timedelta(minutes=15)
CLOCK_SKEW = timedelta(minutes=5)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignerConfig(_Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    key: str  # as in relpromote.yml's people: `ed25519:...` or an OpenSSH ed25519 public key line
    may: list[Annotated[str, Field(pattern=r"^(promote|rollback|unlock|approve)$")]]


class NodeConfig(_Strict):
    """The execution node's own config, on the node (`relpromote node work --node-config PATH`): what only the node holds."""

    environment: Annotated[str, Field(pattern=NAME_PATTERN)]
    signers: list[SignerConfig]  # pinned here: the node trusts no list of people sent to it
    approval_required: bool = True  # a promotion needs an approval by a signer who may approve
    vault: VaultConfig | None = None  # the environment's vault password source, on the node
    ssh_key: str | None = None  # the key for the environment's hosts, on the node
    known_hosts: str | None = None  # the hosts' pinned keys; else the inventory's known_hosts the stream carries

    def pinned(self) -> list[NodeSigner]:
        return [NodeSigner(s.name, s.key, tuple(s.may)) for s in self.signers]


class RequestRefused(Exception):
    """The node does not run this request; `reason` is one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class NodePlan:
    project: str
    environment: str
    action: str  # promote | rollback | unlock
    version: str
    digest: str  # the release's sha256: the artifact the node receives must hash to it
    run: str  # the environment lock id of the run on the controller
    playbook: str  # relative to the project
    limit: str | None
    check: bool
    stream: str  # sha256 of the transmit stream that follows the request
    signer: str  # the person who asks
    public_key: str  # their key
    made_at: str

    def message(self) -> bytes:
        return SIGNED_PREFIX + canonical_json(asdict(self))

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NodeSigner:
    """A person the node trusts, pinned in the node's own config: their public key and what they may sign for."""

    name: str
    key: str
    may: tuple[str, ...]  # among ACTIONS and "approve"


def stream_digest(stream: bytes) -> str:
    return hashlib.sha256(stream).hexdigest()


def make_request(plan: NodePlan, signature: str, approvals: Sequence[Entry]) -> bytes:
    """The request line sent before the transmit stream (one line of JSON)."""
    body = {"format": REQUEST_FORMAT, "plan": plan.as_data(), "signature": signature,
            "approvals": [entry.as_data() for entry in approvals]}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def parse_request(line: bytes) -> tuple[NodePlan, str, list[Entry]]:
    """The plan, its signature and the approval entries of a request line; refused when it is not one."""
    try:
        body = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise RequestRefused("the request is not a signed run plan (no JSON request line before the stream)") from None
    if not isinstance(body, dict) or body.get("format") != REQUEST_FORMAT:
        raise RequestRefused(f"the request is not a signed run plan (format is not {REQUEST_FORMAT})")
    try:
        plan = NodePlan(**body["plan"])
        signature = body["signature"]
        approvals = [Entry(**entry) for entry in body.get("approvals") or []]
    except (KeyError, TypeError):
        raise RequestRefused("the request's plan or approvals are malformed") from None
    for name, value in asdict(plan).items():
        wanted = (bool,) if name == "check" else ((str, type(None)) if name == "limit" else (str,))
        if not isinstance(value, wanted):
            raise RequestRefused(f"the request's plan field {name} is malformed")
    if not isinstance(signature, str) or not signature:
        raise RequestRefused("the run plan is not signed")
    return plan, signature, approvals


def judge_request(
    plan: NodePlan, signature: str, approvals: Sequence[Entry], signers: Sequence[NodeSigner], environment: str,
    approval_required: bool, now: datetime,
) -> str:
    """The name of the approver the run relies on ('' when none is needed), or RequestRefused with why not."""
    if plan.environment != environment:
        raise RequestRefused(f"this node runs {environment}, not {plan.environment}")
    if plan.action not in ACTIONS:
        raise RequestRefused(f"unknown action {plan.action!r}")
    if not SHA256.fullmatch(plan.stream) or (plan.action == "promote" and not SHA256.fullmatch(plan.digest)):
        raise RequestRefused("the run plan's stream or release digest is not a sha256")
    try:
        made = parse_time(plan.made_at)
    except ValueError:
        raise RequestRefused("the run plan's time is not readable") from None
    if not now - PLAN_MAX_AGE <= made <= now + CLOCK_SKEW:
        raise RequestRefused(f"the run plan was made at {plan.made_at[:19]}Z, not within {PLAN_MAX_AGE} of the node's clock "
                             "(a replayed request, or a clock to fix)")
    pinned = {signer.key: signer for signer in signers}
    signer = pinned.get(plan.public_key)
    if signer is None or signer.name != plan.signer:
        raise RequestRefused(f"the run plan is signed with a key this node does not pin for {plan.signer}")
    if not verify_signature(plan.public_key, plan.message(), signature):
        raise RequestRefused(f"the run plan's signature does not verify with {plan.signer}'s pinned key")
    if plan.action not in signer.may:
        raise RequestRefused(f"{plan.signer} may not {plan.action} in {environment} on this node")
    if plan.action != "promote" or plan.check or not approval_required:
        return ""
    why = "the request carries no approval for these bytes"
    for entry in approvals:
        found = _approval_problem(entry, plan, pinned, now)
        if found is None:
            return entry.actor
        why = found
    raise RequestRefused(why)


def _approval_problem(entry: Entry, plan: NodePlan, pinned: Mapping[str, NodeSigner], now: datetime) -> str | None:
    p = entry.payload if isinstance(entry.payload, dict) else {}
    if entry.kind != APPROVAL_KIND:
        return f"ledger entry {entry.seq} is not an approval"
    if entry_hash(entry.body()) != entry.hash or not verify_signature(entry.public_key, entry.hash.encode(), entry.signature):
        return f"approval entry {entry.seq} does not verify (edited or forged)"
    approver = pinned.get(entry.public_key)
    if approver is None or approver.name != entry.actor or "approve" not in approver.may:
        return f"approval {p.get('ticket')} is signed by {entry.actor}, whom this node does not pin as an approver"
    if (p.get("environment"), p.get("version"), p.get("digest")) != (plan.environment, plan.version, plan.digest):
        return f"approval {p.get('ticket')} is for other bytes or another environment"
    try:
        expired = parse_time(str(p.get("expires_at"))) <= now
    except ValueError:
        return f"approval {p.get('ticket')} has no readable expiry"
    if expired:
        return f"approval {p.get('ticket')} expired at {str(p.get('expires_at'))[:16]}"
    if entry.public_key == plan.public_key:
        return f"approval {p.get('ticket')} was given by {plan.signer}, who requests this run (same key)"
    return None


def check_run_vars(plan: NodePlan, playbook: str, extravars: Mapping[str, Any]) -> None:
    """The transmitted run must be the planned one: playbook, environment, version and digest."""
    if playbook != plan.playbook:
        raise RequestRefused(f"the stream runs {playbook}, the signed plan {plan.playbook}")
    wanted = {"relpromote_environment": plan.environment}
    if plan.action == "promote":
        wanted |= {"release_version": plan.version, "release_digest": plan.digest}
    for name, value in wanted.items():
        if extravars.get(name) != value:
            raise RequestRefused(f"the stream's {name} is {extravars.get(name)!r}, the signed plan's {value!r}")
