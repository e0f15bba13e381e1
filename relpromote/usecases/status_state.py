"""The state `status` and `history` show: this user's checkpoint of it when the ledger's head, the config, the project's
commit and the code are exactly what it was made for (relpromote.adapters.state_checkpoint), else every entry verified
and folded again (Project.state, with the verified-signature memo) and kept as the next checkpoint.

Only these read views use a checkpoint: every command that decides reads the whole ledger and verifies it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relpromote.adapters.config_history import config_stamp
from relpromote.adapters.state_checkpoint import (
    checkpoint_key,
    checkpoint_path,
    code_digest,
    load_checkpoint,
    rows_path,
    save_checkpoint,
)
from relpromote.ledger import Entry
from relpromote.project import Project
from relpromote.state import ProjectState


def _head_of(entries: list[Entry]) -> list[Any]:
    """What the store's fingerprint says of the head, for these entries: rows, last sequence number, last stored hash."""
    return [len(entries), entries[-1].seq, entries[-1].hash] if entries else [0, 0, ""]


@dataclass(frozen=True)
class ReadState:
    state: ProjectState
    from_checkpoint: bool
    key: bytes = b""  # the checkpoint's key (empty: the store keeps none)
    path: Path | None = None


# What history shows of an entry, made by the caller's function (relpromote.cli.views), plain values only.
ShownRow = tuple[Any, ...]


def read_state(project: Project, shown: Callable[[Entry], ShownRow] | None = None) -> ReadState:
    """The verified, folded state of the project's ledger, whether it came from the checkpoint, and the checkpoint's key.
    With `shown`, what history shows of each entry is kept beside the checkpoint when the entries are read anyway."""
    fingerprint = getattr(project.ledger, "fingerprint", None)
    path = checkpoint_path(project.ledger_identity) if fingerprint is not None else None
    if fingerprint is None or path is None:
        return ReadState(project.state(remembered=True), False)
    stamp = config_stamp(project.config_path)
    # Taken before the entries are read: a write after it (an append, an edit) gives the next command another key.
    seen = fingerprint()
    key = checkpoint_key(project.ledger_identity, seen, f"{project.config_path.resolve()}\n{stamp['sha256']}", stamp, code_digest())
    state = load_checkpoint(path, key)
    if state is not None:
        state.config_record = stamp
        return ReadState(state, True, key, path)
    entries = project.ledger.entries()
    state = project.state(remembered=True, entries=entries)
    if _head_of(entries) == seen.get("head"):  # nothing was appended between the fingerprint and the read
        save_checkpoint(path, key, state)
        if shown is not None:
            save_checkpoint(rows_path(path), key, [shown(entry) for entry in entries])
    return ReadState(state, False, key, path)


def shown_rows(project: Project, read: ReadState, shown: Callable[[Entry], ShownRow]) -> list[ShownRow]:
    """`shown` of every entry up to the state's head: kept beside the checkpoint for the same key, else made from the
    entries (and kept)."""
    if read.path is not None:
        kept = load_checkpoint(rows_path(read.path), read.key, kind=list)
        if kept is not None:
            return list(kept)
    rows = [shown(entry) for entry in project.ledger.entries() if entry.seq <= read.state.head[0]]
    if read.path is not None:
        save_checkpoint(rows_path(read.path), read.key, rows)
    return rows


def entries_to_show(project: Project, state: ProjectState, environment: str | None, version: str | None) -> list[Entry]:
    """The ledger's entries up to the state's head that may be about `environment` and `version` (a superset the caller
    filters with relpromote.ledger.entries_about), read without parsing the others when the store can."""
    texts = [text for text in (environment, version) if text is not None]
    mentioning = getattr(project.ledger, "entries_mentioning", None)
    entries = mentioning(texts) if mentioning is not None and texts else project.ledger.entries()
    return [entry for entry in entries if entry.seq <= state.head[0]]
