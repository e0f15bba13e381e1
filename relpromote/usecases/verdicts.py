"""QA's verdicts and the change manager's approval, each checked by its gates and recorded signed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relpromote import events
from relpromote.config import Person
from relpromote.errors import BadInput
from relpromote.evidence import read_evidence, split_evidence_argument
from relpromote.identity import Identity
from relpromote.ledger import Entry, format_time, utc_now
from relpromote.policy import acceptance_verdict, approval_verdict, parse_duration, rejection_verdict
from relpromote.project import Project


def accept(
    project: Project, identity: Identity, actor: Person, version: str, environment: str, evidence_args: Sequence[str], note: str
) -> Entry:
    project.config.environment(environment)
    evidence = [read_evidence(argument) for argument in evidence_args]
    state = project.state()
    release = state.release(version)
    acceptance_verdict(project.config, state, release, environment, actor, evidence).enforce(f"acceptance of {version} in {environment}")
    stored = [_keep_evidence(project, argument, item) for argument, item in zip(evidence_args, evidence, strict=True)]
    payload = {"version": version, "digest": release.digest, "environment": environment, "evidence": stored, "note": note}
    return project.ledger.append(events.VERDICT_ACCEPTED, actor.name, identity, payload)


def reject(
    project: Project, identity: Identity, actor: Person, version: str, environment: str, changes: Sequence[str], reason: str
) -> Entry:
    project.config.environment(environment)
    if not reason.strip():
        raise BadInput("--reason is empty; say why the release or its changes are rejected")
    state = project.state()
    release = state.release(version)
    rejection_verdict(project.config, state, release, environment, actor, changes).enforce(f"rejection of {version} in {environment}")
    payload = {"version": version, "digest": release.digest, "environment": environment, "changes": list(changes), "reason": reason}
    return project.ledger.append(events.VERDICT_REJECTED, actor.name, identity, payload)


def approve(
    project: Project, identity: Identity, actor: Person, version: str, environment: str, ticket: str, expires: str | None
) -> Entry:
    env = project.config.environment(environment)
    if not ticket.strip():
        raise BadInput("--ticket is empty; give the change ticket this approval belongs to")
    policy = env.approval_policy()
    try:
        validity = parse_duration(expires or (policy.max_validity if policy else "7d"))
    except ValueError as exc:
        raise BadInput(f"--expires: {exc}") from None
    state = project.state()
    release = state.release(version)
    approval_verdict(project.config, state, release, environment, actor, validity).enforce(f"approval of {version} for {environment}")
    now = utc_now()
    payload = {
        "version": version, "digest": release.digest, "environment": environment, "ticket": ticket,
        "approved_at": format_time(now), "expires_at": format_time(now + validity),
    }
    return project.ledger.append(events.APPROVAL_GRANTED, actor.name, identity, payload)


def _keep_evidence(project: Project, argument: str, item: dict[str, Any]) -> dict[str, Any]:
    """Keep the report itself in the store, by digest, next to the artifacts it speaks for."""
    _, path = split_evidence_argument(argument)
    folder = project.store.root / "evidence"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{item['sha256']}.xml").write_bytes(path.read_bytes())
    return {**item, "stored": f"evidence/{item['sha256']}.xml"}


