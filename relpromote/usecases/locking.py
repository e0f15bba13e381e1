"""Take, inspect and (after a crash) release an environment's lock."""

from __future__ import annotations

import os
import pwd
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from relpromote import events
from relpromote.config import Person
from relpromote.errors import BadInput
from relpromote.identity import Identity
from relpromote.ledger import Entry, format_time, utc_now
from relpromote.lock import Lock
from relpromote.policy import require_role
from relpromote.project import Project


@contextmanager
def environment_lock(project: Project, environment: str, holder: str, purpose: str) -> Iterator[Lock]:
    """Hold the environment for this run; released on any exit this process lives to see."""
    # The person (holder) and the login that runs it, as login@host: on a shared jump host several logins may act for one person.
    where = f"{_login()}@{socket.gethostname()}"
    wanted = Lock(environment, uuid.uuid4().hex[:12], holder, purpose, format_time(utc_now()), os.getpid(), where)
    got = project.ledger.acquire(wanted)
    if got.lock_id != wanted.lock_id:
        raise got.busy()
    try:
        yield wanted
    finally:
        project.ledger.release(environment, wanted.lock_id)


def _login() -> str:
    """The login of the process's real user, from the system (not from $USER, which anyone may set)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid {os.getuid()}"


def lock_status(project: Project, environment: str) -> Lock | None:
    project.config.environment(environment)
    return project.ledger.current(environment)


def release_lock(project: Project, identity: Identity, actor: Person, environment: str, lock_id: str, reason: str) -> Lock:
    project.config.environment(environment)
    require_role(project.config, actor, "lock_release", environment)
    held = project.ledger.current(environment)
    if held is None:
        raise BadInput(f"{environment} is not locked; nothing to release")
    if held.lock_id != lock_id:
        raise BadInput(f"{environment} is locked under id {held.lock_id}, not {lock_id}; check `relpromote lock status --env {environment}`")

    def still_held(entries: list[Entry]) -> None:
        # Inside the append's transaction: of two releases of one lock, one is recorded.
        now_held = project.ledger.current(environment)
        released = any(e.kind == events.LOCK_RELEASED and (e.payload.get("lock") or {}).get("lock_id") == lock_id for e in entries)
        if now_held is None or now_held.lock_id != lock_id or released:
            raise BadInput(f"lock {lock_id} of {environment} was released meanwhile; check `relpromote lock status {environment}`")

    project.ledger.append(
        events.LOCK_RELEASED, actor.name, identity, {"environment": environment, "lock": held.as_data(), "reason": reason}, still_held
    )
    project.ledger.release(environment, lock_id)
    return held
