"""`status --html FILE`: the status board as one self-contained static page (no network at view time)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from relpromote.adapters.files import write_atomically
from relpromote.board import board
from relpromote.errors import BadInput
from relpromote.freeze import active_freeze
from relpromote.ledger import utc_now
from relpromote.metrics import DEFINITIONS, Period, delivery_metrics
from relpromote.notes import counted, release_notes, template_environment
from relpromote.project import Project
from relpromote.state import ProjectState
from relpromote.usecases.metrics import DEFAULT_PERIOD, commit_time

BOARD_TEMPLATE = "board.html.j2"


def board_page(project: Project, state: ProjectState, rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], str]:
    """The board's data and its page, from `relpromote status`'s rows."""
    import jinja2

    now = utc_now()
    entries = counted(state, project.ledger.entries())
    names = [str(row["environment"]) for row in rows]
    locks = {}
    for name in names:
        held = project.ledger.current(name)
        locks[name] = held.as_data() if held is not None else None
    freezes = {}
    for name in names:
        window = active_freeze(project.config.environment(name).freeze, now)
        freezes[name] = window.reason if window is not None else None
    protected = {name: project.config.environment(name).protected for name in names}
    data = board(project.config.project, state, entries, rows, locks, freezes, protected, now)
    period = Period(now - DEFAULT_PERIOD, now)
    data["metrics"] = [delivery_metrics(entries, name, period, commit_time) for name in names]
    data["definitions"] = DEFINITIONS
    data["notes"] = [release_notes(state, entries, version, project.config.project) for version in data["live_releases"]]
    try:
        page = template_environment(project.root, ("status", "notes")).get_template(BOARD_TEMPLATE).render(board=data)
    except jinja2.TemplateError as exc:
        raise BadInput(f"the status page template cannot be rendered: {exc}; fix templates/status/{BOARD_TEMPLATE}") from None
    return data, str(page)


def write_board(project: Project, state: ProjectState, rows: Sequence[Mapping[str, Any]], out: Path) -> Path:
    _, page = board_page(project, state, rows)
    return write_atomically(out, page.encode("utf-8"), "status --html")
