"""Shared test helpers: run the console script as a user does, and make a project with people."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
RELPROMOTE = str(BIN / "relpromote")


# A machine where git knows nobody (a fresh machine, a service account): git refuses to guess an identity.
NO_GIT_IDENTITY = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_COUNT": "1",
                   "GIT_CONFIG_KEY_0": "user.useConfigOnly", "GIT_CONFIG_VALUE_0": "true"}


@dataclass
class Cli:
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, identity: str | None = None, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **self.env}
        env.pop("RELPROMOTE_CONFIG", None)
        if identity:
            env["RELPROMOTE_IDENTITY"] = str(self.cwd / ".keys" / f"{identity}.key")
        result = subprocess.run([RELPROMOTE, *args], cwd=self.cwd, env=env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"relpromote {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result

    def json(self, *args: str, identity: str | None = None, expect: int = 0) -> Any:
        result = self.run("--json", *args, identity=identity)
        assert result.returncode == expect, f"exit {result.returncode}, wanted {expect}: {result.stderr}"
        return json.loads(result.stdout)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The user-facing error: exactly one line on stderr, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


PEOPLE = {
    "alice": ["release_manager"],
    "oscar": ["operator"],
    "quinn": ["qa"],
    "carol": ["change_manager"],
}


# Projects made in this process, by (people, config overrides): the first is made with the real `init` and `keygen`
# (six runs of the console script, ~3 s of CPU), every later one with the same inputs is a copy of it. Each test still
# gets a folder of its own; the copies share only their people's key pairs.
_MADE: dict[str, Path] = {}
_MADE_IN = Path(tempfile.mkdtemp(prefix="relpromote-test-projects-"))
atexit.register(shutil.rmtree, _MADE_IN, True)


def make_project(directory: Path, people: dict[str, list[str]] | None = None, **config_overrides: Any) -> Cli:
    """A promotion project created with the real `init` and `keygen`, people added to the config."""
    key = json.dumps([people or PEOPLE, config_overrides], sort_keys=True, default=str)
    made = _MADE.get(key)
    if made is None or not made.is_dir():
        made = _MADE_IN / f"project-{len(_MADE)}" / "proj"
        made.parent.mkdir(parents=True)
        _make_project(made, people, **config_overrides)
        _MADE[key] = made
    shutil.copytree(made, directory, symlinks=True)
    return Cli(directory)


def _make_project(directory: Path, people: dict[str, list[str]] | None = None, **config_overrides: Any) -> Cli:
    cli = Cli(directory.parent)
    cli.run("init", str(directory), check=True)
    cli = Cli(directory)
    entries = []
    for name, roles in (people or PEOPLE).items():
        data = cli.json("keygen", name, "--out", str(directory / ".keys" / f"{name}.key"))
        entries.append({"name": name, "key": data["key"], "roles": roles})
    config_path = directory / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["people"] = entries
    config.update(config_overrides)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return cli


def make_app_source(directory: Path, git: bool = True) -> Path:
    shutil.copytree(REPO / "examples" / "app", directory)
    if git:
        git_run(directory, "init", "-q", "-b", "main")
        git_run(directory, "add", "-A")
        git_run(directory, "commit", "-q", "-m", "initial")
    return directory


def git_run(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(directory), "-c", "user.name=dana", "-c", "user.email=dana@example.org", *args],
        check=True, capture_output=True, text=True,
    ).stdout


def write_manifest(path: Path, version: str, changes: list[dict[str, Any]] | None = None) -> Path:
    changes = changes or [
        {"id": "CH-1", "type": "enhancement", "title": "A thing", "owner": "dana", "why": "Because", "how": "Like so"}
    ]
    path.write_text(yaml.safe_dump({"version": version, "changes": changes}, sort_keys=False))
    return path
