"""`audit verify` on a ledger replaced by an older copy of itself: the chain alone cannot tell (README, Anchors), so the
answer must say what it did not check, and the checkpoint taken before catches it."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers import git_run, make_app_source, make_project, write_manifest


def test_an_older_copy_of_the_ledger_is_ok_only_with_a_note_and_a_checkpoint_catches_it(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    source = make_app_source(tmp_path / "app")
    ledger = project.cwd / ".relpromote" / "ledger.db"
    for version in ("1.0.0", "1.1.0"):
        (source / "greeting.txt").write_text(f"hello from {version}\n")
        git_run(source, "commit", "-qam", version)
        project.run("build", version, "--source", str(source), "--manifest", str(write_manifest(tmp_path / f"{version}.yml", version)),
                    identity="alice", check=True)
        if version == "1.0.0":
            shutil.copytree(ledger.parent, tmp_path / "copy", ignore=shutil.ignore_patterns("store", "runs"))
    head = project.json("audit", "checkpoint", "--out", str(tmp_path / "head.json"), identity="alice")
    for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm"):
        (ledger.parent / name).unlink(missing_ok=True)
        if (tmp_path / "copy" / name).exists():
            shutil.copy2(tmp_path / "copy" / name, ledger.parent / name)
    report = project.json("audit", "verify")
    assert report["ok"] and report["entry_count"] == 1
    assert any("--hosts" in note and "--expect-head" in note for note in report["notes"]), report["notes"]
    human = project.run("audit", "verify", check=True).stdout
    assert "not checked" in human
    caught = project.run("audit", "verify", "--expect-head", str(tmp_path / "head.json"))
    assert caught.returncode == 1 and head
