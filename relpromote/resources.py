"""Files relpromote ships: the playbooks, roles, inventories and config a project starts from.

In an installed wheel they sit in relpromote/_bundled (see pyproject's force-include); in a source
checkout they are the repository's top-level folders.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
TEMPLATES = PACKAGE / "templates"


def bundled(name: str) -> Path:
    """`playbooks`, `roles`, `inventories`, `ansible.cfg`, `examples`, `molecule`."""
    for base in (PACKAGE / "_bundled", PACKAGE.parent):
        candidate = base / name
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"relpromote is missing its bundled {name}; reinstall it")
