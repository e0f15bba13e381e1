"""The quick start's main job, `relpromote demo`, as a newcomer runs it: inside a git repository (a fresh clone of
relpromote), beside a port someone else holds, then a second time beside the first demo's running apps. The project it
leaves (three releases through real Ansible runs) is then read the way the release manager documents a release: the
notes, the status page in a real headless Chromium (its DOM's cells, and a screenshot kept as an artifact), the
delivery metrics, and the auditor's evidence pack verified after the project folder is deleted and refused after one
byte changes. One demo serves the whole module (tests run in file order; the last one deletes the project)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from relpromote.usecases.demo import MARKER
from relpromote.usecases.sandbox import host_addresses, recorded_sandbox, stop_sandbox_apps
from tests.helpers import NO_GIT_IDENTITY, RELPROMOTE, REPO, Cli, git_run

ARTIFACTS = Path(os.environ.get("RELPROMOTE_TEST_ARTIFACTS", REPO / "test-artifacts"))
# Each pytest-xdist worker starts its demos on its own ports: the suite never collides with itself,
# and a user's demo on 8080 only moves the suite's demo along.
FIRST_PORT = 8400 + 100 * int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def _health(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        data: dict[str, object] = json.loads(answer.read())
        return data


@dataclass
class Newcomer:
    clone: Path
    result: subprocess.CompletedProcess[str]

    @property
    def workdir(self) -> Path:
        return self.clone / "relpromote-demo"


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Newcomer]:
    # A newcomer's clone: a git repository that ignores the demo folder, as relpromote's own .gitignore does.
    clone = tmp_path_factory.mktemp("newcomer") / "my clone"  # a path with a space, as in many home folders
    clone.mkdir()
    git_run(clone, "init", "-q", "-b", "main")
    (clone / ".gitignore").write_text("relpromote-demo/\n")
    git_run(clone, "add", ".gitignore")
    git_run(clone, "commit", "-q", "-m", "a clone")
    # Someone else already serves on the first port the demo would try, on one of its addresses, the whole time.
    squatter = socket.socket()
    squatter.bind((host_addresses()["prod-app-1"], FIRST_PORT))
    squatter.listen()
    try:
        # on a machine where git knows nobody yet
        yield Newcomer(clone, Cli(clone, env=NO_GIT_IDENTITY).run("demo", "--port", str(FIRST_PORT), timeout=900))
    finally:
        squatter.close()
        if (clone / "relpromote-demo").exists():
            stop_sandbox_apps(clone / "relpromote-demo")


@pytest.fixture
def demo(newcomer: Newcomer) -> Cli:
    """The project the newcomer's demo left."""
    assert newcomer.result.returncode == 0, newcomer.result.stdout[-3000:] + newcomer.result.stderr[-3000:]
    return Cli(newcomer.workdir)


def test_demo_inside_a_git_clone_beside_a_busy_port_runs_the_whole_process(newcomer: Newcomer) -> None:
    result, clone, workdir = newcomer.result, newcomer.clone, newcomer.workdir
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


def test_notes_say_how_why_who_and_when(demo: Cli) -> None:
    markdown = demo.run("notes", "1.0.0", check=True).stdout
    for text in ("# Release 1.0.0 of shop", "### CH-100: ", "- **Owner:** dana", "- **Why:** Operations must see which release each host runs",
                 "- **How:** New /health endpoint", "Reached qa on", "promoted by oscar", "Accepted by quinn", "evidence unit (unit.xml)",
                 "Approved by carol", "under ticket CHG-1001", "### production (live now)", "Reached production on", "promoted by alice"):
        assert text in markdown, text
    withdrawn = demo.run("notes", "1.1.0", check=True).stdout
    assert "Rolled back on" in withdrawn and "to 1.0.0: customers report checkout errors after 1.1.0" in withdrawn
    page = demo.cwd / "notes-1.2.0.html"
    data = demo.json("notes", "1.2.0", "--format", "html", "--out", str(page))
    assert data["release_notes"]["blocked"].startswith("failed verification") and page.read_text().startswith("<!DOCTYPE html>")


