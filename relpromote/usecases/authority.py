"""`authority show` and `authority approve`: which version of who-may-do-what is in force, and bringing a change into force.

An approver of the authority in force (a holder of one of its `authority.approvers` roles) signs an `authority.approved`
entry naming the new authority's digest, its document and the config commit it was read from. The rules are in
relpromote.authority; this module reads the config at a commit and records the entry atomically.
"""

from __future__ import annotations

from typing import Any

from relpromote import events
from relpromote.adapters.config_history import committed_config, resolve_commit
from relpromote.authority import AuthorityStatus, approval_problem, approvers_of, authority_digest, authority_document, changes
from relpromote.config import Config, Person
from relpromote.errors import BadInput, Refused
from relpromote.identity import Identity
from relpromote.ledger import Entry
from relpromote.project import Project
from relpromote.usecases.verdicts import state_of


def _status(project: Project) -> AuthorityStatus:
    status = project.state().authority
    assert status is not None  # trusted_state always judges the authority
    return status


def authority_report(project: Project) -> dict[str, Any]:
    """What `authority show` prints: the authority in force, the config's, what differs, who may approve it."""
    status = _status(project)
    force = status.in_force
    return {
        "digest": status.current,
        "in_force": force.as_data() if force else None,
        "current_in_force": status.approved,
        "changes": status.pending_changes(),
        "approvers": status.approvers(),
        "require_approval": list(status.required),
        "timeline": [step.as_data() for step in status.timeline],
        "unapproved": [problem.as_data() for problem in status.unapproved],
        "problems": [problem.as_data() for problem in status.problems],
    }


def approve_authority(project: Project, identity: Identity, actor: Person, revision: str | None) -> tuple[Entry | None, dict[str, Any]]:
    """Sign the authority of the config at `revision` (default HEAD) into force; None when it already is.

    Refused (exit 3) unless the signer holds an approver role in the authority in force and gains nothing by the change."""
    commit = resolve_commit(project.config_path, revision or "HEAD")
    if commit is None:
        raise BadInput(f"--commit {revision or 'HEAD'}: not a commit of the project's git repository; commit the config first")
    found = committed_config(project.config_path)(commit)
    if not isinstance(found, Config):
        why = found or "cannot be read by this relpromote"
        raise BadInput(f"the config at commit {commit[:12]} {why}; give --commit REV of a commit with a valid relpromote.yml")
    document = authority_document(found)
    digest = authority_digest(document)
    status = _status(project)
    force = status.in_force
    if force is None:
        roles, holders = approvers_of(status.current_document)
        if not any(p.get("key") == identity.public_key for p in holders):
            raise Refused(f"authority approval refused: {actor.name} holds no approver role ({', '.join(roles)}) in the config")
        raise BadInput("no authority is recorded yet, so there is nothing to approve: with authority.require_approval set, the "
                       "first decision recorded makes the config's authority the root (trusted on first use)")
    summary = {"digest": digest, "commit": commit, "previous": force.digest, "changes": changes(status.documents[force.digest], document)}
    refusal = approval_problem(status.documents[force.digest], document, identity.public_key, actor.name)
    if refusal is not None:
        raise Refused(f"approval of authority {digest[:12]} refused: {refusal}", detail=summary)
    if digest == force.digest:
        return None, summary

    def still_approvable(entries: list[Entry]) -> None:
        # Another approval recorded since the check above changes what this one is judged against.
        fresh = state_of(project, entries).authority
        now = fresh.in_force if fresh else None
        if now is None or now.digest != force.digest:
            raise Refused(f"approval of authority {digest[:12]} refused: the authority in force changed while approving; run it again")

    payload = {"document": document, **summary}
    return project.ledger.append(events.AUTHORITY_APPROVED, actor.name, identity, payload, still_approvable), summary
