"""A release goes live on real sshd hosts through qa, deployment and production."""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import Cli, git_run, make_app_source, make_project, write_manifest
from tests.integration.conftest import write_inventories


def health(farm: SshHostFarm, host: str) -> dict[str, Any]:
    address, _ = farm.endpoint(host)
    with urllib.request.urlopen(f"http://{address}:8080/health", timeout=5) as answer:
        data: dict[str, Any] = json.loads(answer.read())
    return data


def live_version(farm: SshHostFarm, host: str) -> str | None:
    link = farm[host].path("/opt/shop/current")
    return os.readlink(link).removeprefix("releases/") if link.is_symlink() else None


def ledger_payloads(project: Cli, kind: str) -> list[dict[str, Any]]:
    # Closed at once: an open SQLite connection in the test process loses its POSIX locks when a test reads the
    # database files with open(), and another process could then take the WAL away from under it.
    with closing(sqlite3.connect(project.cwd / ".relpromote" / "ledger.db")) as db:
        return [json.loads(row[0]) for row in db.execute("SELECT payload FROM entries WHERE kind = ? ORDER BY seq", (kind,))]


def build(project: Cli, source: Path, version: str, greeting: str) -> str:
    (source / "greeting.txt").write_text(greeting + "\n")
    git_run(source, "commit", "-qam", f"release {version}")
    manifest = write_manifest(project.cwd / f"{version}.yml", version)
    result = project.run("build", version, "--source", str(source), "--manifest", str(manifest), identity="alice", check=True)
    return result.stdout.strip()


def test_release_goes_live_through_all_three_environments(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    source = make_app_source(tmp_path / "app")
    digest = build(project, source, "1.0.0", "first")

    result = project.json("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert result["result"] == "succeeded" and sorted(result["switched"]) == ["qa-app-1", "qa-app-2"]
    for host in ("qa-app-1", "qa-app-2"):
        assert live_version(farm, host) == "1.0.0"
        assert farm[host].path("/opt/shop/releases/1.0.0/.release/DIGEST").read_text().strip() == digest
        assert health(farm, host)["version"] == "1.0.0"
    assert not farm["deployment-app-1"].path("/opt/shop").exists()
    assert not Path("/opt/shop/current").exists()  # nothing landed on the controller

    recorded = ledger_payloads(project, "promotion.finished")[-1]
    assert recorded["environment"] == "qa" and recorded["digest"] == digest and recorded["requested_by"] == "oscar"
    assert recorded["project_commit"] == git_run(project.cwd, "rev-parse", "HEAD").strip()
    assert {h["host"] for h in recorded["hosts"]} == {"qa-app-1", "qa-app-2"} and recorded["duration_s"] > 0

    pid_before = health(farm, "qa-app-1")["pid"]
    again = project.json("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert again["changed"] == 0 and again["switched"] == []
    assert health(farm, "qa-app-1")["pid"] == pid_before

    project.run("accept", "1.0.0", "--env", "qa", identity="quinn", check=True)
    project.run("promote", "1.0.0", "--to", "deployment", identity="oscar", check=True)
    project.run("accept", "1.0.0", "--env", "deployment", identity="quinn", check=True)
    project.run("approve", "1.0.0", "--env", "production", "--ticket", "CHG-1", "--expires", "2h", identity="carol", check=True)
    production = project.json("promote", "1.0.0", "--to", "production", identity="alice")
    assert production["approval"] == {"ticket": "CHG-1", "approver": "carol"}
    for host in farm.names:
        assert live_version(farm, host) == "1.0.0" and health(farm, host)["version"] == "1.0.0"
    board = {row["environment"]: row["current"] for row in project.json("status")["environments"]}
    assert board == {"qa": "1.0.0", "deployment": "1.0.0", "production": "1.0.0"}

    build(project, source, "1.1.0", "second")
    checked = project.json("promote", "1.1.0", "--to", "qa", "--check", identity="oscar")
    assert checked["check"] is True
    assert live_version(farm, "qa-app-1") == "1.0.0" and not farm["qa-app-1"].path("/opt/shop/releases/1.1.0").exists()
    assert len(ledger_payloads(project, "promotion.finished")) == 4  # a check records nothing

    project.run("promote", "1.1.0", "--to", "qa", identity="oscar", check=True)
    answer = health(farm, "qa-app-2")
    assert answer["version"] == "1.1.0" and answer["pid"] != pid_before
    assert farm["qa-app-2"].path("/opt/shop/releases/1.0.0").is_dir()  # kept for rollback
    assert farm["qa-app-2"].path("/opt/shop/.history").read_text().split() == ["1.0.0", "1.1.0"]

    runs = project.cwd / ".relpromote" / "runs"
    assert list(runs.glob("*/artifacts/*/command")) == [] and list(runs.glob("*/env")) == []
    assert list(runs.glob("*/artifacts/*/job_events/*.json"))  # the run's record is kept


def test_tampered_artifact_is_refused_before_any_host_is_touched(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    digest = build(project, make_app_source(tmp_path / "app"), "1.0.0", "first")
    stored = project.cwd / ".relpromote" / "store" / "sha256" / f"{digest}.tar.gz"
    os.chmod(stored, 0o644)
    stored.write_bytes(stored.read_bytes()[:-10] + b"0123456789")
    result = project.run("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert result.returncode == 2 and "was tampered with" in result.stderr
    assert not farm["qa-app-1"].path("/opt/shop").exists()
    assert ledger_payloads(project, "promotion.finished") == []
