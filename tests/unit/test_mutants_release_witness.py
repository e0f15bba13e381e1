"""roles/release_deploy/module_utils/release_witness.py, pinned exactly (issue 18's mutation score): the ledger head a
host keeps, one JSON document and a newline, readable by everyone, replacing the last one in one rename."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.unit.host_modules import load_util

WITNESS = load_util("roles/release_deploy/module_utils/release_witness.py")


def test_the_witness_is_one_json_line_readable_by_everyone_and_replaces_the_last(tmp_path: Path) -> None:
    head = {"project": "shop", "environment": "production", "sequence": 42, "hash": "ab" * 32}
    before = os.umask(0o077)  # a strict umask: the file is made 0644 anyway
    try:
        path = WITNESS.write_witness(str(tmp_path), head)
    finally:
        os.umask(before)
    assert path == str(tmp_path / ".relpromote-witness.json")
    assert Path(path).read_text(encoding="utf-8") == json.dumps(head) + "\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    old = os.stat(path).st_ino
    newer = {**head, "sequence": 43, "person": "Zoë"}
    Path(path + ".tmp").write_text("{half a witness")  # what a write interrupted before its rename left
    assert WITNESS.write_witness(str(tmp_path), newer) == path
    assert json.loads(Path(path).read_text(encoding="utf-8")) == newer
    assert os.stat(path).st_ino != old, "a new file renamed into place, never the old one rewritten"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".relpromote-witness.json"], "no temporary file left, the stale one reused"
