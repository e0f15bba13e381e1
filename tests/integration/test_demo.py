"""The quick start's main job: `relpromote demo` runs end to end and leaves an inspectable project,
also inside a git repository (a fresh clone of relpromote) and beside a demo that is still running."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from pathlib import Path

from relpromote.usecases.demo import MARKER
from relpromote.usecases.sandbox import host_addresses, recorded_sandbox, stop_sandbox_apps
from tests.helpers import Cli, git_run

# Each pytest-xdist worker starts its demos on its own ports: the suite never collides with itself,
# and a user's demo on 8080 only moves the suite's demo along.
FIRST_PORT = 8400 + 100 * int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def _health(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        data: dict[str, object] = json.loads(answer.read())
        return data


def test_demo_inside_a_git_clone_runs_the_whole_process_twice_beside_a_busy_port(tmp_path: Path) -> None:
    # A newcomer's clone: a git repository that ignores the demo folder, as relpromote's own .gitignore does.
    clone = tmp_path / "clone"
    clone.mkdir()
    git_run(clone, "init", "-q", "-b", "main")
    (clone / ".gitignore").write_text("relpromote-demo/\n")
    git_run(clone, "add", ".gitignore")
    git_run(clone, "commit", "-q", "-m", "a clone")
    workdir = clone / "relpromote-demo"
    # Someone else already serves on the first port the demo would try, on one of its addresses.
    squatter = socket.socket()
    squatter.bind((host_addresses()["prod-app-1"], FIRST_PORT))
    squatter.listen()
    try:
        result = Cli(clone).run("demo", "--port", str(FIRST_PORT), timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Traceback" not in result.stderr
        sandbox = recorded_sandbox(workdir)
        assert sandbox is not None and sandbox.port != FIRST_PORT
        assert f"port {sandbox.port}" in result.stdout  # the chosen addresses are reported
        # Its own repository; nothing was committed in the clone.
        assert (workdir / ".git").is_dir()
        assert git_run(clone, "rev-list", "--count", "HEAD").strip() == "1"
        assert git_run(workdir, "status", "--porcelain").strip() == ""

        project = Cli(workdir)
        board = {row["environment"]: row["current"] for row in project.json("status")["environments"]}
        assert board == {"qa": "1.2.0", "deployment": "1.1.0", "production": "1.0.0"}
        kinds = [entry["kind"] for entry in project.json("history")["entries"]]
        for kind in ("release.built", "promotion.finished", "verdict.accepted", "approval.granted", "rollback.finished"):
            assert kind in kinds
        assert project.json("audit", "verify")["ok"] is True
        failed = [e["payload"] for e in project.json("history", "--version", "1.2.0")["entries"] if e["kind"] == "promotion.finished"]
        assert failed[-1]["result"] == "rolled_back" and failed[-1]["environment"] == "deployment"
        assert _health(sandbox.url("prod-app-1"))["version"] == "1.0.0"
        assert (workdir / "hosts" / "prod-app-2" / "opt" / "shop" / "current").resolve().name == "1.0.0"

        # A second time, in the same place, with the first demo's apps still running: it replaces them.
        again = Cli(clone).run("demo", "--port", str(FIRST_PORT), timeout=900)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        second = recorded_sandbox(workdir)
        assert second is not None
        assert _health(second.url("qa-app-1"))["version"] == "1.2.0"

        # Stopped from inside the demo project, by the addresses it recorded.
        stopped = Cli(workdir).json("demo", "--stop", "--workdir", ".")
        assert stopped["stopped"] == 6
        for address in second.addresses.values():  # nothing answers any more (TIME_WAIT may still hold the port)
            with socket.socket() as probe:
                probe.settimeout(1)
                assert probe.connect_ex((address, second.port)) != 0, address
    finally:
        squatter.close()
        stop_sandbox_apps(workdir)


def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine\n")
    result = Cli(tmp_path).run("demo", "--workdir", str(precious))
    assert result.returncode == 2 and "is not a relpromote demo" in result.stderr
    assert (precious / "notes.txt").read_text() == "mine\n" and not (precious / MARKER).exists()
