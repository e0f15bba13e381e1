"""The folded, verified state of a ledger as this user last computed it, kept in the user's own cache folder.

On a long ledger `status` and `history` spent most of their time reading every entry again, recomputing every
entry's hash, checking its signer and role, and folding it (10,000 entries: about 1 s). A checkpoint keeps the
result of that work — `relpromote.policy.trusted_state`'s ProjectState, the entries that do not count included —
under a key made of everything the result depends on:

- the ledger (project name and ledger location), its head as stored (number of rows, last sequence number and that
  entry's hash) and what changes with any write to it, an edit in place behind the append-only triggers or grants
  included (SQLite: the file's change time, which only root can set back; PostgreSQL: each row's version, ctid and
  xmin, digested in the database);
- the config deciding now (the validated config's content) and the project's commit (the committed configs the
  entries were made under are read from its history);
- the code that folds and verifies (the sources of the core modules).

A checkpoint is used only when every part of its key is what the command finds now; anything else (an append by
anyone, an edited config, a new commit, another relpromote) means the whole ledger is verified and folded again,
and the checkpoint replaced. `audit verify` and every command that decides (promote, approve, ...) never use it. A checkpoint is
ignored after MAX_AGE_SECONDS too.

Where, and why it cannot be planted: the same folder as the verified-signature memo
(relpromote.adapters.verified_cache: `$XDG_CACHE_HOME/relpromote/verified`, each folder 0700, the user's own,
checked); a file there that is not a regular file of this user closed to group and others, not in this format,
whose body does not match its digest, or that holds anything but the state's own classes (a restricted unpickler:
no other class is ever looked up) is ignored and replaced by the next write.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import stat
import struct
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relpromote.adapters.verified_cache import memo_folder

SUFFIX = ".state"
ROWS_SUFFIX = ".rows"
MAGIC = b"relpromote state checkpoint 1\n"
MAX_BYTES = 256 * 1024 * 1024
MAX_AGE_SECONDS = 24 * 3600
_HEADER = struct.Struct(">32sd32s")  # key, written at (epoch seconds), sha256 of the body

# The modules whose code decides what the folded state is: another version of any of them is another key.
CORE_MODULES = ("relpromote.state", "relpromote.policy", "relpromote.authority", "relpromote.ledger", "relpromote.identity",
                "relpromote.config", "relpromote.release", "relpromote.events", "relpromote.adapters.config_history",
                "relpromote.cli.views")  # what history shows of each entry (kept beside the state)

# What a checkpoint may hold: the state's own classes and plain containers, nothing else.
_ALLOWED = {
    ("builtins", "set"), ("builtins", "frozenset"),
    ("relpromote.state", "ProjectState"), ("relpromote.state", "EnvironmentState"), ("relpromote.state", "Acceptance"),
    ("relpromote.state", "Rejection"), ("relpromote.state", "Approval"), ("relpromote.state", "ParityCheck"),
    ("relpromote.release", "Release"), ("relpromote.ledger", "Problem"),
    ("relpromote.authority", "AuthorityStatus"), ("relpromote.authority", "InForce"),
}


class _StateUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a state checkpoint")
        return super().find_class(module, name)


def code_digest(modules: Sequence[str] = CORE_MODULES) -> str:
    """The sha256 of the core modules' sources, read from the package's folder (whichever of them this process imported)."""
    package = Path(__file__).resolve().parent.parent  # relpromote/
    digest = hashlib.sha256()
    for name in modules:
        try:
            data = package.joinpath(*name.split(".")[1:]).with_suffix(".py").read_bytes()
        except OSError:
            data = b""
        digest.update(struct.pack(">Q", len(data)) + data)
    return digest.hexdigest()


def checkpoint_key(ledger: str, fingerprint: dict[str, Any], config: str, stamp: dict[str, Any], code: str) -> bytes:
    """What a checkpoint is valid for: the ledger and its store's fingerprint (its head, and what changes with any write:
    the stores' `fingerprint()`), the config's content and the project's commit (`stamp`,
    relpromote.adapters.config_history.config_stamp), and the code."""
    document = {"ledger": ledger, "fingerprint": fingerprint, "config": config, "stamp": stamp, "code": code}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).digest()


def checkpoint_path(ledger: str, folder: Path | None = None) -> Path | None:
    """Where the checkpoint of `ledger` (relpromote.adapters.verified_cache.ledger_identity) lives; None when the
    user's cache folder cannot be used safely (then there is none, and none is written)."""
    cache = memo_folder(folder)
    if cache is None:
        return None
    return cache / (hashlib.sha256(ledger.encode()).hexdigest()[:40] + SUFFIX)


def rows_path(path: Path | None) -> Path | None:
    """Beside a checkpoint: what history shows of every entry up to the same head (plain values only), same key."""
    return None if path is None else path.with_suffix(ROWS_SUFFIX)


def load_checkpoint(path: Path | None, key: bytes, now: float | None = None, kind: type | None = None) -> Any:
    """The state kept in `path` for exactly `key`, or None (no file, another key, too old, not ours, not intact, not a
    `kind`: a ProjectState, or a list for the rows history shows, see `rows_path`)."""
    if path is None:
        return None
    data = _read_private(path)
    if data is None or not data.startswith(MAGIC) or len(data) < len(MAGIC) + _HEADER.size:
        return None
    stored_key, written, body_digest = _HEADER.unpack_from(data, len(MAGIC))
    body = data[len(MAGIC) + _HEADER.size:]
    moment = time.time() if now is None else now
    if stored_key != key or not (0 <= moment - written <= MAX_AGE_SECONDS) or hashlib.sha256(body).digest() != body_digest:
        return None
    try:
        state = _StateUnpickler(io.BytesIO(body)).load()
    except Exception:  # whatever a damaged or planted body raises, it is not a checkpoint
        return None
    if kind is None:  # imported here: the board memo (plain values) is read without the state's classes
        from relpromote.state import ProjectState

        kind = ProjectState
    return state if isinstance(state, kind) else None


def save_checkpoint(path: Path | None, key: bytes, state: Any) -> None:
    """Keep `state` for `key` (0600, written whole then renamed over the old one); nothing when it cannot be written."""
    if path is None:
        return
    body = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    header = MAGIC + _HEADER.pack(key, time.time(), hashlib.sha256(body).digest())
    with contextlib.suppress(OSError):
        handle, temporary = tempfile.mkstemp(prefix=".state-", dir=path.parent)  # 0600
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(header + body)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _read_private(path: Path, head: int | None = None) -> bytes | None:
    """The file's bytes (None past MAX_BYTES), or only its first `head` bytes, when it is a regular file of this
    user with no permission for group or others; None otherwise."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            return None
        if head is None and info.st_size > MAX_BYTES:
            return None
        with os.fdopen(os.dup(descriptor), "rb") as stream:
            return stream.read(MAX_BYTES + 1 if head is None else head)
    except OSError:
        return None
    finally:
        os.close(descriptor)


def header_digest(path: Path | None) -> bytes | None:
    """The body digest in the header of the checkpoint at `path` (what a memo made from that checkpoint is keyed by),
    without reading the body; None when there is no such file of this user's."""
    head = _read_private(path, len(MAGIC) + _HEADER.size) if path is not None else None
    if head is None or len(head) < len(MAGIC) + _HEADER.size or not head.startswith(MAGIC):
        return None
    digest: bytes = _HEADER.unpack_from(head, len(MAGIC))[2]
    return digest
