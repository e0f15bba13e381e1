"""`group:` in relpromote.yml through the console script: a name that is no group, or a group this host lacks, is one
line and exit 2 before anything is made; a group that exists gives it .relpromote (tests/unit/test_shared_folder.py,
tests/integration/test_shared_project.py for real logins)."""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

import pytest

from relpromote.config import parse_config
from relpromote.errors import BadInput
from tests.helpers import make_project, one_line_error

CONFIG = "project: shop\npromotion_path: [qa]\nenvironments:\n  qa: {inventory: inventories/qa}\n"


def test_group_is_a_top_level_setting() -> None:
    assert parse_config(CONFIG + "group: jump-ops\n", "relpromote.yml").group == "jump-ops"
    assert parse_config(CONFIG, "relpromote.yml").group is None


@pytest.mark.parametrize("value", ["'ops team'", "'-ops'", "[ops]"])
def test_a_group_that_is_no_group_name_is_refused_naming_the_key(value: str) -> None:
    with pytest.raises(BadInput) as raised:
        parse_config(CONFIG + f"group: {value}\n", "relpromote.yml")
    assert raised.value.message.startswith("relpromote.yml: group: ")


@pytest.mark.parametrize(("group", "says"), [("rpnosuchgroup", "no group 'rpnosuchgroup'"), ("'ops team'", "is not a group name")])
def test_a_group_the_host_lacks_is_one_line_and_exit_2_before_anything_is_made(tmp_path: Path, group: str, says: str) -> None:
    project = make_project(tmp_path / "proj")
    config = project.cwd / "relpromote.yml"
    config.write_text(config.read_text() + f"group: {group}\n")

    result = project.run("status", identity="alice")

    assert result.returncode == 2
    line = one_line_error(result)
    assert "group:" in line and says in line
    assert not (project.cwd / ".relpromote").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to a group root is not in needs root")
def test_a_known_group_gets_the_projects_files(tmp_path: Path) -> None:
    gid = grp.getgrnam("users").gr_gid
    project = make_project(tmp_path / "proj", group="users")

    result = project.run("status", identity="alice")

    assert result.returncode == 0, result.stderr
    ledger = project.cwd / ".relpromote" / "ledger.db"
    assert (ledger.stat().st_gid, stat.S_IMODE(ledger.stat().st_mode)) == (gid, 0o660)
    assert stat.S_IMODE((project.cwd / ".relpromote").stat().st_mode) == 0o2770
