"""The state `status` and `history` show: this user's checkpoint of it when the ledger's head, the config, the project's
commit and the code are exactly what it was made for (relpromote.adapters.state_checkpoint), else every entry verified
and folded again (Project.state, with the verified-signature memo) and kept as the next checkpoint.

Only these read views use a checkpoint: every command that decides reads the whole ledger and verifies it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from relpromote.adapters.config_history import config_stamp
from relpromote.adapters.project_files import config_path_from, open_ledger, sqlite_path
from relpromote.adapters.state_checkpoint import (
    CORE_MODULES,
    checkpoint_key,
    checkpoint_path,
    code_digest,
    header_digest,
    load_checkpoint,
    rows_path,
    save_checkpoint,
)
from relpromote.adapters.verified_cache import ledger_identity, memo_folder
from relpromote.ledger import Entry, LedgerStore

if TYPE_CHECKING:  # the project (its config's schema, the gates, the state) is loaded only when the memo cannot answer
    from relpromote.config import Config
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
    kept: bool = False  # the checkpoint in `path` holds this state for `key` (read from it, or just written)


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
        return ReadState(state, True, key, path, kept=True)
    entries = project.ledger.entries()
    state = project.state(remembered=True, entries=entries)
    kept = _head_of(entries) == seen.get("head")  # nothing was appended between the fingerprint and the read
    if kept:
        save_checkpoint(path, key, state)
        if shown is not None:
            save_checkpoint(rows_path(path), key, [shown(entry) for entry in entries])
    return ReadState(state, False, key, path, kept=kept)


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


# ---- the board memo: `status` (and `history`'s table) without loading the project ----
#
# Even from the checkpoint, `status` spent most of its time importing and building the config's schema (pydantic) and
# the gates. What the board shows of the config and of the folded state is kept beside the checkpoint in two more
# files of the same kind (state_checkpoint: this user's, 0600, digested, plain values only, never another class):
# - `.view`, keyed by the config file's path and content and the code: what status reads of the config (the ledger's
#   location, the path, each environment's protection and freeze windows);
# - `.board`, keyed by the checkpoint's own key (ledger head and every write, config, commit, code), the code of the
#   views and the digest of the checkpoint it was made from: what the board shows of the state.
# A command answers from them only when both keys are what it computes now; anything else (a tampered, stale or
# foreign file, an edited config, another commit, an append, other code) loads the project, verifies and folds as
# before, and writes them again. Only status and history's table read them: no command that decides does.

VIEW_SUFFIX = ".view"
BOARD_SUFFIX = ".board"
MAX_CONFIG_BYTES = 4 << 20  # as relpromote.config reads it
# What the view and the board are made by: the checkpoint's modules, the config's schema and what status shows.
BOARD_MODULES = (*CORE_MODULES, "relpromote.announce", "relpromote.secret", "relpromote.refresh", "relpromote.freeze",
                 "relpromote.yamlfile", "relpromote.project", "relpromote.adapters.project_files", "relpromote.cli.status",
                 "relpromote.usecases.status_state", "relpromote.adapters.state_checkpoint")


@dataclass
class Board:
    """What the board memo holds for the project as it is now, and the ledger store it was checked against (the locks
    are read from it live); `key` and `path` are the checkpoint's, beside which history's rows are kept."""

    view: dict[str, Any]
    facts: dict[str, Any]
    ledger: LedgerStore
    key: bytes
    path: Path



def config_view(config: Config) -> dict[str, Any]:
    """What status reads of the config, in plain values."""
    return {"project": config.project, "ledger": config.ledger.url, "group": config.group,
            "promotion_path": list(config.promotion_path),
            "environments": {name: {"protected": environment.protected,
                                    "freeze": [(w.reason, _moment_data(w.start), _moment_data(w.end), w.cron, w.timezone)
                                               for w in environment.freeze]}
                             for name, environment in config.environments.items()}}


def freeze_windows(view: dict[str, Any], environment: str) -> list[Any]:
    """An environment's freeze windows of a `config_view`, as relpromote.freeze.active_freeze reads them."""
    return [SimpleNamespace(reason=reason, start=_moment_of(start), end=_moment_of(end), cron=cron, timezone=timezone)
            for reason, start, end, cron, timezone in view["environments"][environment]["freeze"]]


