"""Scaffold a promotion project: config, per-environment inventories, playbooks, roles."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from relpromote.config import DEFAULT_CONFIG_NAME, parse_config
from relpromote.errors import BadInput
from relpromote.resources import TEMPLATES, bundled

GITIGNORE = "# relpromote's local state: ledger, artifact store, run directories\n.relpromote/\napp-source/\n"
COPIED = ("inventories", "playbooks", "roles", "ansible.cfg")


def init_project(directory: Path, config_text: str | None = None) -> list[str]:
    """Create the project in `directory` and return the paths written, relative to it."""
    if (directory / DEFAULT_CONFIG_NAME).exists():
        raise BadInput(f"{directory / DEFAULT_CONFIG_NAME}: a project is already here; pick another DIR")
    text = config_text if config_text is not None else (TEMPLATES / DEFAULT_CONFIG_NAME).read_text()
    parse_config(text, DEFAULT_CONFIG_NAME)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in COPIED:
        source, target = bundled(name), directory / name
        if target.exists():
            raise BadInput(f"{target}: already exists; init needs a fresh directory")
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".molecule"))
        else:
            shutil.copy2(source, target)
        written.append(name)
    (directory / DEFAULT_CONFIG_NAME).write_text(text)
    (directory / ".gitignore").write_text(GITIGNORE)
    written += [DEFAULT_CONFIG_NAME, ".gitignore"]
    _commit_scaffold(directory)
    return written


def _commit_scaffold(directory: Path) -> None:
    """Put the project under git at once: promotions record the commit they ran from."""
    inside = subprocess.run(["git", "-C", str(directory), "rev-parse", "--is-inside-work-tree"], capture_output=True, text=True)
    if inside.returncode != 0:
        subprocess.run(["git", "init", "-q", "-b", "main", str(directory)], check=True)
    subprocess.run(["git", "-C", str(directory), "add", "-A", "."], check=True)
    subprocess.run(
        ["git", "-C", str(directory), "-c", "user.name=relpromote", "-c", "user.email=relpromote@localhost",
         "commit", "-q", "-m", "relpromote init: promotion project scaffold"],
        check=True, capture_output=True,
    )
