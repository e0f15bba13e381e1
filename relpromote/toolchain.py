"""The team's pinned toolchain (toolchain.yml) and how a machine is checked against it.

What a developer machine or shared development host must run: the OS family and version, Python,
ansible-core, Ansible collections, and the tools the team names, each with a version. `relpromote
doctor` checks the local machine; roles/toolchain_check runs the very same code on the hosts of a
`dev` inventory group (this file is its module_utils, through a link), so it imports nothing but the
standard library and must keep running on the Python of any host Ansible manages.

A wanted version is a prefix ("3.11" is met by 3.11.7, "2.19.14" only by 2.19.14), or comparisons
joined by commas (">=2.19,<2.21").
"""

from __future__ import annotations

import glob
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

TOOLCHAIN_FILE = "toolchain.yml"
_VERSION = re.compile(r"\d+(?:\.\d+)+|\d+")
_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([0-9][0-9A-Za-z.+-]*)\s*$")
DEFAULT_COLLECTION_PATHS = ("~/.ansible/collections", "/usr/share/ansible/collections")
VERSION_COMMANDS = {"ssh": "ssh -V", "java": "java -version"}  # tools whose version is not asked with --version


def version_command(name: str) -> str:
    return VERSION_COMMANDS.get(name, f"{name} --version")


class ToolchainError(ValueError):
    """The toolchain file says something that cannot be checked; the message names the key."""


@dataclass(frozen=True)
class Tool:
    name: str
    version: str
    command: str  # prints the version, e.g. "git --version"


@dataclass(frozen=True)
class Toolchain:
    os_family: str = ""
    os_version: str = ""
    python: str = ""
    ansible_core: str = ""
    collections: dict[str, str] = field(default_factory=dict)
    tools: tuple[Tool, ...] = ()


@dataclass(frozen=True)
class Check:
    name: str  # "python", "ansible-core", "collection ansible.posix", "tool git", ...
    want: str
    have: str  # "" when missing
    matches: bool
    fix: str  # what to change; "" when it matches

    def as_data(self) -> dict[str, Any]:
        return {"check": self.name, "want": self.want, "have": self.have or None, "matches": self.matches, "fix": self.fix or None}


