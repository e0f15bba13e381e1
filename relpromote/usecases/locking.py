"""Take, inspect and (after a crash) release an environment's lock."""

from __future__ import annotations

import os
import pwd
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relpromote import events
from relpromote.errors import BadInput, Busy
from relpromote.identity import Identity
from relpromote.ledger import Entry, format_time, utc_now
from relpromote.lock import Lock

if TYPE_CHECKING:  # `status` looks at locks without loading the config's schema or the gates
    from relpromote.adapters.runner import EventHandler
    from relpromote.adapters.vault import VaultAccess
    from relpromote.config import Person
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


def release_lock(
    project: Project, identity: Identity, actor: Person, environment: str, lock_id: str, reason: str | None, force: bool = False
) -> tuple[Lock, Sighting]:
    """Release a lock whose run is gone. Refused while its process runs on this machine, unless forced with a reason; the
    ledger records what was seen of that process, and the reason only when a person gave one."""
    from relpromote.manifest import typed_text
    from relpromote.policy import require_role

    project.config.environment(environment)
    require_role(project.config, actor, "lock_release", environment)
    reason = (reason or "").strip() or None
    if force and not reason:
        raise BadInput("--force needs --reason: say why a lock whose run may still be alive is released")
    typed_text("--reason", reason or "")  # shown to people at terminals (history): no escape sequence may rewrite it
    held = project.ledger.current(environment)
    if held is None:
        raise BadInput(f"{environment} is not locked; nothing to release")
    if held.lock_id != lock_id:
        raise BadInput(f"{environment} is locked under id {held.lock_id}, not {lock_id}; check `relpromote lock status --env {environment}`")
    seen = look_at_holder(held)
    if seen.alive and not force:
        raise Busy(f"{environment}'s lock {lock_id} is held by a run that is still alive ({seen.seen}); wait for it, or stop it "
                   f"(it rolls back and releases the lock), or if it hangs: --force --reason TEXT", detail={"lock": held.as_data()})

    def still_held(entries: list[Entry]) -> None:
        # Inside the append's transaction: of two releases of one lock, one is recorded.
        now_held = project.ledger.current(environment)
        released = any(e.kind == events.LOCK_RELEASED and (e.payload.get("lock") or {}).get("lock_id") == lock_id for e in entries)
        if now_held is None or now_held.lock_id != lock_id or released:
            raise BadInput(f"lock {lock_id} of {environment} was released meanwhile; check `relpromote lock status {environment}`")

    project.ledger.append(
        events.LOCK_RELEASED, actor.name, identity,
        {"environment": environment, "lock": held.as_data(), "reason": reason, "seen": seen.seen, "holder_alive": seen.alive,
         "forced": force},
        still_held,
    )
    project.ledger.release(environment, lock_id)
    return held, seen


HOST_UNLOCK_PLAYBOOK = "playbooks/host_unlock.yml"
# Entries whose runs hold the environment's lock while they run: once this process holds it, each is over.
_RUN_ENTRY_KINDS = (events.PROMOTION_STARTED, events.PROMOTION_FINISHED, events.ROLLBACK_STARTED, events.ROLLBACK_FINISHED,
                    events.LOCK_RELEASED)


@dataclass(frozen=True)
class Sighting:
    """What this machine can tell about the process that holds a lock: `alive` is None when it runs elsewhere."""

    alive: bool | None
    seen: str  # one line, recorded as is: what was looked at and what was found

    def as_data(self) -> dict[str, Any]:
        return {"alive": self.alive, "seen": self.seen}


def look_at_holder(lock: Lock) -> Sighting:
    """Whether the lock's process still runs: only a process of this machine can be looked at, and a pid
    reused by a process started after the lock was taken is not the holder."""
    if lock.alive is not None:  # the store can tell from any machine (PostgreSQL: the holder's session-level advisory lock)
        return Sighting(lock.alive, f"the database session of pid {lock.pid} on {lock.hostname} "
                                    + ("still holds the lock" if lock.alive else "is gone: the lock is stale"))
    machine = lock.hostname.rsplit("@", 1)[-1]
    here = socket.gethostname()
    if machine != here:
        return Sighting(None, f"pid {lock.pid} runs on {machine}, not on this machine ({here}): not looked at")
    started = _process_start(lock.pid)
    if started is None:
        return Sighting(False, f"no process {lock.pid} on {here}")
    if started > _taken_at(lock.since) + 2:
        return Sighting(False, f"pid {lock.pid} on {here} is a process started after the lock was taken (pid reused)")
    return Sighting(True, f"pid {lock.pid} on {here} is running ({_command(lock.pid)})")


def _taken_at(since: str) -> float:
    """When the lock was taken (epoch seconds); the distant future when its time cannot be read (no reuse is assumed)."""
    try:
        return datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("inf")


def _process_start(pid: int) -> float | None:
    """When `pid` started (epoch seconds), None when there is no such living process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _command(pid: int) -> str:
    try:
        return " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")).strip()[:120] or "?"
    except OSError:
        return "?"


def host_run(project: Project, lock: Lock, purpose: str) -> dict[str, Any]:
    """Extravars that make the run's host leases (roles/release_deploy/library/release_lock.py) this run's:
    the run as the hosts report it to a second run, and the runs of this ledger whose leases may be broken."""
    over: list[str] = []
    for entry in reversed(project.ledger.entries(_RUN_ENTRY_KINDS)):
        if entry.payload.get("environment") != lock.environment:
            continue
        lock_id = entry.payload.get("lock_id") or (entry.payload.get("lock") or {}).get("lock_id")
        if isinstance(lock_id, str) and lock_id and lock_id != lock.lock_id and lock_id not in over:
            over.append(lock_id)
        if len(over) >= 20:
            break
    return {
        "relpromote_run": {"id": lock.lock_id, "project": project.config.project, "person": lock.holder,
                           "controller": lock.hostname, "pid": lock.pid, "purpose": purpose, "started": lock.since},
        "relpromote_lock_breakable": over,
    }


def unlock_hosts(project: Project, environment: str, run: dict[str, Any], access: VaultAccess, on_event: EventHandler | None) -> list[str]:
    """Give back this run's leases on every host of the environment (after a run that could not); the hosts that
    could not be reached keep theirs until it expires. Never cancelled: a signal must not leave hosts locked."""
    env = project.config.environment(environment)
    extravars = {"relpromote_environment": environment, "relpromote_hosts": env.hosts, **run}
    # Imported here: `status` reads locks at every start and must not pay for Ansible's run machinery.
    from relpromote.adapters.runner import run_playbook
    from relpromote.usecases.runs import environment_run

    result = run_playbook(environment_run(project, environment, HOST_UNLOCK_PLAYBOOK, f"unlock-{environment}", extravars, access),
                          on_event=on_event)
    return sorted(host for host, outcome in result.hosts.items() if not outcome.succeeded)


def runs_in_doubt(project: Project, environment: str, in_doubt: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The environment's runs without a recorded end, each marked `running` while it holds the environment's lock from a
    process that lives (or runs on another machine), else `in doubt`."""
    held = project.ledger.current(environment)
    runs = []
    for lock_id, run in in_doubt.items():
        alive = look_at_holder(held).alive if held is not None and held.lock_id == lock_id else False
        runs.append({**run, "state": "in doubt" if alive is False else "running"})
    return runs
