"""Release notes from a real signed ledger: each change's what/who/how/why, each environment's when/who, drops, templates."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from relpromote import events
from relpromote.errors import BadInput
from relpromote.notes import PROJECT_TEMPLATES, release_notes, render_notes
from tests.unit.real_ledger import Ledger

CHANGES = [
    {"id": "CH-1", "type": "enhancement", "title": "CSV export <of> invoices", "owner": "dana", "why": "Finance closes the month",
     "how": "New /export endpoint <script>alert(1)</script>", "commits": ["3f2a9c1"]},
    {"id": "CH-2", "type": "fix", "title": "Rounding of totals", "owner": "erik", "why": "Totals were off by a cent", "how": "Decimal sums"},
]


def built(ledger: Ledger, version: str, changes: list[dict[str, object]], dropped: list[dict[str, str]] | None = None) -> None:
    manifest = {"version": version, "changes": changes, **({"dropped": dropped} if dropped else {})}
    ledger.append(events.RELEASE_BUILT, "alice", {"version": version, "digest": hashlib.sha256(version.encode()).hexdigest(), "size": 1,
                                                  "manifest": manifest, "source": {"path": "/src", "commit": "a" * 40}})


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.db")
    built(ledger, "1.4.0", CHANGES)
    ledger.promote("1.4.0", "qa", actor="oscar")
    ledger.reject("1.4.0", "qa", reason="rounding breaks the VAT report")
    built(ledger, "1.4.1", [CHANGES[0]], dropped=[{"id": "CH-2", "reason": "rounding breaks the VAT report", "from_version": "1.4.0"}])
    ledger.append(events.RELEASE_REVISED, "alice", {"from_version": "1.4.0", "version": "1.4.1", "dropped": ["CH-2"]})
    ledger.promote("1.4.1", "qa", actor="oscar", evidence=[{"kind": "smoke", "file": "evidence/x.xml", "sha256": "b" * 64, "tests": 4,
                                                            "passed": 4, "failed": 0, "errors": 0, "skipped": 0, "automatic": True}])
    ledger.append(events.VERDICT_ACCEPTED, "quinn", {"version": "1.4.1", "environment": "qa", "note": "regression green", "evidence": [
        {"kind": "regression", "file": "reg.xml", "sha256": "c" * 64, "tests": 12, "passed": 12, "failed": 0, "errors": 0, "skipped": 0}]})
    ledger.promote("1.4.1", "deployment", actor="oscar")
    ledger.accept("1.4.1", "deployment")
    ledger.approve("1.4.1", "production", "carol", "2099-01-01T00:00:00.000000Z", ticket="CHG-2291")
    ledger.promote("1.4.1", "production", actor="alice")
    return ledger


def test_notes_say_what_who_how_why_and_when_for_each_environment(ledger: Ledger) -> None:
    entries = ledger.store.entries()
    notes = release_notes(ledger.state(), entries, "1.4.1", "shop")
    assert notes["digest"] == hashlib.sha256(b"1.4.1").hexdigest() and notes["revised_from"] == "1.4.0"
    assert [c["id"] for c in notes["changes"]] == ["CH-1"] and notes["changes"][0]["owner"] == "dana"
    assert notes["dropped"] == [{"id": "CH-2", "reason": "rounding breaks the VAT report", "from_version": "1.4.0",
                                 "title": "Rounding of totals", "owner": "erik"}]
    stages = {s["environment"]: s for s in notes["environments"]}
    times = {e.seq: e.recorded_at for e in entries}
    assert stages["qa"]["promoted_by"] == "oscar" and stages["qa"]["reached_at"] == times[6]
    assert stages["qa"]["acceptances"][0]["evidence"][0]["kind"] == "regression"
    assert stages["production"]["approvals"] == [{"at": times[10], "by": "carol", "ticket": "CHG-2291", "expires_at": "2099-01-01T00:00:00.000000Z"}]
    assert stages["production"]["promoted_by"] == "alice" and stages["production"]["live"] and notes["live_in"] == ["qa", "deployment", "production"]
    rejected = release_notes(ledger.state(), entries, "1.4.0")
    assert rejected["environments"][0]["rejections"][0]["reason"] == "rounding breaks the VAT report" and "rejected" in rejected["blocked"]

    markdown = render_notes(notes, "md")
    for text in ("# Release 1.4.1 of shop", "### CH-1: CSV export \\<of\\> invoices", "- **Owner:** dana", "- **Why:** Finance closes the month",
                 "Approved by carol", "ticket CHG-2291", "Accepted by quinn", "regression (reg.xml): 12 passed", "promoted by alice",
                 "**CH-2** (Rounding of totals): dropped from 1.4.0 because rounding breaks the VAT report", notes["digest"]):
        assert text in markdown, text
    html = render_notes(notes, "html")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # autoescaped
    assert 'data-change="CH-1"' in html and "CHG-2291" in html


def test_a_project_template_overrides_the_shipped_one(ledger: Ledger, tmp_path: Path) -> None:
    notes = release_notes(ledger.state(), ledger.store.entries(), "1.4.1", "shop")
    folder = tmp_path / "proj" / PROJECT_TEMPLATES
    folder.mkdir(parents=True)
    (folder / "notes.md.j2").write_text("{{ notes.version }}:{% for c in notes.changes %} {{ c.id }}/{{ c.owner }}{% endfor %}\n")
    assert render_notes(notes, "md", tmp_path / "proj") == "1.4.1: CH-1/dana"  # trim_blocks: a block tag ending a line eats its newline
    assert "<!DOCTYPE html>" in render_notes(notes, "html", tmp_path / "proj")  # html not overridden: the shipped one
    (folder / "notes.md.j2").write_text("{{ notes.no_such_field }}\n")
    with pytest.raises(BadInput, match="cannot be rendered"):
        render_notes(notes, "md", tmp_path / "proj")
    with pytest.raises(BadInput, match="--format"):
        render_notes(notes, "pdf")


def test_free_text_cannot_forge_lines_of_the_markdown_notes(tmp_path: Path) -> None:
    """A note, a reason or a manifest field is data: in the Markdown notes (the announcement's text part) it stays
    inside its own line, so QA's note cannot add an approval line or a production stage, nor raw HTML or a link."""
    ledger = Ledger(tmp_path / "ledger.db")
    forged = "\n- Approved by carol on 2026-12-01 01:30 UTC under ticket CHG-1.\n\n### production (live now)\n"
    built(ledger, "2.0.0", [{**CHANGES[1], "how": "Decimal sums\n# Release 9.9.9\n<img src=x onerror=alert(2)> [x](javascript:alert(3))"}])
    ledger.promote("2.0.0", "qa", actor="oscar")
    ledger.append(events.VERDICT_ACCEPTED, "quinn", {"version": "2.0.0", "environment": "qa", "note": "green" + forged, "evidence": []})
    ledger.reject("2.0.0", "qa", reason="too familiar" + forged)
    markdown = render_notes(release_notes(ledger.state(), ledger.store.entries(), "2.0.0", "shop"), "md")
    lines = markdown.splitlines()
    assert not [line for line in lines if line.startswith("- Approved by")], markdown
    assert [line for line in lines if line.startswith("#")] == [
        "# Release 2.0.0 of shop", "## Changes", "### CH-2: Rounding of totals", "## Through the environments",
        "### qa (live now)", "### deployment", "### production"], markdown
    assert "<img" not in markdown.replace("\\<img", "") and "\\<img src=x onerror=alert(2)\\>" in markdown  # not raw HTML
    assert "](javascript:" not in markdown.replace("\\](javascript:", "")  # shown as written, not a link
    assert "Decimal sums" in markdown and "too familiar" in markdown and "green" in markdown  # the text itself stays


def test_a_project_template_cannot_reach_python(ledger: Ledger, tmp_path: Path) -> None:
    """A template in the project's templates/ is read by whoever runs `notes`, `status --html` or `announce` (on a shared
    jump host, another login): it fills in data, it cannot run code as that reader."""
    notes = release_notes(ledger.state(), ledger.store.entries(), "1.4.1", "shop")
    folder = tmp_path / "proj" / PROJECT_TEMPLATES
    folder.mkdir(parents=True)
    marker = tmp_path / "ran"
    for escape in ("{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}",
                   "{{ ''.__class__.__mro__[1].__subclasses__() }}"):
        (folder / "notes.md.j2").write_text(escape + "\n")
        with pytest.raises(BadInput, match="cannot be rendered"):
            render_notes(notes, "md", tmp_path / "proj")
    assert not marker.exists()
