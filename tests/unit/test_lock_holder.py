"""relpromote/usecases/locking.py look_at_holder: what `lock release` and `status` can tell about a lock's process."""

from __future__ import annotations

import os
import socket
import subprocess

from relpromote.ledger import format_time, utc_now
from relpromote.lock import Lock
from relpromote.usecases.locking import look_at_holder


def lock(pid: int, since: str | None = None, machine: str | None = None) -> Lock:
    return Lock("qa", "abc123", "oscar", "promotion of 1.0.0", since or format_time(utc_now()), pid,
                f"oscar@{machine or socket.gethostname()}")


def test_a_running_holder_on_this_machine_is_alive() -> None:
    seen = look_at_holder(lock(os.getpid()))
    assert seen.alive is True and seen.seen.startswith(f"pid {os.getpid()} on {socket.gethostname()} is running (")


def test_a_holder_that_exited_is_gone() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    seen = look_at_holder(lock(child.pid))
    assert seen.alive is False and seen.seen == f"no process {child.pid} on {socket.gethostname()}"


def test_a_pid_reused_by_a_later_process_is_not_the_holder() -> None:
    seen = look_at_holder(lock(os.getpid(), since="2000-01-01T00:00:00Z"))
    assert seen.alive is False and "started after the lock was taken (pid reused)" in seen.seen


def test_a_holder_on_another_machine_is_not_looked_at() -> None:
    seen = look_at_holder(lock(1, machine="elsewhere.example"))
    assert seen.alive is None and "runs on elsewhere.example, not on this machine" in seen.seen
