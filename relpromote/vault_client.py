"""Ansible vault password client: `relpromote-vault-client --vault-id ID` prints the password.

Ansible runs it for `--vault-id ID@relpromote-vault-client`. It reads the password from the source
relpromote put in RELPROMOTE_VAULT_SOURCE (a file path or a command — never the password itself),
so the password exists only in this process's memory and on the pipe to Ansible.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from relpromote.errors import RelpromoteError
from relpromote.secret import SecretSource


def main() -> int:
    parser = argparse.ArgumentParser(prog="relpromote-vault-client")
    parser.add_argument("--vault-id", required=True)
    options = parser.parse_args()
    spec = os.environ.get("RELPROMOTE_VAULT_SOURCE")
    if not spec:
        sys.stderr.write("relpromote-vault-client: no vault password source; run Ansible through relpromote\n")
        return 2
    sources = json.loads(spec)
    if options.vault_id not in sources:
        sys.stderr.write(f"relpromote-vault-client: no password source for vault id {options.vault_id}\n")
        return 2
    from relpromote.adapters.secrets import read_secret

    try:
        password = read_secret(SecretSource.model_validate(sources[options.vault_id]), f"vault {options.vault_id}")
    except RelpromoteError as exc:
        sys.stderr.write(f"relpromote-vault-client: {exc.message}\n")
        return 2
    sys.stdout.write(password + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
