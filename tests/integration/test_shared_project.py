"""One project folder shared by two operators of one group on a jump host (`group:` in relpromote.yml).

Real local logins made by the test (the helpers of test_jump_host.py): two in the group promote in turn from the same
folder to real sshd hosts; a third login, not in the group, can read nothing of the ledger, the store or the runs.
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import one_line_error
from tests.integration.test_jump_host import JumpHost, Login, _live, _project, jump_host_logins

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"), reason="needs root and useradd")


@pytest.fixture
def jump_host() -> Iterator[JumpHost]:
    with jump_host_logins(outsiders=1) as jump:
        yield jump


def _share_checkout(checkout: Path, jump: JumpHost) -> None:
    """The checkout as a team keeps it: root's, readable by everyone (relpromote's folder aside, left as relpromote made
    it), and each login's git trusting it (git refuses a repository of another owner otherwise)."""
    for login in (*jump.logins, *jump.outsiders):
        gitconfig = login.home / ".gitconfig"
        gitconfig.write_text(f"[safe]\n\tdirectory = {checkout}\n")
        os.chown(gitconfig, login.uid, login.gid)
    assert stat.S_IMODE(checkout.stat().st_mode) & 0o005 == 0o005  # others may enter: only .relpromote's modes keep them out


def _entries(top: Path) -> list[tuple[Path, os.stat_result]]:
    found = [(top, os.lstat(top))]
    for folder, dirs, files in os.walk(top):
        found += [(Path(folder) / name, os.lstat(Path(folder) / name)) for name in dirs + files]
    return found


def _assert_shared(state: Path, gid: int) -> set[int]:
    """Everything under .relpromote belongs to the group with the group's modes and nothing for others; its owners."""
    owners = set()
    for path, info in _entries(state):
        mode = stat.S_IMODE(info.st_mode)
        assert info.st_gid == gid, (path, info.st_gid)
        assert mode & 0o007 == 0, (path, oct(mode))
        if stat.S_ISDIR(info.st_mode):
            assert mode == 0o2770, (path, oct(mode))
        else:
            assert stat.S_ISREG(info.st_mode), path
            assert mode in (0o660, 0o440, 0o770), (path, oct(mode))
        owners.add(info.st_uid)
    return owners


def _promoted_by(ledger: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(ledger)) as db:
        rows = db.execute("SELECT actor, payload FROM entries WHERE kind = 'promotion.finished' ORDER BY seq").fetchall()
    return [(actor, json.loads(payload)["version"]) for actor, payload in rows]


def _runs_of(state: Path, login: Login) -> list[Path]:
    return [p for p in (state / "runs").iterdir() if p.stat().st_uid == login.uid]


def test_two_operators_of_one_group_promote_in_turn_from_one_project_folder(jump_host: JumpHost, farm: SshHostFarm) -> None:
    first, second = jump_host.logins
    outsider = jump_host.outsiders[0]
    gid = grp.getgrnam(jump_host.group).gr_gid
    project = _project(jump_host, farm, {"oscar": first, "olga": second}, group=jump_host.group)
    _share_checkout(project.cwd, jump_host)
    state = project.cwd / ".relpromote"
    ledger = state / "ledger.db"

    by_first = jump_host.relpromote(first, "promote", "1.0.0", "--to", "qa", cwd=project.cwd)

    assert by_first.returncode == 0, by_first.stderr
    assert {_live(farm, "qa-app-1"), _live(farm, "qa-app-2")} == {"1.0.0"}
    assert _runs_of(state, first)  # ansible-runner closed its run folder to 0700 while it ran; it is the group's now
    _assert_shared(state, gid)

    by_second = jump_host.relpromote(second, "promote", "1.1.0", "--to", "qa", cwd=project.cwd)

    assert by_second.returncode == 0, by_second.stderr
    assert {_live(farm, "qa-app-1"), _live(farm, "qa-app-2")} == {"1.1.0"}
    owners = _assert_shared(state, gid)
    assert {first.uid, second.uid} <= owners  # each login made files there, and the other could still write
    assert _promoted_by(ledger) == [("oscar", "1.0.0"), ("olga", "1.1.0")]
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o660 and ledger.stat().st_gid == gid

    # A login outside the group can read none of it, and relpromote tells it why in one line.
    for command in (["cat", str(ledger)], ["ls", str(state / "store" / "sha256")], ["ls", str(state / "runs")],
                    ["cat", str(next(state.glob("store/sha256/*.tar.gz")))]):
        denied = jump_host.run(outsider, *command, cwd=Path("/"))
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, (command, denied.stdout)
    refused = jump_host.relpromote(outsider, "status", cwd=project.cwd)
    assert refused.returncode == 2
    assert jump_host.group in one_line_error(refused)


def test_a_shared_file_left_private_is_fixed_by_its_owner_and_reported_to_the_others(jump_host: JumpHost,
                                                                                      farm: SshHostFarm) -> None:
    first, second = jump_host.logins
    gid = grp.getgrnam(jump_host.group).gr_gid
    project = _project(jump_host, farm, {"oscar": first, "olga": second}, group=jump_host.group)
    _share_checkout(project.cwd, jump_host)
    ledger = project.cwd / ".relpromote" / "ledger.db"
    os.chown(ledger, 0, 0)  # as a ledger made before `group:` was set: root's own
    ledger.chmod(0o644)

    seen = jump_host.relpromote(second, "status", cwd=project.cwd)

    assert str(ledger) in seen.stderr and "not shared with group" in seen.stderr, seen.stderr
    assert (ledger.stat().st_gid, stat.S_IMODE(ledger.stat().st_mode)) == (0, 0o644)  # not second's to change

    assert project.run("status").returncode == 0  # root's next command fixes what it may

    assert (ledger.stat().st_gid, stat.S_IMODE(ledger.stat().st_mode)) == (gid, 0o660)
    by_second = jump_host.relpromote(second, "promote", "1.0.0", "--to", "qa", cwd=project.cwd)
    assert by_second.returncode == 0, by_second.stderr
    assert "not shared" not in by_second.stderr
    assert {_live(farm, "qa-app-1"), _live(farm, "qa-app-2")} == {"1.0.0"}