def _text(value: Any, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ToolchainError(f"{key}: give a version as text, e.g. \"3.11\"")
    text = str(value).strip()
    if not text:
        raise ToolchainError(f"{key}: is empty; give a version")
    for part in text.split(","):
        if not (_COMPARISON.match(part) or re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", part.strip())):
            raise ToolchainError(f"{key}: {text!r} is not a version or comparison (\"2.19\", \">=2.19,<2.21\")")
    return text


def parse_toolchain(data: Any, source: str = TOOLCHAIN_FILE) -> Toolchain:
    """A toolchain from the file's mapping; ToolchainError names the key that is wrong."""
    if not isinstance(data, dict):
        raise ToolchainError(f"{source}: expected a mapping (os, python, ansible_core, collections, tools)")
    unknown = sorted(set(data) - {"os", "python", "ansible_core", "collections", "tools"})
    if unknown:
        raise ToolchainError(f"{source}: {unknown[0]}: unknown key; allowed: os, python, ansible_core, collections, tools")
    system = data.get("os") or {}
    if not isinstance(system, dict) or set(system) - {"family", "version"}:
        raise ToolchainError(f"{source}: os: give family and version, e.g. {{family: debian, version: \"12\"}}")
    tools = []
    for name, spec in (data.get("tools") or {}).items():
        if isinstance(spec, dict):
            if set(spec) - {"version", "command"} or "version" not in spec:
                raise ToolchainError(f"{source}: tools.{name}: give version (and optionally command)")
            tools.append(Tool(str(name), _text(spec["version"], f"{source}: tools.{name}.version"),
                              str(spec.get("command") or version_command(str(name)))))
        else:
            tools.append(Tool(str(name), _text(spec, f"{source}: tools.{name}"), version_command(str(name))))
    collections = data.get("collections") or {}
    if not isinstance(collections, dict):
        raise ToolchainError(f"{source}: collections: give a mapping of collection name to version")
    return Toolchain(
        os_family=str(system.get("family") or "").lower(),
        os_version=_text(system["version"], f"{source}: os.version") if system.get("version") is not None else "",
        python=_text(data["python"], f"{source}: python") if data.get("python") is not None else "",
        ansible_core=_text(data["ansible_core"], f"{source}: ansible_core") if data.get("ansible_core") is not None else "",
        collections={str(k): _text(v, f"{source}: collections.{k}") for k, v in collections.items()},
        tools=tuple(tools),
    )


def _parts(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+")[0]))


def version_matches(have: str, want: str) -> bool:
    """`have` meets `want`: a prefix of dotted parts, or every comparison of a comma-separated list."""
    if not have:
        return False
    for part in want.split(","):
        found = _COMPARISON.match(part)
        if found is None:
            prefix = part.strip().split(".")
            if have.split(".")[: len(prefix)] != prefix:
                return False
            continue
        op, wanted = found.groups()
        a, b = _parts(have), _parts(wanted)
        width = max(len(a), len(b))
        a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
        ok = {">=": a >= b, "<=": a <= b, "==": a == b, "!=": a != b, ">": a > b, "<": a < b}[op]
        if not ok:
            return False
    return True


def pip_spec(want: str) -> str:
    """How pip names the wanted version: a prefix becomes ==X.* (or ==X when it is a full version)."""
    if _COMPARISON.match(want.split(",")[0]):
        return want.replace(" ", "")
    return f"=={want}" if want.count(".") >= 2 else f"=={want}.*"


# ---- probes: what this machine (or host) has ----

def os_release(path: str = "/etc/os-release") -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        with open(path) as handle:
            for line in handle:
                key, sep, value = line.strip().partition("=")
                if sep:
                    fields[key] = value.strip().strip('"')
    except OSError:
        pass
    return fields


def ansible_core_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return ""
    try:
        return version("ansible-core")
    except PackageNotFoundError:
        return ""


def collection_versions(paths: list[str] | None = None) -> dict[str, str]:
    """Installed collections (namespace.name -> version), the first found along the search path winning, as Ansible does."""
    configured = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS")
    roots = list(paths) if paths is not None else (configured.split(os.pathsep) if configured else list(DEFAULT_COLLECTION_PATHS))
    roots += [p for p in sys.path if p and os.path.isdir(os.path.join(p, "ansible_collections"))]
    found: dict[str, str] = {}
    for root in roots:
        base = os.path.expanduser(root)
        base = base if os.path.basename(base.rstrip("/")) == "ansible_collections" else os.path.join(base, "ansible_collections")
        for manifest in sorted(glob.glob(os.path.join(base, "*", "*", "MANIFEST.json"))):
            try:
                with open(manifest) as handle:
                    info = json.load(handle)["collection_info"]
                found.setdefault(f"{info['namespace']}.{info['name']}", str(info["version"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return found


def command_version(command: str) -> tuple[str, str]:
    """(version, problem): the first version-looking word a command prints, or why there is none."""
    try:
        argv = shlex.split(command)
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return "", "not installed"
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        return "", f"cannot run `{command}` ({type(exc).__name__})"
    output = f"{result.stdout}\n{result.stderr}"
    if result.returncode != 0:
        return "", f"`{command}` exited {result.returncode}"
    # "git version 2.39.5", "OpenSSH_9.2p1 Debian-2", "molecule 26.1.0 using python 3.11": the first version wins
    found = _VERSION.search(output)
    return (found.group(0), "") if found else ("", f"`{command}` printed no version")


@dataclass(frozen=True)
class Machine:
    """What a machine has, for the checks to compare."""

    os_id: str
    os_like: tuple[str, ...]
    os_version: str
    python: str
    ansible_core: str
    collections: dict[str, str]
    tools: dict[str, tuple[str, str]]  # name -> (version, problem)


def probe(toolchain: Toolchain, collection_paths: list[str] | None = None) -> Machine:
    release = os_release()
    return Machine(
        os_id=release.get("ID", platform.system().lower()),
        os_like=tuple(release.get("ID_LIKE", "").split()),
        os_version=release.get("VERSION_ID", ""),
        python=platform.python_version(),
        ansible_core=ansible_core_version(),
        collections=collection_versions(collection_paths) if toolchain.collections else {},
        tools={tool.name: command_version(tool.command) for tool in toolchain.tools},
    )


# ---- the checks: pure ----

def check_machine(toolchain: Toolchain, machine: Machine) -> list[Check]:
    checks: list[Check] = []
    if toolchain.os_family:
        have = machine.os_id
        ok = toolchain.os_family in (machine.os_id, *machine.os_like)
        checks.append(Check("os family", toolchain.os_family, have, ok,
                            "" if ok else f"this machine runs {have or 'an unknown OS'}; use a {toolchain.os_family} machine or VM"))
    if toolchain.os_version:
        ok = version_matches(machine.os_version, toolchain.os_version)
        checks.append(Check("os version", toolchain.os_version, machine.os_version, ok,
                            "" if ok else f"upgrade or reinstall to {toolchain.os_family or machine.os_id} {toolchain.os_version}"))
    if toolchain.python:
        ok = version_matches(machine.python, toolchain.python)
        checks.append(Check("python", toolchain.python, machine.python, ok, "" if ok else (
            f"run relpromote with Python {toolchain.python}: install it (e.g. `pyenv install {toolchain.python}`) "
            f"and recreate the virtualenv with it")))
    if toolchain.ansible_core:
        ok = version_matches(machine.ansible_core, toolchain.ansible_core)
        checks.append(Check("ansible-core", toolchain.ansible_core, machine.ansible_core, ok,
                            "" if ok else f"pip install 'ansible-core{pip_spec(toolchain.ansible_core)}' (in relpromote's virtualenv)"))
    for name, want in sorted(toolchain.collections.items()):
        have = machine.collections.get(name, "")
        ok = version_matches(have, want)
        checks.append(Check(f"collection {name}", want, have, ok,
                            "" if ok else f"ansible-galaxy collection install '{name}:{pip_spec(want)}' --force"))
    for tool in toolchain.tools:
        have, problem = machine.tools.get(tool.name, ("", "not checked"))
        ok = version_matches(have, tool.version)
        if ok:
            fix = ""
        elif problem:
            fix = f"{tool.name}: {problem}; install {tool.name} {tool.version}"
        else:
            fix = f"install {tool.name} {tool.version} (`{tool.command}` says {have})"
        checks.append(Check(f"tool {tool.name}", tool.version, have, ok, fix))
    return checks


def pin(machine: Machine, tools: dict[str, str] | None = None) -> dict[str, Any]:
    """A toolchain file's content pinned to `machine` (major.minor for Python, exact for ansible-core)."""
    data: dict[str, Any] = {
        "os": {"family": machine.os_id, "version": machine.os_version},
        "python": ".".join(machine.python.split(".")[:2]),
        "ansible_core": machine.ansible_core,
    }
    if machine.collections:
        data["collections"] = dict(sorted(machine.collections.items()))
    if tools:
        data["tools"] = dict(tools)
    return data
