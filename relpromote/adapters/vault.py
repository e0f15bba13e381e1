"""Hand an environment's vault password to Ansible through a vault client executable.

relpromote never reads the password itself: it writes a small client script (no secret in it) into
a private temporary folder of the user (control_path.RunTemp) and passes `--vault-id ID@CLIENT`; the client reads the configured
source when Ansible asks. Call only after the identity and the gates were checked.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from relpromote.adapters.control_path import RunTemp
from relpromote.adapters.secrets import check_source
from relpromote.config import VaultConfig

CLIENT_NAME = "relpromote-vault-client"  # Ansible treats an executable named *-client as a vault-id client


@dataclass(frozen=True)
class VaultAccess:
    vault_ids: tuple[str, ...]
    envvars: dict[str, str]


@contextmanager
def vault_access(*vaults: VaultConfig | None) -> Iterator[VaultAccess]:
    """Vault ids for Ansible for every given vault (one run may need production's and QA's)."""
    present = {v.id: v for v in vaults if v is not None}
    if not present:
        yield VaultAccess((), {})
        return
    for vault in present.values():
        check_source(vault.password, f"vault {vault.id}")
    temp = RunTemp("vault")  # this user's, 0700; what a killed run left is removed by the next (control_path.py)
    folder = temp.path
    try:
        client = folder / CLIENT_NAME
        client.write_text(f"#!/bin/sh\nexec {sys.executable} -m relpromote.vault_client \"$@\"\n")
        os.chmod(client, 0o700)
        spec = json.dumps({vault_id: v.password.model_dump(exclude_none=True) for vault_id, v in present.items()})
        yield VaultAccess(tuple(f"{vault_id}@{client}" for vault_id in present), {"RELPROMOTE_VAULT_SOURCE": spec, "ANSIBLE_SSH_AGENT": "auto"})
    finally:
        temp.close()
