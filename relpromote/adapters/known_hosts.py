"""Pinned SSH host keys: each environment's `inventories/ENV/known_hosts`, used by every run against it.

Owns where the file is, how a run is pointed at it (strict checking, no other file), how keys are fetched for a
person to confirm (ssh-keyscan, fingerprints by ssh-keygen), how the file is rewritten, and how ssh's refusal of an
unknown or changed key becomes one line naming the host and the fingerprints.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from relpromote.errors import BadInput
from relpromote.inventory import host_variables

FILE = "known_hosts"
KEY_TYPES = "ed25519,ecdsa,rsa"


def known_hosts_file(inventory: Path) -> Path:
    return (inventory if inventory.is_dir() else inventory.parent) / FILE


def ssh_envvars(inventory: Path) -> dict[str, str]:
    """What makes a run check host keys against the environment's file only, strictly. An inventory that sets its own
    `ansible_ssh_common_args` (the test harness; a jump host) manages host keys itself, explicitly."""
    path = known_hosts_file(inventory)
    return {
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_COMMON_ARGS": (f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={shlex.quote(str(path))} "
                                    "-o GlobalKnownHostsFile=/dev/null"),
    }


def host_pattern(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


@dataclass(frozen=True)
class HostKey:
    line: str  # as known_hosts holds it: "PATTERN TYPE BASE64"
    type: str
    fingerprint: str  # SHA256:...

    def as_data(self) -> dict[str, str]:
        return {"type": self.type, "fingerprint": self.fingerprint}


def fingerprints(lines: list[str]) -> list[HostKey]:
    """Each known_hosts line with its key type and SHA256 fingerprint (ssh-keygen -l)."""
    keys = []
    for line in lines:
        done = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", "-"], input=line + "\n", capture_output=True,
                              text=True, timeout=30)
        if done.returncode != 0 or not done.stdout.strip():
            continue
        # "256 SHA256:abc... [host]:22 (ED25519)"
        parts = done.stdout.split()
        keys.append(HostKey(line, line.split()[1], parts[1]))
    return keys


def keyscan(address: str, port: int, timeout: int = 5) -> list[HostKey]:
    """The keys the host presents now (ssh-keyscan), with their fingerprints."""
    try:
        done = subprocess.run(["ssh-keyscan", "-T", str(timeout), "-p", str(port), "-t", KEY_TYPES, address],
                              capture_output=True, text=True, timeout=timeout * 4 + 5)
    except FileNotFoundError:
        raise BadInput("ssh-keyscan is not installed (openssh-client): it fetches the hosts' keys") from None
    except subprocess.TimeoutExpired:
        return []
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip() and not line.startswith("#")]
    return fingerprints(lines)


def known_lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    except FileNotFoundError:
        return []


def keys_for(lines: list[str], pattern: str) -> list[str]:
    return [line for line in lines if pattern in line.split()[0].split(",")]


def rewrite(path: Path, trusted: dict[str, list[str]]) -> None:
    """Replace the lines of each pattern in `trusted` with its new lines, keep every other line; atomically."""
    kept = [line for line in known_lines(path) if not any(p in line.split()[0].split(",") for p in trusted)]
    lines = kept + [line for lines in trusted.values() for line in lines]
    header = "# Host keys of this environment, pinned by `relpromote hosts trust`; every run checks them strictly.\n"
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".known_hosts.")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(header + "".join(f"{line}\n" for line in lines))
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


CHANGED = re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED")
PRESENTED = re.compile(r"fingerprint for the (\S+) key sent by the remote host is\s*(SHA256:\S+?)\.?(?:\s|$)")
OFFENDING = re.compile(r"Offending \S+ key in (\S+):(\d+)")
UNKNOWN = re.compile(r"No (\S+) host key is known for (\S+) and you have requested strict checking")


def host_key_problem(message: str, environment: str | None = None) -> str | None:
    """ssh's refusal of a host key, as one line naming the fingerprints and what to do; None for other failures."""
    text = " ".join(message.split())
    if CHANGED.search(text):
        presented = PRESENTED.search(text)
        offending = OFFENDING.search(text)
        pinned = "another key"
        if offending:
            try:
                raw = Path(offending.group(1)).read_text().splitlines()
            except OSError:
                raw = []
            number = int(offending.group(2))
            keys = fingerprints([raw[number - 1].strip()]) if 0 < number <= len(raw) else []
            if keys:
                pinned = f"{keys[0].fingerprint} ({keys[0].type}, {offending.group(1)} line {number})"
        now = f"{presented.group(2)} ({presented.group(1)})" if presented else "another key"
        return _changed(now, pinned, environment)
    unknown = UNKNOWN.search(text)
    if unknown:
        return _unpinned(unknown.group(2), environment)
    if "Host key verification failed" in text:
        return f"host key verification failed; nothing was done on it. Check and pin the host's key: {_fix(environment)}"
    return None


def key_problem_of(inventory: Path, host: str, environment: str | None = None) -> str | None:
    """Whether the key `host` presents now is refused by the environment's known_hosts, asked of the host itself.

    For a run that lost the host before ssh could say why: when ssh refuses a key it exits at once, and Ansible,
    still writing the module to it, may only report a broken pipe. None when the key is pinned, the host
    cannot be asked, or its inventory manages host keys itself (`ansible_ssh_common_args`)."""
    path = known_hosts_file(inventory)
    pinned_lines = known_lines(path)
    if not pinned_lines:
        return None
    try:
        variables = host_variables(inventory, host)
    except BadInput:
        return None
    if variables.get("ansible_ssh_common_args"):
        return None
    address = str(variables.get("ansible_host") or host)
    try:
        port = int(variables.get("ansible_port") or 22)
    except (TypeError, ValueError):
        return None
    pattern = host_pattern(address, port)
    presented = keyscan(address, port, timeout=3)
    if not presented:
        return None
    pinned = fingerprints(keys_for(pinned_lines, pattern))
    if not pinned:
        return _unpinned(pattern, environment)
    if {key.fingerprint for key in presented} & {key.fingerprint for key in pinned}:
        return None
    now, before = presented[0], pinned[0]
    return _changed(f"{now.fingerprint} ({now.type})", f"{before.fingerprint} ({before.type}, {path})", environment)


def _fix(environment: str | None) -> str:
    return f"relpromote hosts trust --env {environment}" if environment else "relpromote hosts trust --env ENV"


def _changed(now: str, pinned: str, environment: str | None) -> str:
    return (f"host key CHANGED: the host presented {now}, the environment's known_hosts pins {pinned}; "
            f"nothing was done on it. If the change is expected (the host was reinstalled), confirm the new key: "
            f"{_fix(environment)}")


def _unpinned(pattern: str, environment: str | None) -> str:
    return (f"host key of {pattern} is not pinned in the environment's known_hosts; nothing was done on it. "
            f"Check and pin its key: {_fix(environment)}")
