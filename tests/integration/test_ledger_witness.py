"""The hosts witness the ledger: truncating the ledger file is caught by `audit verify --hosts ENV`.

Real promotions and a real rollback with ansible-runner against real sshd hosts; the assertions read
the witness files on the hosts and the audit's verdict.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import Cli, git_run, make_app_source, make_project, one_line_error, write_manifest
from tests.integration.conftest import write_inventories


def ledger(project: Cli) -> sqlite3.Connection:
    return sqlite3.connect(project.cwd / ".relpromote" / "ledger.db")


def witness(farm: SshHostFarm, host: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(farm[host].path("/opt/shop/.relpromote-witness.json").read_text())
    return data


def test_hosts_witness_the_head_and_catch_removing_1_5_or_all_entries(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    source = make_app_source(tmp_path / "app")
    for n in range(6):
        (source / "greeting.txt").write_text(f"build {n}\n")
        git_run(source, "commit", "-qam", f"build {n}")
        manifest = write_manifest(tmp_path / f"m{n}.yml", f"1.0.{n}")
        project.run("build", f"1.0.{n}", "--source", str(source), "--manifest", str(manifest), identity="alice", check=True)
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)

    with closing(ledger(project)) as db:
        # The head as the run started: its own promotion.started (#7), recorded before any host changed.
        head_seq, head_hash = db.execute("SELECT seq, hash FROM entries WHERE seq = 7 AND kind = 'promotion.started'").fetchone()
        assert db.execute("SELECT max(seq), kind FROM entries").fetchone() == (8, "promotion.finished")
    for host in ("qa-app-1", "qa-app-2"):
        assert witness(farm, host) == {"project": "shop", "environment": "qa", "seq": head_seq, "hash": head_hash}
    assert not farm["deployment-app-1"].path("/opt/shop/.relpromote-witness.json").exists()

    report = project.json("audit", "verify", "--hosts", "qa")
    assert report["ok"] and sorted(w["host"] for w in report["witnesses"]) == ["qa-app-1", "qa-app-2"]

    pristine = sqlite3.connect(tmp_path / "pristine.db")
    with closing(ledger(project)) as db:
        db.backup(pristine)
    expected = {
        1: "host qa-app-1 was changed by a run that started after entry #7, but no promotion or rollback of it is recorded "
           "after #7 (the ledger ends at #7): entries were removed, or that run never recorded its end",
        5: "host qa-app-1 witnessed entry #7, but the ledger ends at #3: entries were removed (truncated)",
        8: "host qa-app-1 witnessed entry #7, but the ledger ends at #0: entries were removed (truncated)",
    }
    for removed, reason in expected.items():
        with closing(ledger(project)) as db:
            pristine.backup(db)
            db.execute("DROP TRIGGER entries_append_only_delete")
            db.execute("DELETE FROM entries WHERE seq > ?", (8 - removed,))
            db.commit()
        assert project.run("audit", "verify").returncode == 0  # a shorter chain is still a chain: the hosts tell
        result = project.run("audit", "verify", "--hosts", "qa")
        assert result.returncode == 1, result.stderr
        assert reason in one_line_error(result)

    # A rollback leaves the hosts a witness too.
    with closing(ledger(project)) as db:
        pristine.backup(db)
    project.run("accept", "1.0.0", "--env", "qa", identity="quinn", check=True)
    project.run("promote", "1.0.1", "--to", "qa", identity="oscar", check=True)
    project.run("rollback", "--env", "qa", "--reason", "checkout errors", identity="alice", check=True)
    with closing(ledger(project)) as db:
        last_seq, kind = db.execute("SELECT seq, kind FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
    assert kind == "rollback.finished" and witness(farm, "qa-app-2")["seq"] == last_seq - 1
    assert project.json("audit", "verify", "--hosts", "qa")["ok"]

    # One host down: the other's witness still anchors the ledger. Both down: no verdict, never "ok".
    try:
        farm.stop_host("qa-app-1")
        partly = project.json("audit", "verify", "--hosts", "qa")
        assert partly["ok"] and [w["host"] for w in partly["witnesses"]] == ["qa-app-2"]
        assert any(note.startswith("qa-app-1: unreachable") for note in partly["notes"])
        farm.stop_host("qa-app-2")
        unread = project.run("audit", "verify", "--hosts", "qa")
        assert unread.returncode == 1, unread.stdout + unread.stderr
        line = one_line_error(unread)
        assert "no host's witness could be read" in line and "completeness was not checked" in line
    finally:
        farm.start_host("qa-app-1")
        farm.start_host("qa-app-2")
