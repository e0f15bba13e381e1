"""Environment locks: one run per environment at a time, never silently expiring while their run lives."""

from __future__ import annotations

from dataclasses import dataclass
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

    def as_data(self) -> dict[str, Any]:
        return {
            "environment": self.environment, "lock_id": self.lock_id, "holder": self.holder, "purpose": self.purpose,
            "since": self.since, "pid": self.pid, "hostname": self.hostname,
        }

    def busy(self) -> Busy:
        return Busy(
            f"{self.environment} is locked by {self.holder} ({self.purpose}) since {self.since[:19]}Z, lock id {self.lock_id}, "
            f"pid {self.pid} on {self.hostname}; wait for it, or if that run crashed: "
            f"relpromote lock release --env {self.environment} --lock-id {self.lock_id}",
            detail={"lock": self.as_data()},
        )
