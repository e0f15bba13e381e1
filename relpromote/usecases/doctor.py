"""`doctor`: this machine against the project's pinned toolchain (toolchain.yml), and what relpromote itself
needs here (git, ssh, ansible-core, ansible-playbook, the vault password sources, the identity key), each
failing check with the change that fixes it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from relpromote.adapters.files import read_named_file
from relpromote.adapters.secrets import check_source
from relpromote.config import Config
from relpromote.errors import BadInput
from relpromote.toolchain import (
    TOOLCHAIN_FILE,
    Check,
    Machine,
    ToolchainError,
    check_machine,
    command_version,
    parse_toolchain,
    pin,
    probe,
    version_command,
    version_matches,
)

NEEDED_ANSIBLE_CORE = ">=2.19"  # pyproject's dependency: relpromote's runs need it
PIN_HEADER = ("# The toolchain every developer machine and shared development host runs: `relpromote doctor` checks this\n"
              "# machine against it, roles/toolchain_check the hosts of a `dev` group. Versions are prefixes (\"3.11\")\n"
              "# or comparisons (\">=2.19,<2.21\"); tools: NAME: VERSION, or NAME: {version: V, command: \"NAME --version\"}.\n")


@dataclass(frozen=True)
class DoctorReport:
    toolchain_file: Path
    checks: tuple[Check, ...]
    pinned: bool = False  # the file was written from this machine first

    @property
    def matches(self) -> bool:
        return all(check.matches for check in self.checks)

    def mismatches(self) -> list[Check]:
        return [check for check in self.checks if not check.matches]

    def summary(self) -> str:
        wrong = self.mismatches()
        if not wrong:
            return f"this machine matches {self.toolchain_file} and has what relpromote needs ({len(self.checks)} checks)"
        return f"{len(wrong)} of {len(self.checks)} checks failed against {self.toolchain_file} and relpromote's needs: " + "; ".join(
            f"{check.name}: {check.fix}" for check in wrong)

    def as_data(self) -> dict[str, Any]:
        return {"toolchain_file": str(self.toolchain_file), "matches": self.matches, "pinned": self.pinned,
                "checks": [check.as_data() for check in self.checks]}


def toolchain_path(explicit: str | None, project_root: Path | None, start: Path) -> Path:
    """--file, else toolchain.yml beside the project's config, else in the working directory or the nearest folder above."""
    if explicit:
        return Path(explicit)
    if project_root is not None:
        return project_root / TOOLCHAIN_FILE
    for folder in (start, *start.parents):
        if (folder / TOOLCHAIN_FILE).is_file():
            return folder / TOOLCHAIN_FILE
    return start / TOOLCHAIN_FILE


def read_toolchain(path: Path) -> Any:
    try:
        text = read_named_file(path, 1 << 20).decode("utf-8")  # a pipe or a device must not hang
    except FileNotFoundError:
        raise BadInput(f"{path}: no toolchain file; pin this machine's with `relpromote doctor --pin` (then review and commit it), "
                       "or pass --file FILE") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the toolchain file ({exc})") from None
    try:
        return parse_toolchain(yaml.safe_load(text), str(path))
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    except ToolchainError as exc:
        raise BadInput(str(exc)) from None


def relpromote_needs(machine: Machine, config: Config | None, identity: Path) -> list[Check]:
    """What relpromote itself needs on this machine, whatever the team pinned."""
    checks = []
    for name, command, package in (("git", "git --version", "git"), ("ssh", "ssh -V", "openssh-client")):
        have, problem = command_version(command)
        checks.append(Check(f"relpromote needs {name}", "installed", have, bool(have),
                            "" if have else f"{name}: {problem}; install it (apt-get install {package}, or dnf install {package})"))
    ok = version_matches(machine.ansible_core, NEEDED_ANSIBLE_CORE)
    checks.append(Check("relpromote needs ansible-core", NEEDED_ANSIBLE_CORE, machine.ansible_core, ok,
                        "" if ok else f"pip install 'ansible-core{NEEDED_ANSIBLE_CORE}' in relpromote's virtualenv ({sys.prefix})"))
    beside = Path(sys.executable).parent / "ansible-playbook"
    playbook = str(beside) if beside.exists() else shutil.which("ansible-playbook") or ""
    checks.append(Check("relpromote needs ansible-playbook", "on PATH or beside relpromote", playbook, bool(playbook),
                        "" if playbook else "ansible-playbook is missing: reinstall relpromote with its dependencies (pip install relpromote)"))
    for name, env in (config.environments.items() if config else ()):
        if env.vault is None:
            continue
        source = env.vault.password
        where = source.file or source.command or ""
        try:
            check_source(source, f"vault {env.vault.id} of {name}")
            fix = ""
            if source.command and shutil.which(shlex.split(source.command)[0]) is None:
                fix = f"vault {env.vault.id} of {name}: `{shlex.split(source.command)[0]}` is not installed; install it or fix the command"
        except BadInput as problem:
            fix = problem.message
        checks.append(Check(f"vault password of {name}", "your own 0600 file, or a command that runs", "" if fix else where, not fix, fix))
    checks.append(identity_check(identity))
    return checks


def identity_check(path: Path) -> Check:
    want = "your key, unreadable by others"
    try:
        info = path.stat()
        head = path.read_bytes()[:64]
    except FileNotFoundError:
        return Check("identity key", want, "", False, f"{path} does not exist; create it with `relpromote keygen NAME --out {path}` "
                     "(or pass --identity / set RELPROMOTE_IDENTITY)")
    except OSError as exc:
        return Check("identity key", want, "", False, f"{path} cannot be read ({exc.strerror}); fix its owner and mode")
    if head.startswith((b"ssh-ed25519 ", b"sk-ssh-ed25519@openssh.com ")):
        return Check("identity key", want, f"{path} (public key: the private half in ssh-agent)", True, "")
    if info.st_uid != os.geteuid():
        return Check("identity key", want, f"{path} owned by uid {info.st_uid}", False, f"use a key of your own; {path} is someone else's")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return Check("identity key", want, f"{path} mode {stat.S_IMODE(info.st_mode):04o}", False, f"chmod 600 {path}")
    return Check("identity key", want, f"{path} mode {stat.S_IMODE(info.st_mode):04o}", True, "")


def doctor(toolchain_file: Path, config: Config | None, identity: Path, write_pin: bool = False,
           collection_paths: list[str] | None = None) -> DoctorReport:
    """Check this machine; with `write_pin`, first write a toolchain file pinned to it (never over one that pins anything else)."""
    pinned = False
    if write_pin:
        machine = probe(parse_toolchain({"collections": {"_": "0"}}), collection_paths)
        tools = {name: version for name in ("git", "ssh") if (version := command_version(version_command(name))[0])}
        text = PIN_HEADER + yaml.safe_dump(pin(machine, tools), sort_keys=False)
        if not toolchain_file.exists():
            toolchain_file.write_text(text)
            pinned = True
        elif toolchain_file.read_text(encoding="utf-8", errors="replace") != text:
            raise BadInput(f"{toolchain_file}: already exists and pins something else than this machine; edit it, "
                           "or remove it to pin this machine")
    toolchain = read_toolchain(toolchain_file)
    machine = probe(toolchain, collection_paths)
    checks = check_machine(toolchain, machine) + relpromote_needs(machine, config, identity)
    return DoctorReport(toolchain_file, tuple(checks), pinned)
