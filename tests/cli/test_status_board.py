"""`status` flags what the contract says it flags: a lock a live run holds, and a freeze in force (not only dead locks)."""

from __future__ import annotations

from pathlib import Path

from relpromote.project import Project
from relpromote.usecases.locking import environment_lock
from tests.helpers import make_project


def test_status_shows_a_live_runs_lock_and_a_freeze_in_force(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    config = project.cwd / "relpromote.yml"
    config.write_text(config.read_text().replace(
        "    inventory: inventories/deployment", "    inventory: inventories/deployment\n"
        "    freeze: [{reason: year-end close, start: 2000-01-01, end: 2999-12-31}]", 1))
    with environment_lock(Project.open(config), "qa", "oscar", "promotion of 1.4.0") as held:
        board = {row["environment"]: row for row in project.json("status")["environments"]}
        text = project.run("status", check=True).stdout
    assert board["qa"]["lock"]["lock_id"] == held.lock_id and board["qa"]["lock"]["holder"] == "oscar"
    assert any(held.lock_id in line and "oscar" in line for line in board["qa"]["attention"]), board["qa"]
    assert board["deployment"]["freeze"] == "year-end close" and board["production"]["freeze"] is None
    assert any("year-end close" in line for line in board["deployment"]["attention"]), board["deployment"]
    assert held.lock_id in text and "year-end close" in text
    assert board["production"]["lock"] is None and not board["production"]["attention"]
