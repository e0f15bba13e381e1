"""The authority: the part of the config that decides who may do what, and which of its versions are in force.

The authority is the people (names, keys, roles), which roles may do which act (global and per environment),
the promotion path, each environment's protection, approval policy, required evidence and freeze windows, the
parity gate, and the `authority:` setting itself. Its digest is the sha256 of its canonical JSON.

A version of the authority comes into force as TUF rotates roots: the first one the ledger records is the root,
trusted on first use; each later one is in force once someone who held an approver role in the one before it
signed an `authority.approved` entry naming it (and did not gain anything by the change). Environments listed
under `authority.require_approval` count a decision only when it was made under the authority in force at the
time, or under the one approved next. Pure: entries and configs in, a status out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from relpromote import events
from relpromote.config import Config
from relpromote.ledger import Entry, Problem, canonical_json

# The decisions a required environment relies on: they count there only under an approved authority.
DECISION_KINDS = frozenset({events.APPROVAL_GRANTED, events.VERDICT_ACCEPTED, events.PROMOTION_FINISHED, events.PROMOTION_STARTED})
APPROVE_COMMAND = "relpromote authority approve"

Document = dict[str, Any]


def authority_document(config: Config) -> Document:
    """The sections of the config that decide who may do what, in a canonical shape (order of lists of
    people and roles does not matter)."""
    people: list[dict[str, Any]] = [{"name": p.name, "key": p.key, "roles": sorted(set(p.roles))} for p in sorted(config.people, key=lambda p: p.name)]
    environments = {
        name: {
            "protected": env.protected,
            "allow": env.allow.model_dump(mode="json"),
            "approval": env.approval.model_dump(mode="json") if env.approval is not None else None,
            "evidence": sorted(env.evidence),
            "freeze": [window.model_dump(mode="json") for window in env.freeze],
        }
        for name, env in sorted(config.environments.items())
    }
    return {
        "people": people,
        "allow": config.allow.model_dump(mode="json"),
        "promotion_path": list(config.promotion_path),
        "environments": environments,
        "parity_gate": config.parity.gate.model_dump(mode="json") if config.parity.gate is not None else None,
        "authority": config.authority.model_dump(mode="json"),
    }


def authority_digest(document: Document) -> str:
    return hashlib.sha256(canonical_json(document)).hexdigest()


def authority_record(config: Config, last: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the ledger records when a decision is first made under this config's authority (`authority.recorded`),
    given the last one recorded; None while it is the same. Projects that never required an approved authority record
    none: the first one recorded, once the setting is used, is the root."""
    if last is None and not config.authority.require_approval:
        return None
    document = authority_document(config)
    digest = authority_digest(document)
    previous = last.get("digest") if isinstance(last, dict) else None
    if previous == digest:
        return None
    before = last.get("document") if isinstance(last, dict) and isinstance(last.get("document"), dict) else None
    return {"digest": digest, "document": document, "previous": previous, "changes": changes(before, document) if before else []}


def _people(document: Document) -> dict[str, dict[str, Any]]:
    return {str(p.get("name")): p for p in document.get("people") or [] if isinstance(p, dict)}


def changes(before: Document, after: Document) -> list[str]:
    """What changed between two authorities, in words: people added or removed, roles, keys, names, policy."""
    said: list[str] = []
    old, new = _people(before), _people(after)
    by_key = {str(p.get("key")): name for name, p in old.items()}
    for name, person in sorted(new.items()):
        if name in old:
            continue
        former = by_key.get(str(person.get("key")))
        if former is not None and former not in new:
            said.append(f"{former} renamed {name}")
            gained = sorted(set(person.get("roles") or []) - set(old[former].get("roles") or []))
            if gained:
                said.append(f"{name} +{' +'.join(gained)}")
            continue
        said.append(f"{name} added ({', '.join(person.get('roles') or []) or 'no roles'})")
    renamed = {by_key.get(str(p.get("key"))) for p in new.values()}
    for name in sorted(old):
        if name not in new and name not in renamed:
            said.append(f"{name} removed")
    for name in sorted(set(old) & set(new)):
        was, now = set(old[name].get("roles") or []), set(new[name].get("roles") or [])
        moved = [f"+{r}" for r in sorted(now - was)] + [f"-{r}" for r in sorted(was - now)]
        if moved:
            said.append(f"{name} {' '.join(moved)}")
        if old[name].get("key") != new[name].get("key"):
            said.append(f"{name}'s key changed")
    for part, words in (("allow", "who may build"), ("promotion_path", "the promotion path"), ("parity_gate", "the parity gate"),
                        ("authority", "the authority setting")):
        if before.get(part) != after.get(part):
            said.append(f"{words} changed")
    envs_before, envs_after = before.get("environments") or {}, after.get("environments") or {}
    for env in sorted(set(envs_before) | set(envs_after)):
        env_before, env_after = envs_before.get(env) or {}, envs_after.get(env) or {}
        for part, words in (("protected", "protection"), ("allow", "allowed roles"), ("approval", "approval policy"),
                            ("evidence", "required evidence"), ("freeze", "freezes")):
            if env_before.get(part) != env_after.get(part):
                said.append(f"{env}'s {words} changed")
    return said