class Cells(HTMLParser):
    """The text of every element that has data-field, by (environment, field); and the timeline's rows."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str], str] = {}
        self.timeline_rows = 0
        self.notes: list[str] = []
        self._open: list[tuple[str, tuple[str, str] | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        key = (str(attributes["data-environment"]), str(attributes["data-field"])) if "data-field" in attributes else None
        if tag == "tr" and "data-seq" in attributes:
            self.timeline_rows += 1
        if tag == "article" and attributes.get("class") == "release-notes":
            self.notes.append(str(attributes["data-version"]))
        if tag not in ("br", "meta"):
            self._open.append((tag, key))
        if key is not None:
            self.cells[key] = ""

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            opened, _ = self._open.pop()
            if opened == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, key in self._open:
            if key is not None:
                self.cells[key] += data


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is not installed: run scripts/bootstrap.sh --system (apt-get install chromium)")
    return found


def headless(*args: str) -> subprocess.CompletedProcess[str]:
    # --no-sandbox: Chromium refuses to run as root with its sandbox; the page is our own static file.
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def test_the_status_page_renders_in_a_real_browser(demo: Cli, tmp_path: Path) -> None:
    page = tmp_path / "status.html"
    status = demo.json("status", "--html", str(page))
    assert [row["current"] for row in status["environments"]] == ["1.2.0", "1.1.0", "1.0.0"]
    html = page.read_text()
    assert "<script" not in html and "<link" not in html and " src=" not in html and "url(" not in html  # nothing fetched at view time

    dom = headless("--dump-dom", page.as_uri()).stdout
    cells = Cells()
    cells.feed(dom)
    cell: dict[tuple[str, str], str] = {key: " ".join(text.split()) for key, text in cells.cells.items()}
    assert cell[("production", "release")].startswith("1.0.0") and cell[("deployment", "release")].startswith("1.1.0")
    assert cell[("qa", "release")].startswith("1.2.0")
    assert cell[("production", "by")] == "alice" and cell[("qa", "by")] == "oscar"
    assert cell[("production", "previous")] == "1.1.0" and cell[("deployment", "previous")] == "1.0.0"
    assert cell[("production", "since")].endswith("UTC") and cell[("production", "lock")] == "free"
    assert cell[("production", "freeze")] == "open" and cell[("production", "in_doubt")] == "none"
    assert "may not be promoted again: 1.2.0 failed verification" in cell[("qa", "attention")]
    assert cell[("production", "change_failure_rate")] == "50% (1 of 2)"  # 1.1.0 went live and was rolled back by hand
    assert cells.timeline_rows == 10  # every promotion and rollback of the demo, checks aside
    assert cells.notes == ["1.2.0", "1.1.0", "1.0.0"]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "status-board.png"
    screenshot.unlink(missing_ok=True)
    headless("--window-size=1400,1800", f"--screenshot={screenshot}", page.as_uri())
    data = screenshot.read_bytes()
    width, height = struct.unpack(">II", data[16:24])
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and (width, height) == (1400, 1800) and len(data) > 50_000


def test_metrics_from_the_ledger(demo: Cli) -> None:
    figures = demo.json("metrics", "--env", "production", "--since", "1d")["environments"][0]
    assert figures["deployment_frequency"]["deployments"] == 2
    assert figures["change_failure_rate"]["failed"] == 1 and figures["change_failure_rate"]["rate"] == 0.5
    assert [o["what"] for o in figures["time_to_restore"]["open"]] == ["rollback"]
    assert all(figures[name]["definition"] for name in ("deployment_frequency", "lead_time", "change_failure_rate", "time_to_restore"))


def test_demo_a_second_time_replaces_the_first_and_stops_by_the_addresses_it_recorded(newcomer: Newcomer) -> None:
    # A second time, in the same place, with the first demo's apps still running: it replaces them.
    again = Cli(newcomer.clone).run("demo", "--port", str(FIRST_PORT), timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    second = recorded_sandbox(newcomer.workdir)
    assert second is not None
    assert _health(second.url("qa-app-1"))["version"] == "1.2.0"
    assert Cli(newcomer.workdir).json("audit", "verify")["ok"] is True

    # Stopped from inside the demo project, by the addresses it recorded.
    stopped = Cli(newcomer.workdir).json("demo", "--stop", "--workdir", ".")
    assert stopped["stopped"] == 6
    for address in second.addresses.values():  # nothing answers any more (TIME_WAIT may still hold the port)
        with socket.socket() as probe:
            probe.settimeout(1)
            assert probe.connect_ex((address, second.port)) != 0, address


def verify(cwd: Path, pack: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELPROMOTE_")}
    return subprocess.run([RELPROMOTE, "--json", "evidence", "verify", str(pack), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_evidence_pack_verifies_without_the_project_and_refuses_a_changed_byte(demo: Cli, tmp_path: Path) -> None:
    pack = tmp_path / "evidence-1.0.0.tar"
    made = demo.json("evidence", "1.0.0", "--env", "production", "--out", str(pack))
    assert made["evidence_files"] == 3 and made["digest"] == demo.json("show", "1.0.0")["digest"]
    refused = demo.run("evidence", "1.2.0", "--env", "production", "--out", str(tmp_path / "never.tar"))
    assert refused.returncode == 2 and "never went live in production" in refused.stderr

    stop_sandbox_apps(demo.cwd)
    shutil.rmtree(demo.cwd)  # the auditor has the pack and nothing else
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    result = verify(elsewhere, pack)
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    facts = "\n".join(report["facts"])
    assert report["verified"] and report["version"] == "1.0.0" and report["environment"] == "production"
    assert "approved for production by carol" in facts and "ticket CHG-1001" in facts and "accepted in qa by quinn" in facts
    assert "promoted to production by alice" in facts and "prod-app-1 -→1.0.0" in facts
    assert verify(elsewhere, pack, "--expect-head", report["head"]).returncode == 0

    data = pack.read_bytes()
    for offset in (5, 700, len(data) // 2, len(data) - 600):
        changed = elsewhere / f"changed-{offset}.tar"
        altered = bytearray(data)
        altered[offset] ^= 0x20
        changed.write_bytes(bytes(altered))
        result = verify(elsewhere, changed)
        assert result.returncode == 1 and json.loads(result.stdout)["ok"] is False, offset


def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine\n")
    result = Cli(tmp_path).run("demo", "--workdir", str(precious))
    assert result.returncode == 2 and "is not a relpromote demo" in result.stderr
    assert (precious / "notes.txt").read_text() == "mine\n" and not (precious / MARKER).exists()
