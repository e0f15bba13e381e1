"""The one way use cases describe an Ansible run against an environment of the project."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from relpromote.adapters.known_hosts import ssh_envvars
from relpromote.adapters.runner import PlaybookRun
from relpromote.adapters.vault import VaultAccess
from relpromote.collection import collection_playbook
from relpromote.config import ContentConfig
from relpromote.inventory import check_variable_files
from relpromote.ledger import GENESIS_HASH
from relpromote.project import Project


def environment_run(
    project: Project,
    environment: str,
    playbook: str,
    label: str,
    extravars: Mapping[str, Any],
    access: VaultAccess,
    *,
    limit: str | None = None,
    check: bool = False,
    extra_var_files: tuple[str, ...] = (),
) -> PlaybookRun:
    """`playbook` (relative to the project) with the environment's inventory, the project's ansible.cfg and run folder."""
    inventory = project.resolve(project.config.environment(environment).inventory)
    check_variable_files(inventory)
    # An installed collection's playbook when the config names one (content:, README); the project's own otherwise.
    installed = project.config.content if isinstance(project.config.content, ContentConfig) else None
    named = collection_playbook(playbook, installed.collection) if installed else None
    found = {"ANSIBLE_COLLECTIONS_PATH": str(project.resolve(installed.path))} if named and installed and installed.path else {}
    return PlaybookRun(
        playbook=project.resolve(playbook),
        inventory=inventory,
        project_dir=project.root,
        runs_dir=project.runs_dir,
        # The ledger head this run starts from: promote.yml and rollback.yml leave it on the hosts (witness.py).
        extravars={"relpromote_witness": ledger_head(project, environment), **extravars},
        envvars={**access.envvars, **ssh_envvars(inventory), **found},  # the environment's pinned host keys, checked strictly
        vault_ids=access.vault_ids,
        extra_var_files=extra_var_files,
        limit=limit,
        check=check,
        label=label,
        keep_runs=project.config.runs.keep,
        collection_playbook=named or "",
        # No file that could set the inventory's user tasks: roles/release_deploy leaves their includes out of the play.
        skip_tags=() if named or may_set_user_tasks(inventory, project.resolve(playbook), extra_var_files) else ("release_user_tasks",),
    )


def may_set_user_tasks(inventory: Path, playbook: Path, extra_var_files: tuple[str, ...] = ()) -> bool:
    """Whether any file Ansible reads variables from for this run may set release_user_tasks: a file that names it, one
    encrypted with ansible-vault (its names cannot be read), or an executable (an inventory script); False only when none
    can. The inventory (and group_vars/, host_vars/ beside an inventory file), group_vars/ and host_vars/ beside the
    playbook, the playbook itself and the extra-vars files; a playbook that reads other files (vars_files,
    include_vars) may too."""
    beside = [inventory.parent / "group_vars", inventory.parent / "host_vars"] if inventory.is_file() else []
    paths = [inventory, *beside, playbook, playbook.parent / "group_vars", playbook.parent / "host_vars", *map(Path, extra_var_files)]
    try:
        if any(word in playbook.read_bytes() for word in (b"vars_files", b"include_vars")):
            return True
    except OSError:
        return True
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
        for file in files:
            try:
                data = file.read_bytes()
            except OSError:
                return True
            if b"release_user_tasks" in data or data.lstrip().startswith(b"$ANSIBLE_VAULT") or (file != playbook and os.access(file, os.X_OK)):
                return True
    return False


def ledger_head(project: Project, environment: str) -> dict[str, Any]:
    entries = project.ledger.entries()
    last = entries[-1] if entries else None
    return {"project": project.config.project, "environment": environment,
            "seq": last.seq if last else 0, "hash": last.hash if last else GENESIS_HASH}
