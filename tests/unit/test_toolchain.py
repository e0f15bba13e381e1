"""relpromote.toolchain: the toolchain file, version matching, the checks and what they tell a developer to change."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from relpromote.toolchain import (
    Machine,
    ToolchainError,
    check_machine,
    collection_versions,
    command_version,
    parse_toolchain,
    pin,
    pip_spec,
    version_matches,
)

MACHINE = Machine(os_id="ubuntu", os_like=("debian",), os_version="22.04", python="3.11.7", ansible_core="2.19.14",
                  collections={"ansible.posix": "1.5.4"}, tools={"git": ("2.39.5", ""), "molecule": ("", "not installed")})


@pytest.mark.parametrize(("have", "want", "ok"), [
    ("3.11.7", "3.11", True), ("3.11.7", "3.1", False), ("3.12.1", "3.11", False), ("2.19.14", "2.19.14", True),
    ("2.19.1", "2.19.14", False), ("2.20.0", ">=2.19,<2.21", True), ("2.21.0", ">=2.19,<2.21", False), ("2.19", ">=2.19.0", True),
    ("9.2", "==9.2", True), ("", "1", False), ("12", "12", True), ("1.5.4", "!=1.5.4", False),
])
def test_version_matches(have: str, want: str, ok: bool) -> None:
    assert version_matches(have, want) is ok


def test_pip_spec() -> None:
    assert (pip_spec("2.19.14"), pip_spec("2.19"), pip_spec(">=2.19, <2.21")) == ("==2.19.14", "==2.19.*", ">=2.19,<2.21")


def test_parse_a_full_toolchain() -> None:
    toolchain = parse_toolchain({"os": {"family": "Debian", "version": 12}, "python": 3.11, "ansible_core": "2.19.14",
                                 "collections": {"ansible.posix": "1.5.4"},
                                 "tools": {"git": "2.39", "ssh": "9.2", "molecule": {"version": "26", "command": "molecule --version"}}})
    assert (toolchain.os_family, toolchain.os_version, toolchain.python) == ("debian", "12", "3.11")
    assert [(t.name, t.version, t.command) for t in toolchain.tools] == [
        ("git", "2.39", "git --version"), ("ssh", "9.2", "ssh -V"), ("molecule", "26", "molecule --version")]


@pytest.mark.parametrize(("data", "message"), [
    ({"pyton": "3.11"}, "pyton: unknown key"),
    ({"python": ""}, "python: is empty"),
    ({"python": "three"}, "python: 'three' is not a version"),
    ({"os": "debian"}, "os: give family and version"),
    ({"tools": {"git": {"command": "git --version"}}}, "tools.git: give version"),
    ({"tools": {"git": True}}, "tools.git: give a version as text"),
    ([], "expected a mapping"),
])
def test_a_bad_toolchain_names_the_key(data: object, message: str) -> None:
    with pytest.raises(ToolchainError, match=message):
        parse_toolchain(data, "toolchain.yml")


def test_checks_say_what_to_change() -> None:
    toolchain = parse_toolchain({"os": {"family": "debian", "version": "12"}, "python": "3.11", "ansible_core": "2.20",
                                 "collections": {"ansible.posix": "1.5.4", "community.general": ">=9"},
                                 "tools": {"git": "2.39", "molecule": "26"}})
    checks = {check.name: check for check in check_machine(toolchain, MACHINE)}
    assert [name for name, check in checks.items() if check.matches] == ["os family", "python", "collection ansible.posix", "tool git"]
    assert checks["os version"].fix == "upgrade or reinstall to debian 12"
    assert checks["ansible-core"].fix == "pip install 'ansible-core==2.20.*' (in relpromote's virtualenv)"
    assert checks["collection community.general"].fix == "ansible-galaxy collection install 'community.general:>=9' --force"
    assert checks["tool molecule"].fix == "molecule: not installed; install molecule 26" and checks["tool molecule"].have == ""
    assert all(check.fix == "" for check in checks.values() if check.matches)


def test_collections_are_read_from_their_manifests(tmp_path: Path) -> None:
    for root, version in ((tmp_path / "first", "1.5.4"), (tmp_path / "second", "1.6.0")):
        folder = root / "ansible_collections" / "ansible" / "posix"
        folder.mkdir(parents=True)
        (folder / "MANIFEST.json").write_text(json.dumps({"collection_info": {"namespace": "ansible", "name": "posix", "version": version}}))
    found = collection_versions([str(tmp_path / "first"), str(tmp_path / "second" / "ansible_collections")])
    assert found["ansible.posix"] == "1.5.4"  # the first on the search path wins, as for Ansible


def test_command_version_reads_the_first_version_a_command_prints() -> None:
    assert command_version(f"{sys.executable} --version") == (".".join(map(str, sys.version_info[:3])), "")
    assert command_version("no-such-tool-here --version") == ("", "not installed")
    assert command_version("false")[1] == "`false` exited 1"


def test_pin_is_the_machine() -> None:
    assert pin(MACHINE, {"git": "2.39.5"}) == {"os": {"family": "ubuntu", "version": "22.04"}, "python": "3.11", "ansible_core": "2.19.14",
                                               "collections": {"ansible.posix": "1.5.4"}, "tools": {"git": "2.39.5"}}
    assert check_machine(parse_toolchain(pin(MACHINE)), MACHINE) and all(c.matches for c in check_machine(parse_toolchain(pin(MACHINE)), MACHINE))
