"""`notes VERSION`: the release notes of one release, from the signed record, in the project's template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relpromote.adapters.files import write_atomically
from relpromote.notes import release_notes, render_notes
from relpromote.project import Project


def notes_data(project: Project, version: str) -> dict[str, Any]:
    return release_notes(project.state(), project.ledger.entries(), version, project.config.project)


def write_notes(project: Project, version: str, fmt: str, out: Path | None) -> tuple[dict[str, Any], str]:
    """The notes as data and as text; with `out`, the text is also written there."""
    data = notes_data(project, version)
    text = render_notes(data, fmt, project.root)
    if out is not None:
        write_atomically(out, text.encode("utf-8"), "notes")
    return data, text