def beneficiaries(before: Document, after: Document) -> set[str]:
    """The keys a change gives something: a person added, a role gained, a key changed."""
    old = {str(p.get("key")): set(p.get("roles") or []) for p in _people(before).values()}
    return {str(p.get("key")) for p in _people(after).values() if not set(p.get("roles") or []) <= old.get(str(p.get("key")), set())}


def approvers_of(document: Document) -> tuple[list[str], list[dict[str, Any]]]:
    """The approver roles an authority names, and the people holding one of them."""
    roles = list((document.get("authority") or {}).get("approvers") or [])
    return roles, [p for p in _people(document).values() if set(p.get("roles") or []) & set(roles)]


def approval_problem(previous: Document, document: Document, signer_key: str, signer: str) -> str | None:
    """Why `signer` may not bring `document` into force after `previous`, or None when they may."""
    roles, holders = approvers_of(previous)
    if not any(p.get("key") == signer_key for p in holders):
        who = ", ".join(sorted(str(p.get("name")) for p in holders)) or "no one"
        return (f"{signer} does not hold an approver role ({', '.join(roles) or 'none named'}) in the authority in force "
                f"(approvers there: {who})")
    if signer_key in beneficiaries(previous, document):
        return f"{signer} gains a role (or is added) in this change and may not approve it; another approver must"
    return None


@dataclass(frozen=True)
class InForce:
    """An authority that came into force: the root (recorded first) or one approved."""

    digest: str
    seq: int
    by: str
    commit: str = ""
    root: bool = False

    def as_data(self) -> dict[str, Any]:
        return {"digest": self.digest, "seq": self.seq, "by": self.by, "commit": self.commit, "root": self.root}


@dataclass
class AuthorityStatus:
    current: str  # the digest of the config deciding now
    current_document: Document
    timeline: list[InForce] = field(default_factory=list)
    documents: dict[str, Document] = field(default_factory=dict)
    required: tuple[str, ...] = ()  # environments that count decisions only under an approved authority
    problems: list[Problem] = field(default_factory=list)  # authority.approved entries that do not count
    unapproved: list[Problem] = field(default_factory=list)  # decisions made under an authority never approved in time

    @property
    def in_force(self) -> InForce | None:
        return self.timeline[-1] if self.timeline else None

    @property
    def approved(self) -> bool:
        """The config deciding now is the authority in force (or none was recorded yet: it becomes the root)."""
        return self.in_force is None or self.in_force.digest == self.current

    def pending_changes(self) -> list[str]:
        force = self.in_force
        if force is None or force.digest == self.current or force.digest not in self.documents:
            return []
        return changes(self.documents[force.digest], self.current_document)

    def approvers(self) -> list[str]:
        force = self.in_force
        document = self.documents.get(force.digest, self.current_document) if force else self.current_document
        return sorted(str(p.get("name")) for p in approvers_of(document)[1])

    def unapproved_reason(self) -> str:
        force = self.in_force
        assert force is not None
        what = "; ".join(self.pending_changes()) or "the config's authority differs"
        who = ", ".join(self.approvers()) or "no one (add an approver role holder in an approved change)"
        return (f"the config's people, roles or policy changed since the authority in force {force.digest[:12]} ({what}) "
                f"and no approver approved it; an approver ({who}) runs `{APPROVE_COMMAND}`")


