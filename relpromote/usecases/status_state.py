"""The state `status` and `history` show: this user's checkpoint of it when the ledger's head, the config, the project's
commit and the code are exactly what it was made for (relpromote.adapters.state_checkpoint), else every entry verified
and folded again (Project.state, with the verified-signature memo) and kept as the next checkpoint.

Only these read views use a checkpoint: every command that decides reads the whole ledger and verifies it."""

from __future__ import annotations

from typing import Any

from relpromote.adapters.config_history import config_stamp
from relpromote.adapters.state_checkpoint import checkpoint_key, checkpoint_path, code_digest, load_checkpoint, save_checkpoint
from relpromote.ledger import Entry
from relpromote.project import Project
from relpromote.state import ProjectState


def _head_of(entries: list[Entry]) -> list[Any]:
    """What the store's fingerprint says of the head, for these entries: rows, last sequence number, last stored hash."""
    return [len(entries), entries[-1].seq, entries[-1].hash] if entries else [0, 0, ""]


def read_state(project: Project) -> tuple[ProjectState, bool]:
    """The verified, folded state of the project's ledger, and whether it came from the checkpoint."""
    fingerprint = getattr(project.ledger, "fingerprint", None)
    path = checkpoint_path(project.ledger_identity) if fingerprint is not None else None
    if fingerprint is None or path is None:
        return project.state(remembered=True), False
    stamp = config_stamp(project.config_path)
    # Taken before the entries are read: a write after it (an append, an edit) gives the next command another key.
    seen = fingerprint()
    key = checkpoint_key(project.ledger_identity, seen, f"{project.config_path.resolve()}\n{stamp['sha256']}", stamp, code_digest())
    state = load_checkpoint(path, key)
    if state is not None:
        state.config_record = stamp
        return state, True
    entries = project.ledger.entries()
    state = project.state(remembered=True, entries=entries)
    if _head_of(entries) == seen.get("head"):  # nothing was appended between the fingerprint and the read
        save_checkpoint(path, key, state)
    return state, False


def entries_to_show(project: Project, state: ProjectState, environment: str | None, version: str | None) -> list[Entry]:
    """The ledger's entries up to the state's head that may be about `environment` and `version` (a superset the caller
    filters with relpromote.ledger.entries_about), read without parsing the others when the store can."""
    texts = [text for text in (environment, version) if text is not None]
    mentioning = getattr(project.ledger, "entries_mentioning", None)
    entries = mentioning(texts) if mentioning is not None and texts else project.ledger.entries()
    return [entry for entry in entries if entry.seq <= state.head[0]]
