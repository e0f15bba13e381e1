"""Where a project's files are: the config a command acts on (found upward, as git finds .git) and its ledger store.

Light on purpose (no config schema, no gates): `status` answers from its memo with only these
(relpromote.usecases.status_state); relpromote.project re-exports them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from relpromote.errors import BadInput

if TYPE_CHECKING:
    from relpromote.ledger import LedgerStore

DEFAULT_CONFIG_NAME = "relpromote.yml"


def config_path_from(option: str | None, start: Path | None = None) -> Path:
    """The config a command acts on: --config, else $RELPROMOTE_CONFIG, else relpromote.yml in the
    working directory or the nearest folder above it (as git finds .git), so any subfolder of a
    project works. Outside any project: BadInput saying where it looked and how to make one."""
    chosen = option or os.environ.get("RELPROMOTE_CONFIG")
    if chosen:
        return Path(chosen)
    try:
        here = start or Path.cwd()
    except OSError:
        raise BadInput("the working directory no longer exists; cd into a promotion project, or pass --config FILE") from None
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_CONFIG_NAME
        try:
            if candidate.is_file():
                return Path(DEFAULT_CONFIG_NAME) if folder == here and start is None else candidate
        except OSError:  # a folder above that we may not look into: keep looking further up
            continue
    raise BadInput(
        f"not inside a promotion project: no {DEFAULT_CONFIG_NAME} in {here} or any folder above it; "
        "run `relpromote init DIR` to make one, or pass --config FILE (or set RELPROMOTE_CONFIG)"
    )


def sqlite_path(url: str, root: Path) -> Path | None:
    """The ledger's file for a sqlite:/// url (relative to the project), None for any other."""
    if not url.startswith("sqlite:///"):
        return None
    path = Path(url.removeprefix("sqlite:///"))
    return path if path.is_absolute() else root / path


def open_ledger(url: str, root: Path) -> LedgerStore:
    path = sqlite_path(url, root)
    if path is not None:
        from relpromote.adapters.sqlite_ledger import SqliteLedger

        return SqliteLedger(path)
    if url.startswith(("postgresql://", "postgres://")):
        from relpromote.adapters.pg_ledger import PgLedger

        return PgLedger(url)
    raise BadInput(f"ledger url {url.split(':')[0]}:… is not supported; use sqlite:///PATH or postgresql://…")
