"""`relpromote doctor` on this very machine: against a toolchain file it matches (pinned from it) and ones it does not,
and what relpromote itself needs (the identity key's mode, a vault password file's), each with the change that fixes it."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import BIN, RELPROMOTE, Cli, make_project


def doctor(cwd: Path, *args: str, expect: int) -> dict[str, Any]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for name in ("RELPROMOTE_CONFIG", "RELPROMOTE_IDENTITY"):
        env.pop(name, None)
    import subprocess

    result = subprocess.run([RELPROMOTE, "doctor", "--json", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == expect, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def failing(document: dict[str, Any]) -> dict[str, str]:
    return {check["check"]: check["fix"] for check in document["doctor"]["checks"] if not check["matches"]}


def key_file(tmp_path: Path) -> Path:
    Cli(tmp_path).run("keygen", "dana", "--out", str(tmp_path / "dana.key"), check=True)
    return tmp_path / "dana.key"


def test_a_machine_matches_the_toolchain_pinned_from_it(tmp_path: Path) -> None:
    key = key_file(tmp_path)
    pinned = doctor(tmp_path, "--pin", "--identity", str(key), expect=0)
    assert pinned["ok"] is True and pinned["doctor"]["pinned"] is True and failing(pinned) == {}
    content = yaml.safe_load((tmp_path / "toolchain.yml").read_text())
    assert content["python"] == ".".join(platform.python_version().split(".")[:2]) and set(content["tools"]) == {"git", "ssh"}
    again = doctor(tmp_path, "--identity", str(key), expect=0)  # found in the working directory
    names = [check["check"] for check in again["doctor"]["checks"]]
    assert names[:4] == ["os family", "os version", "python", "ansible-core"] and "tool ssh" in names and "identity key" in names
    assert doctor(tmp_path, "--pin", "--identity", str(key), expect=0)["doctor"]["pinned"] is False  # same machine: unchanged


def test_each_mismatch_is_named_with_its_fix(tmp_path: Path) -> None:
    key = key_file(tmp_path)
    doctor(tmp_path, "--pin", "--identity", str(key), expect=0)
    content = yaml.safe_load((tmp_path / "toolchain.yml").read_text())
    content["python"] = "2.7"
    content["ansible_core"] = ">=2.99"
    content["collections"] = {"community.never": "1.0.0"}
    content["tools"]["shoplint"] = "4.2"
    (tmp_path / "toolchain.yml").write_text(yaml.safe_dump(content))
    document = doctor(tmp_path, "--identity", str(key), expect=3)
    assert document["ok"] is False and document["exit_code"] == 3
    assert failing(document) == {
        "python": "run relpromote with Python 2.7: install it (e.g. `pyenv install 2.7`) and recreate the virtualenv with it",
        "ansible-core": "pip install 'ansible-core>=2.99' (in relpromote's virtualenv)",
        "collection community.never": "ansible-galaxy collection install 'community.never:==1.0.0' --force",
        "tool shoplint": "shoplint: not installed; install shoplint 4.2",
    }
    assert document["error"].startswith("4 of ")
    with_pin = doctor(tmp_path, "--pin", "--identity", str(key), expect=2)
    assert "already exists and pins something else" in with_pin["error"]


def test_what_relpromote_needs_the_identity_key_and_the_vault_password(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    config = yaml.safe_load((project.cwd / "relpromote.yml").read_text())
    password = tmp_path / "prod-vault-pass"
    password.write_text("correct horse\n")
    password.chmod(0o644)
    config["environments"]["production"]["vault"] = {"id": "prod", "password": {"file": str(password)}}
    (project.cwd / "relpromote.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    doctor(project.cwd, "--pin", "--identity", str(project.cwd / ".keys" / "alice.key"), expect=3)  # toolchain.yml beside the config
    key = project.cwd / ".keys" / "alice.key"
    key.chmod(0o640)
    document = doctor(project.cwd / "inventories", "--identity", str(key), expect=3)  # from a subfolder: the project's file
    assert document["doctor"]["toolchain_file"] == str(project.cwd / "toolchain.yml")
    assert failing(document) == {
        "vault password of production": f"vault prod of production: {password} is readable by others; run `chmod 600 {password}`",
        "identity key": f"chmod 600 {key}",
    }
    password.chmod(0o600)
    key.chmod(0o600)
    assert failing(doctor(project.cwd, "--identity", str(key), expect=0)) == {}
    missing = doctor(project.cwd, "--identity", str(tmp_path / "nobody.key"), expect=3)
    assert failing(missing)["identity key"].startswith(f"{tmp_path / 'nobody.key'} does not exist; create it with `relpromote keygen")


def test_no_toolchain_file_is_bad_input(tmp_path: Path) -> None:
    document = doctor(tmp_path, expect=2)
    assert "no toolchain file; pin this machine's with `relpromote doctor --pin`" in document["error"]
    (tmp_path / "toolchain.yml").write_text("pyton: '3.11'\n")
    assert "pyton: unknown key" in doctor(tmp_path, expect=2)["error"]
