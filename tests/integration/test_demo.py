"""The quick start's main job: `relpromote demo` runs end to end and leaves an inspectable project."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from relpromote.usecases.demo import host_addresses, stop_demo_apps
from tests.helpers import Cli


def test_demo_runs_the_whole_process_and_leaves_a_project(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    try:
        result = Cli(tmp_path).run("demo", "--workdir", str(workdir), timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        project = Cli(workdir)
        board = {row["environment"]: row["current"] for row in project.json("status")["environments"]}
        assert board == {"qa": "1.2.0", "deployment": "1.1.0", "production": "1.0.0"}
        kinds = [entry["kind"] for entry in project.json("history")["entries"]]
        for kind in ("release.built", "promotion.finished", "verdict.accepted", "approval.granted", "rollback.finished"):
            assert kind in kinds
        assert project.json("audit", "verify")["ok"] is True
        failed = [e["payload"] for e in project.json("history", "--version", "1.2.0")["entries"] if e["kind"] == "promotion.finished"]
        assert failed[-1]["result"] == "rolled_back" and failed[-1]["environment"] == "deployment"
        address = host_addresses()["prod-app-1"]
        with urllib.request.urlopen(f"http://{address}:8080/health", timeout=5) as answer:
            assert json.loads(answer.read())["version"] == "1.0.0"
        assert (workdir / "hosts" / "prod-app-2" / "opt" / "shop" / "current").resolve().name == "1.0.0"
        again = Cli(tmp_path).run("demo", "--workdir", str(tmp_path / "second"))
        assert again.returncode == 2 and "already answers: is an earlier demo still running?" in again.stderr
        stopped = Cli(tmp_path).json("demo", "--stop", "--workdir", str(workdir))
        assert stopped["stopped"] == 6
    finally:
        stop_demo_apps(workdir)
