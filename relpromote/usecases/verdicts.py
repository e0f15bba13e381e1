"""QA's verdicts and the change manager's approval, each checked by its gates and recorded signed."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

from relpromote import events
from relpromote.adapters.config_history import committed_config
from relpromote.config import Person
from relpromote.errors import BadInput
from relpromote.evidence import read_evidence_file
from relpromote.identity import Identity
from relpromote.ledger import Entry, format_time, utc_now
from relpromote.manifest import typed_text
from relpromote.policy import acceptance_verdict, approval_verdict, parse_duration, rejection_verdict, trusted_state
from relpromote.project import Project
from relpromote.state import ProjectState
from relpromote.usecases.plan import current_plan


def accept(
    project: Project, identity: Identity, actor: Person, version: str, environment: str, evidence_args: Sequence[str], note: str
) -> Entry:
    project.config.environment(environment)
    typed_text("--note", note)
    reports = [read_evidence_file(argument) for argument in evidence_args]
    evidence = [item for item, _ in reports]
    state = project.state()
    release = state.release(version)
    what = f"acceptance of {version} in {environment}"
    acceptance_verdict(project.config, state, release, environment, actor, evidence).enforce(what)
    stored = [_keep_evidence(project, item, data) for item, data in reports]
    payload = {"version": version, "digest": release.digest, "environment": environment, "evidence": stored, "note": note}

    def still_acceptable(entries: list[Entry]) -> None:
        fresh = state_of(project, entries)
        acceptance_verdict(project.config, fresh, fresh.release(version), environment, actor, evidence).enforce(what)

    return project.ledger.append(events.VERDICT_ACCEPTED, actor.name, identity, payload, still_acceptable)


def reject(
    project: Project, identity: Identity, actor: Person, version: str, environment: str, changes: Sequence[str], reason: str
) -> Entry:
    project.config.environment(environment)
    if not reason.strip():
        raise BadInput("--reason is empty; say why the release or its changes are rejected")
    typed_text("--reason", reason)
    state = project.state()
    release = state.release(version)
    what = f"rejection of {version} in {environment}"
    rejection_verdict(project.config, state, release, environment, actor, changes).enforce(what)
    payload = {"version": version, "digest": release.digest, "environment": environment, "changes": list(changes), "reason": reason}

    def still_rejectable(entries: list[Entry]) -> None:
        fresh = state_of(project, entries)
        rejection_verdict(project.config, fresh, fresh.release(version), environment, actor, changes).enforce(what)

    return project.ledger.append(events.VERDICT_REJECTED, actor.name, identity, payload, still_rejectable)


def approve(
    project: Project, identity: Identity, actor: Person, version: str, environment: str, ticket: str, expires: str | None
) -> Entry:
    env = project.config.environment(environment)
    if not ticket.strip():
        raise BadInput("--ticket is empty; give the change ticket this approval belongs to")
    typed_text("--ticket", ticket)
    policy = env.approval_policy()
    try:
        validity = parse_duration(expires or (policy.max_validity if policy else "7d"))
        utc_now() + validity  # a duration no calendar holds (99999999999h) is bad input, not a crash further down
    except ValueError as exc:
        raise BadInput(f"--expires: {exc}") from None
    except OverflowError:
        raise BadInput(f"--expires {expires!r}: longer than any approval can last; give a duration like 8h or 7d") from None
    state = project.state()
    release = state.release(version)
    what = f"approval of {version} for {environment}"
    approval_verdict(project.config, state, release, environment, actor, validity).enforce(what)
    now = utc_now()
    payload = {
        "version": version, "digest": release.digest, "environment": environment, "ticket": ticket,
        "approved_at": format_time(now), "expires_at": format_time(now + validity),
        "plan": current_plan(project, environment),  # the approval counts only while the promotion would apply this
    }

    def still_approvable(entries: list[Entry]) -> None:
        # A rejection recorded since the check above (or a release rebuilt) must win.
        fresh = state_of(project, entries)
        approval_verdict(project.config, fresh, fresh.release(version), environment, actor, validity).enforce(what)

    return project.ledger.append(events.APPROVAL_GRANTED, actor.name, identity, payload, still_approvable)


def state_of(project: Project, entries: list[Entry]) -> ProjectState:
    """The state as of `entries` (read inside an append's transaction), judged like `project.state()`."""
    return trusted_state(entries, project.config, committed_config(project.config_path))


def _keep_evidence(project: Project, item: dict[str, Any], data: bytes) -> dict[str, Any]:
    """Keep the report itself in the store, by digest, next to the artifacts it speaks for: the bytes that were hashed
    (not the file read again), put in place by a rename, so a killed accept never leaves a cited report half written."""
    folder = project.store.root / "evidence"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{item['sha256']}.xml"
    if not (target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == item["sha256"]):
        temporary = folder / f".{target.name}.{os.getpid()}"
        try:  # made under the process's umask, as the store's other files (a shared project's group: 0660)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
            with os.fdopen(descriptor, "wb") as out:
                out.write(data)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
    return {**item, "stored": f"evidence/{item['sha256']}.xml"}


