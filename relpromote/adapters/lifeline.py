"""Binds an Ansible run's life to relpromote's: nothing of a run outlives the command that started it.

ansible-runner starts this instead of ansible-playbook (its `binary`):

    python -m relpromote.adapters.lifeline PARENT_PID PID_FILE -- ansible-playbook ARGS...

Ansible alone does not die with its caller: every worker calls setsid, so a signal to
ansible-playbook's process group misses them, and a killed ansible-playbook leaves its workers
(and the module processes under them) running to the end of their task. This process

- asks the kernel for SIGTERM when its parent (relpromote) dies, even by SIGKILL (PR_SET_PDEATHSIG);
- becomes a child subreaper (PR_SET_CHILD_SUBREAPER), so every process of the run whose parent
  dies is re-parented to it instead of to init, and can still be found;
- on SIGTERM/SIGINT/SIGHUP, on its parent's death, or when ansible-playbook is killed by a signal,
  ends the whole run: Ansible's own processes (ansible-playbook, its workers, their ssh clients)
  with SIGKILL at once, then the modules they started with SIGTERM (a module can drop what it was
  building) and SIGKILL after a grace period. Processes that made themselves session leaders on
  purpose (applications started by a restart hook, ssh's ControlPersist masters) are left alone.

Remote modules are not processes of this machine: they learn that their controller is gone when
the ssh client that reads their output is killed (their stdout's reader closes).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from types import FrameType

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
GRACE_SECONDS = 5.0  # modules get this long to drop what they were building before SIGKILL


def prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, session id) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == b"Z":
        return None
    return int(fields[1]), int(fields[3])


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def descendants(root: int) -> dict[int, tuple[int, int]]:
    """Every living process under `root`: pid -> (parent pid, session id)."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info is not None:
                table[int(entry)] = info
    found: dict[int, tuple[int, int]] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, sid) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = (ppid, sid)
                frontier.append(pid)
    return found


def _is_ansible(pid: int, playbook_cmdline: bytes) -> bool:
    """ansible-playbook itself, a worker (a fork of it: the same command line) or an ssh client a worker started."""
    command = _cmdline(pid)
    if playbook_cmdline and command == playbook_cmdline:
        return True
    program = os.path.basename(command.split(b"\0", 1)[0])
    return program == b"ssh" and b"[mux]" not in command


def _kill(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _reap(pids: list[int] | None = None) -> None:
    """Collect exited children: all of them, or only `pids` (relpromote must not reap ansible-runner's child)."""
    if pids is None:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        return
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def end_run(me: int, playbook_cmdline: bytes, reap_all: bool = True) -> None:
    """Stop every process of the run under `me` (see the module docstring for which)."""
    deadline = time.monotonic() + GRACE_SECONDS
    while True:
        tree = descendants(me)
        ansible = [pid for pid in tree if _is_ansible(pid, playbook_cmdline)]
        # Session leaders other than Ansible's own are daemons started on purpose; everything else is the run's.
        others = [pid for pid, (_, sid) in tree.items() if pid not in ansible and sid != pid]
        if not ansible and not others:
            return
        _kill(ansible, signal.SIGKILL)
        _kill(others, signal.SIGTERM if time.monotonic() < deadline else signal.SIGKILL)
        _reap(None if reap_all else ansible + others)
        time.sleep(0.05)


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[3] != "--":
        sys.stderr.write("usage: python -m relpromote.adapters.lifeline PARENT_PID PID_FILE -- COMMAND...\n")
        return 2
    parent, pid_file, command = int(argv[1]), argv[2], argv[4:]
    me = os.getpid()
    stop: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # relpromote died before the kernel was asked to tell us
        return 1
    with open(pid_file, "w", encoding="ascii") as handle:
        handle.write(str(me))
    playbook = subprocess.Popen(command)
    own_cmdline = _cmdline(me)
    playbook_cmdline = b""  # read once it has exec'd: its workers are forks that share it
    while True:
        if not playbook_cmdline:
            current = _cmdline(playbook.pid)
            playbook_cmdline = current if current != own_cmdline else b""
            if playbook_cmdline:  # for relpromote, should this process be killed in turn
                with open(pid_file + ".cmdline", "wb") as out:
                    out.write(playbook_cmdline)
        if stop or os.getppid() != parent:
            end_run(me, playbook_cmdline)
            return 128 + (stop[0] if stop else signal.SIGTERM)
        code = playbook.poll()
        if code is not None:
            if code < 0:  # ansible-playbook was killed: its workers and their modules would go on alone
                end_run(me, playbook_cmdline)
                return 128 - code
            # A normal end: only stray Ansible processes (none, unless a worker was killed) are stopped.
            _kill([pid for pid in descendants(me) if _is_ansible(pid, playbook_cmdline)], signal.SIGKILL)
            _reap()
            return code
        _reap()
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
