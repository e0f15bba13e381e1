"""The plan an approval covers: what a promotion to an environment would apply, as digests.

An approval records the plan it was given for; a promotion compares it with the plan now, so
adding a host to the inventory or changing a role after the approval makes the approval not count.
Digests are of the files themselves (not of the project's commit), so an unrelated commit, such as
a README edit, leaves an approval valid.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from relpromote.project import Project

APPLIED = ("playbooks", "roles", "ansible.cfg")


def tree_digest(path: Path) -> str:
    """sha256 over every file under `path` (names and contents, sorted); "absent" when there is none."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if not path.is_dir():
        return "absent"
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def inventory_hosts(inventory: Path, pattern: str) -> list[str]:
    """The hosts of a group (children included) in a static YAML inventory; every host for `all`."""
    files = [inventory] if inventory.is_file() else sorted(inventory.glob("hosts.y*ml"))
    found: set[str] = set()
    for file in files:
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        _collect(data, pattern, pattern == "all", found)
    return sorted(found)


def _collect(groups: Any, pattern: str, inside: bool, found: set[str]) -> None:
    if not isinstance(groups, dict):
        return
    for name, group in groups.items():
        if not isinstance(group, dict):
            continue
        wanted = inside or name == pattern
        if wanted and isinstance(group.get("hosts"), dict):
            found.update(str(host) for host in group["hosts"])
        _collect(group.get("children"), pattern, wanted, found)


def current_plan(project: Project, environment: str) -> dict[str, Any]:
    """Hosts, config, inventory, playbooks, roles and ansible.cfg a promotion to `environment` applies now."""
    env = project.config.environment(environment)
    inventory = project.resolve(env.inventory)
    plan: dict[str, Any] = {
        "hosts": inventory_hosts(inventory, env.hosts),
        "config": tree_digest(project.config_path),
        "inventory": tree_digest(inventory),
    }
    plan.update({name: tree_digest(project.root / name) for name in APPLIED})
    return plan
