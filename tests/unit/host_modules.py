"""Run the roles' host-side Ansible modules in this process, as Ansible runs them on a host.

A module file is loaded from its role by path (the shared `module_utils` registered under
`ansible.module_utils`, as AnsiballZ ships them), its arguments handed over the way Ansible hands
them (the JSON document with ANSIBLE_MODULE_ARGS, check mode included), and its one JSON result
read back from what it printed. Nothing is mocked: the module does its real file work.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import ansible.module_utils
from ansible.module_utils import basic

REPO = Path(__file__).resolve().parents[2]


def load(relative: str) -> ModuleType:
    """The module file `relative` (to the repository), with its role's module_utils importable."""
    path = REPO / relative
    role = path.parent.parent
    utils = role / "module_utils"
    if utils.is_dir():
        for util in sorted(utils.glob("*.py")):
            name = f"ansible.module_utils.{util.stem}"
            spec = importlib.util.spec_from_file_location(name, util)
            assert spec and spec.loader
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[name] = loaded
            spec.loader.exec_module(loaded)
            setattr(ansible.module_utils, util.stem, loaded)
    name = f"host_{role.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Outcome:
    failed: bool
    result: dict[str, Any]

    @property
    def msg(self) -> str:
        return str(self.result.get("msg", ""))

    def __getitem__(self, key: str) -> Any:
        return self.result[key]


def run(module: ModuleType, args: dict[str, Any], check: bool = False) -> Outcome:
    """main() of `module` with `args`, as Ansible calls it; its JSON result."""
    document = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check, "_ansible_no_log": False}}
    basic._ANSIBLE_ARGS = json.dumps(document).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            module.main()
    finally:
        basic._ANSIBLE_ARGS = None
        basic._ANSIBLE_PROFILE = None
    lines = [line for line in out.getvalue().splitlines() if line.strip().startswith("{")]
    assert lines, f"the module printed no result: {out.getvalue()!r}"
    result = json.loads(lines[-1])
    return Outcome(bool(result.get("failed")), result)


@dataclass
class Member:
    """One tar member a test puts in an artifact: name, type and (for files) data or (for links) target."""

    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    linkname: str = ""
    mode: int = 0o644


def file(name: str, data: bytes = b"x", mode: int = 0o644) -> Member:
    return Member(name, tarfile.REGTYPE, data, mode=mode)


def directory(name: str) -> Member:
    return Member(name, tarfile.DIRTYPE, mode=0o755)


def symlink(name: str, target: str) -> Member:
    return Member(name, tarfile.SYMTYPE, linkname=target, mode=0o777)


def release_members(version: str = "1.0.0") -> list[Member]:
    """What relpromote's own builder puts in an artifact (a root, the app, .release/VERSION)."""
    return [
        directory("."),
        directory("bin"),
        file("bin/restart", b"#!/bin/sh\nexit 0\n", 0o755),
        file("app.py", b"print('hi')\n"),
        directory(".release"),
        file(".release/VERSION", version.encode() + b"\n"),
    ]


def make_tar(path: Path, members: list[Member]) -> str:
    """Write a tar.gz of `members` at `path`; its sha256."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = member.type
            info.mode = member.mode
            info.mtime = int(time.time())
            info.linkname = member.linkname
            if member.type == tarfile.REGTYPE:
                info.size = len(member.data)
                tar.addfile(info, io.BytesIO(member.data))
            else:
                tar.addfile(info)
    return hashlib.sha256(path.read_bytes()).hexdigest()
