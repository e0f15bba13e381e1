"""roles/release_deploy/library/release_lock.py, pinned exactly (issue 18's mutation score): a refused lease ends the
module's process the way Ansible reads a failure (fail_json, exit status 1), a lease taken with exit status 0."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils import basic  # type: ignore[import-untyped]

from tests.unit.host_modules import load

LOCK = load("roles/release_deploy/library/release_lock.py")


def ended(args: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> tuple[object, dict[str, Any]]:
    """The module's exit status and the result it printed."""
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": False, "_ansible_no_log": False}}).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    try:
        with pytest.raises(SystemExit) as stopped:
            LOCK.main()
    finally:
        basic._ANSIBLE_ARGS = None
        basic._ANSIBLE_PROFILE = None
    printed: dict[str, Any] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return stopped.value.code, printed


def test_a_busy_host_fails_with_exit_status_1_and_a_lease_taken_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lease = tmp_path / "lock.json"
    who = {"id": "run-a", "person": "oscar", "purpose": "promotion of 1.4.0", "started": "2026-11-30T10:00:00Z"}
    code, taken = ended({"path": str(lease), "run": who, "wait": 0}, capsys)
    assert (code, taken.get("failed"), taken["token"]) == (0, None, "run-a")
    other = {"id": "run-b", "person": "dana", "purpose": "promotion of 1.5.0", "started": "2026-11-30T10:00:09Z"}
    code, refused = ended({"path": str(lease), "run": other, "wait": 0}, capsys)
    assert (code, refused["failed"], refused["busy"], refused["holder"]["token"]) == (1, True, True, "run-a")
    assert "oscar (promotion of 1.4.0)" in refused["msg"], refused["msg"]
    assert json.loads(lease.read_text())["token"] == "run-a"
