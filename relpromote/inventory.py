"""Reading a static YAML inventory (inventories/ENV/hosts.yml) without Ansible: a host's own variables.

Only what relpromote must know before Ansible runs (where a database host is); vault-encrypted
group_vars are never read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from relpromote.errors import BadInput


def host_variables(inventory: Path, host: str) -> dict[str, Any]:
    for name in ("hosts.yml", "hosts.yaml"):
        path = inventory / name if inventory.is_dir() else inventory
        if path.is_file():
            try:
                data = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError:
                raise BadInput(f"{path}: malformed YAML; fix the inventory") from None
            found = _find(data, host)
            if found is not None:
                return found
            raise BadInput(f"{path}: no host '{host}'; add it or fix the host named in relpromote.yml")
    raise BadInput(f"{inventory}: no hosts.yml; relpromote reads database hosts from a YAML inventory")


def _find(groups: Any, host: str) -> dict[str, Any] | None:
    """Search groups (a mapping of group name -> group) and their children for the host's entry."""
    if not isinstance(groups, dict):
        return None
    for group in groups.values():
        if not isinstance(group, dict):
            continue
        hosts = group.get("hosts")
        if isinstance(hosts, dict) and host in hosts:
            return dict(hosts[host] or {})
        found = _find(group.get("children"), host)
        if found is not None:
            return found
    return None


def shadowed_variable_files(inventory: Path) -> list[Path]:
    """`group_vars/NAME.yml` (or host_vars) beside a `NAME/` folder: Ansible reads only the folder, so the file's
    settings would be silently ignored (seen with ansible-core 2.19). Returns such files."""
    found = []
    for kind in ("group_vars", "host_vars"):
        folder = inventory / kind
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix in (".yml", ".yaml") and path.is_file() and (folder / path.stem).is_dir():
                found.append(path)
    return found


def check_variable_files(inventory: Path) -> None:
    shadowed = shadowed_variable_files(inventory)
    if shadowed:
        first = shadowed[0]
        raise BadInput(
            f"{first}: Ansible ignores this file because the folder {first.parent / first.stem}/ exists beside it; "
            f"move it to {first.parent / first.stem / 'main.yml'}"
        )