EntryAuthority = Callable[[Entry], "str | None"]


def authority_status(
    entries: Iterable[Entry], config: Config, skip: frozenset[int], digest_of: EntryAuthority,
) -> AuthorityStatus:
    """The authorities in force over the ledger, the authority.approved entries that do not count, and the
    decisions made under an authority that was neither in force then nor approved next.

    `skip`: entries that do not verify (never counted); `digest_of`: the authority an entry was made under."""
    current_document = authority_document(config)
    status = AuthorityStatus(authority_digest(current_document), current_document)
    decisions: list[tuple[Entry, str | None]] = []
    for entry in entries:
        if entry.seq in skip:
            continue
        if entry.kind == events.AUTHORITY_RECORDED:
            _recorded(status, entry)
        elif entry.kind == events.AUTHORITY_APPROVED:
            _approved(status, entry)
        elif entry.kind in DECISION_KINDS and status.timeline:
            decisions.append((entry, digest_of(entry)))
    force = status.in_force
    required = set(config.authority.require_approval)
    if force is not None and force.digest in status.documents:
        required |= set((status.documents[force.digest].get("authority") or {}).get("require_approval") or [])
    status.required = tuple(name for name in config.promotion_path if name in required)
    for entry, digest in decisions:
        why = _decision_problem(status, entry, digest)
        if why is not None:
            status.unapproved.append(Problem(entry.seq, why))
    return status


def _recorded(status: AuthorityStatus, entry: Entry) -> None:
    document = entry.payload.get("document")
    if not isinstance(document, dict) or authority_digest(document) != entry.payload.get("digest"):
        status.problems.append(Problem(entry.seq, "authority.recorded entry whose document does not match its digest"))
        return
    digest = str(entry.payload["digest"])
    status.documents.setdefault(digest, document)
    if not status.timeline:
        status.timeline.append(InForce(digest, entry.seq, entry.actor, _commit(entry), root=True))


def _approved(status: AuthorityStatus, entry: Entry) -> None:
    document = entry.payload.get("document")
    digest = entry.payload.get("digest")
    if not isinstance(document, dict) or authority_digest(document) != digest:
        status.problems.append(Problem(entry.seq, "authority.approved entry whose document does not match its digest"))
        return
    force = status.in_force
    if force is None or force.digest not in status.documents:
        status.problems.append(Problem(entry.seq, f"{entry.actor} approved authority {str(digest)[:12]} before any authority was recorded"))
        return
    why = approval_problem(status.documents[force.digest], document, entry.public_key, entry.actor)
    if why is not None:
        status.problems.append(Problem(entry.seq, f"approval of authority {str(digest)[:12]} does not count: {why}"))
        return
    status.documents.setdefault(str(digest), document)
    status.timeline.append(InForce(str(digest), entry.seq, entry.actor, str(entry.payload.get("commit") or "")))


def _commit(entry: Entry) -> str:
    stamp = entry.payload.get("config")
    return str(stamp.get("commit") or "") if isinstance(stamp, dict) else ""


def _decision_problem(status: AuthorityStatus, entry: Entry, digest: str | None) -> str | None:
    """Why a decision counts not where an approved authority is required, or None when it counts: it was made under
    the authority in force at the time, or under the one approved next (a change ratified after it was used)."""
    then = next((f for f in reversed(status.timeline) if f.seq < entry.seq), None)
    if then is None:
        return None  # made before the root was recorded: it is part of what was trusted on first use
    following = next((f for f in status.timeline if f.seq > entry.seq), None)
    if digest is not None and digest in (then.digest, following.digest if following else None):
        return None
    what = f"{entry.kind} by {entry.actor}"
    if digest is None:
        return f"{what} records no authority, so it counts only where no approved authority is required"
    before, after = status.documents.get(then.digest), status.documents.get(digest)
    changed = "; ".join(changes(before, after)) if before is not None and after is not None else ""
    detail = f" ({changed})" if changed else ""
    return (f"{what} was made under authority {digest[:12]}, which no approver approved{detail}; "
            f"the authority in force then was {then.digest[:12]} (`{APPROVE_COMMAND}` brings a change into force)")
