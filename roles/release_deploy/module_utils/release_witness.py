# -*- coding: utf-8 -*-
"""The ledger head a host witnesses, on the host (release_rollback; playbooks/promote.yml writes the same file).

Owns `<release_base_dir>/.relpromote-witness.json`: the ledger head (project, environment, sequence
number, hash) the promotion or rollback that last reached this host started from, one JSON document
and a newline, written to a temporary file and renamed, readable by everyone (0644), so that
`relpromote audit verify --hosts ENV` (playbooks/witness.yml) can tell a truncated ledger. Shipped with
every module that imports it; roles/release_rollback holds a link to this file. Standard library only.
"""

from __future__ import absolute_import, division, print_function

import json
import os

__metaclass__ = type

WITNESS_FILE = ".relpromote-witness.json"


def write_witness(base_dir, head):
    """Keep `head` (a dict) as this host's witness of the ledger."""
    path = os.path.join(base_dir, WITNESS_FILE)
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(head) + "\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
    return path
