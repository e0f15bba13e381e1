"""Environment locks: one run per environment at a time, never silently expiring while their run lives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from relpromote.errors import Busy


@dataclass(frozen=True)
class Lock:
    environment: str
    lock_id: str
    holder: str
    purpose: str
    since: str
    pid: int
    hostname: str  # login@host of the run (relpromote.usecases.locking)
    # Whether the holder's run still holds it, when the store can tell (PostgreSQL: the holder's session-level
    # advisory lock, gone with its connection); None when it cannot (SQLite).
    alive: bool | None = field(default=None, compare=False)

    def as_data(self) -> dict[str, Any]:
        return {
            "environment": self.environment, "lock_id": self.lock_id, "holder": self.holder, "purpose": self.purpose,
            "since": self.since, "pid": self.pid, "hostname": self.hostname,
            **({} if self.alive is None else {"holder_alive": self.alive}),
        }

    def busy(self) -> Busy:
        return Busy(
            f"{self.environment} is locked by {self.holder} ({self.purpose}) since {self.since[:19]}Z, lock id {self.lock_id}, "
            f"pid {self.pid} on {self.hostname}; "
            + ("its database session is gone (the run crashed): " if self.alive is False else "wait for it, or if that run crashed: ")
            + f"relpromote lock release --env {self.environment} --lock-id {self.lock_id}",
            detail={"lock": self.as_data()},
        )
