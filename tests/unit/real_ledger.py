"""A real ledger for unit tests: real ed25519 keys, a temporary SQLite ledger, a config naming the people.

Entries are appended through the ledger's own API, signed by the acting person's key, and folded
by relpromote.policy.trusted_state, as every command folds them: nothing is built by hand.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relpromote import events
from relpromote.adapters.sqlite_ledger import SqliteLedger
from relpromote.config import Config, Person, parse_config
from relpromote.identity import Identity, public_key_line
from relpromote.policy import trusted_state
from relpromote.state import ProjectState

ROLES = {
    "alice": ["release_manager"],
    "oscar": ["operator"],
    "quinn": ["qa"],
    "carol": ["change_manager"],
    "bob": ["change_manager", "release_manager"],
}
CONFIG_TEXT = """
project: shop
promotion_path: [qa, deployment, production]
environments:
  qa: {inventory: i/qa, evidence: [smoke]}
  deployment: {inventory: i/deployment}
  production: {inventory: i/production, protected: true}
"""
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # a Thursday


def new_identity() -> Identity:
    key = Ed25519PrivateKey.generate()
    return Identity(key, public_key_line(key.public_key()))


@dataclass
class Ledger:
    path: Path
    identities: dict[str, Identity] = field(default_factory=lambda: {name: new_identity() for name in ROLES})

    def __post_init__(self) -> None:
        self.store = SqliteLedger(self.path)
        people = [Person(name=name, key=self.identities[name].public_key, roles=roles) for name, roles in ROLES.items()]
        self.config: Config = parse_config(CONFIG_TEXT, "relpromote.yml").model_copy(update={"people": people})

    def person(self, name: str) -> Person:
        return next(p for p in self.config.people if p.name == name)

    def append(self, kind: str, actor: str, payload: dict[str, Any]) -> None:
        self.store.append(kind, actor, self.identities[actor], payload)

    def state(self) -> ProjectState:
        return trusted_state(self.store.entries(), self.config)

    def build(self, version: str, actor: str = "alice") -> str:
        digest = hashlib.sha256(version.encode()).hexdigest()
        self.append(events.RELEASE_BUILT, actor, {
            "version": version, "digest": digest, "size": 1,
            "manifest": {"version": version, "changes": [{"id": "CH-1", "type": "fix", "title": "t", "owner": "dana", "why": "w", "how": "h"}]},
        })
        return digest

    def digest(self, version: str) -> str:
        return self.state().releases[version].digest

    def promote(self, version: str, environment: str, result: str = "succeeded", actor: str = "alice", **extra: Any) -> None:
        payload = {"version": version, "digest": self.digest(version), "environment": environment, "check": False, "result": result,
                   "limit": None, "evidence": [], "rollback": None, "verification_failed": False, "hosts": [], **extra}
        self.append(events.PROMOTION_FINISHED, actor, payload)

    def accept(self, version: str, environment: str) -> None:
        self.append(events.VERDICT_ACCEPTED, "quinn", {"version": version, "environment": environment, "evidence": [], "note": ""})

    def reject(self, version: str, environment: str, reason: str = "breaks export") -> None:
        self.append(events.VERDICT_REJECTED, "quinn", {"version": version, "environment": environment, "changes": [], "reason": reason})

    def rollback(self, environment: str, to: str, from_version: str | None, result: str = "succeeded", **extra: Any) -> None:
        payload = {"environment": environment, "version": to, "digest": self.digest(to), "from_version": from_version, "reason": "bad",
                   "automatic": False, "result": result, "hosts": [], "need_a_person": [], **extra}
        self.append(events.ROLLBACK_FINISHED, "alice", payload)

    def approve(self, version: str, environment: str, approver: str, expires_at: str, ticket: str = "CHG-1") -> None:
        self.append(events.APPROVAL_GRANTED, approver, {
            "version": version, "digest": self.digest(version), "environment": environment, "ticket": ticket, "expires_at": expires_at,
        })