def _moment_data(value: datetime | date | None) -> tuple[str, str] | None:
    if value is None:
        return None
    return ("datetime" if isinstance(value, datetime) else "date", value.isoformat())


def _moment_of(data: tuple[str, str] | None) -> datetime | date | None:
    if data is None:
        return None
    kind, text = data
    return datetime.fromisoformat(text) if kind == "datetime" else date.fromisoformat(text)


def _digest(*parts: Any) -> bytes:
    return hashlib.sha256(json.dumps(parts).encode()).digest()


def _view_path(cache: Path, config: Path) -> Path:
    return cache / (hashlib.sha256(f"view\n{config}".encode()).hexdigest()[:40] + VIEW_SUFFIX)


def _board_key(key: bytes, code: str, checkpoint: bytes | None) -> bytes:
    return _digest("board", key.hex(), code, (checkpoint or b"").hex())


def remembered_board(config_option: str | None) -> Board | None:
    """The board memo when it holds exactly what status would compute now for the project `config_option` names (the
    caller closes `Board.ledger`), else None: then load the project and `remember_board`."""
    config_path = config_path_from(config_option)
    cache = memo_folder()
    if cache is None:
        return None
    from relpromote.adapters.files import read_named_file

    try:
        data = read_named_file(config_path, MAX_CONFIG_BYTES)
        resolved = config_path.resolve()
    except Exception:  # whatever reading says, the project's own loading says it better
        return None
    sha = hashlib.sha256(data).hexdigest()
    code = code_digest(BOARD_MODULES)
    view = load_checkpoint(_view_path(cache, resolved), _digest("view", str(resolved), sha, code), kind=dict)
    if view is None or view["group"] is not None:  # a shared project folder: opening the project repairs its modes
        return None
    url = view["ledger"]
    try:
        ledger = open_ledger(url, resolved.parent)
    except Exception:
        return None
    try:
        fingerprint = getattr(ledger, "fingerprint", None)
        location = sqlite_path(url, resolved.parent)
        identity = ledger_identity(view["project"], str(location.resolve()) if location is not None else url)
        path = checkpoint_path(identity)
        if fingerprint is None or path is None:
            raise LookupError
        stamp = config_stamp(config_path)
        if stamp["sha256"] != sha:  # the config changed since it was read here
            raise LookupError
        key = checkpoint_key(identity, fingerprint(), f"{resolved}\n{sha}", stamp, code_digest())
        facts = load_checkpoint(path.with_suffix(BOARD_SUFFIX), _board_key(key, code, header_digest(path)), kind=dict)
        if facts is None:
            raise LookupError
    except Exception:
        ledger.close()
        return None
    return Board(view, facts, ledger, key, path)


def remember_board(project: Project, read: ReadState, facts: dict[str, Any]) -> None:
    """Keep the config's view and the board's `facts` (plain values) made from `read`, for `remembered_board`."""
    cache = memo_folder()
    sha = read.state.config_record.get("sha256")
    if cache is None or read.path is None or not read.kept or not isinstance(sha, str):
        return
    resolved = project.config_path.resolve()
    code = code_digest(BOARD_MODULES)
    save_checkpoint(_view_path(cache, resolved), _digest("view", str(resolved), sha, code), config_view(project.config))
    save_checkpoint(read.path.with_suffix(BOARD_SUFFIX), _board_key(read.key, code, header_digest(read.path)), facts)


def kept_rows(board: Board) -> list[ShownRow] | None:
    """What history shows of every entry, kept beside the checkpoint the board was checked against, or None."""
    kept = load_checkpoint(rows_path(board.path), board.key, kind=list)
    return None if kept is None else list(kept)
