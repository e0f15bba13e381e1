"""Documenting a release, on the project `relpromote demo` leaves (three releases through real Ansible runs): the notes,
the status page in a real headless Chromium (its DOM's cells, and a screenshot kept as an artifact), the delivery
metrics, and the auditor's evidence pack verified after the project folder is deleted and refused after one byte
changes."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from relpromote.usecases.sandbox import stop_sandbox_apps
from tests.helpers import RELPROMOTE, REPO, Cli

ARTIFACTS = Path(os.environ.get("RELPROMOTE_TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    workdir = tmp_path_factory.mktemp("communication") / "demo"
    Cli(workdir.parent).run("demo", "--workdir", str(workdir), check=True, timeout=900)
    try:
        yield Cli(workdir)
    finally:
        if workdir.exists():
            stop_sandbox_apps(workdir)


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
