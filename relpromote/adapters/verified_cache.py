"""The signatures this user already verified on a ledger, remembered in the user's own cache folder.

On a long ledger most of `status` and `history` went into checking every entry's ed25519 signature
again at every command (10,000 entries: about 1 s of a 2-core machine). What this module keeps is the
one fact such a check establishes — "this signature by this key over this hash verifies" — and
nothing else: every other check of every entry (its sequence number, its link to the entry before, its
hash recomputed from its content, the signer's key for the name it records, the signer's role under
the committed config it was made under, the authority) still runs at every command, so an entry edited
after its signature was remembered has another hash, fails its link or its hash check, and never
counts; a row whose signature column was changed asks about another signature, which is checked.

Where, and why it cannot be forged by whoever may write the project: one file per ledger (named by the
sha256 of the project's name and the ledger's location) in `verified/` of the user's cache folder
(`$XDG_CACHE_HOME/relpromote`, else `~/.cache/relpromote`; each folder mode 0700, owned by the user, checked
before use), outside the project and outside shared temporary folders. A file there that is not a regular file
of this user with no permission for group or others is ignored (and replaced by the next write); a
folder that is not the user's own 0700 folder means no memo at all: everything is verified, nothing is
written. Deleting the files changes no answer, only the time.

Only `status` and `history` read it (`trust=True`); every other command verifies every signature and
records what it verified (`trust=False`), so the next `status` after a promotion is fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

from relpromote.adapters.control_path import check_folder, private_folder
from relpromote.errors import BadInput
from relpromote.identity import verify_signature

FOLDER = "verified"
SUFFIX = ".sigs"
MAGIC = b"relpromote verified signatures 1\n"
FACT_SIZE = 32
MAX_BYTES = 64 * 1024 * 1024  # two million remembered signatures; a bigger file is not ours

SignatureCheck = Callable[[str, bytes, str], bool]


def fact(public_key: str, message: bytes, signature: str) -> bytes:
    """The sha256 of one (key, message, signature) triple, each part length-prefixed so no two triples share it."""
    digest = hashlib.sha256()
    for part in (public_key.encode(), message, signature.encode()):
        digest.update(struct.pack(">Q", len(part)))
        digest.update(part)
    return digest.digest()


class SignatureMemo:
    """`verify` answers as relpromote.identity.verify_signature does; with `trust`, a signature this user verified
    before (found in `known`) is not verified again. `save` keeps what this command verified for the next one."""

    def __init__(self, path: Path | None, known: frozenset[bytes] = frozenset(), *, trust: bool) -> None:
        self.path = path
        self.known = known
        self.trust = trust
        self.used: set[bytes] = set()  # the signatures of this ledger that verify: what the file will hold

    def verify(self, public_key: str, message: bytes, signature: str) -> bool:
        key = fact(public_key, message, signature)
        if self.trust and key in self.known:
            self.used.add(key)
            return True
        if not verify_signature(public_key, message, signature):
            return False
        self.used.add(key)
        return True

    def save(self) -> None:
        """Write what verified (only when it differs from the file: new entries, or entries no longer in the ledger)."""
        if self.path is None or not self.used or self.used == self.known:
            return
        with contextlib.suppress(OSError):
            handle, temporary = tempfile.mkstemp(prefix=".sigs-", dir=self.path.parent)  # 0600
            try:
                with os.fdopen(handle, "wb") as stream:
                    stream.write(MAGIC + b"".join(sorted(self.used)))
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            self.known = frozenset(self.used)


def ledger_identity(project: str, location: str) -> str:
    """What names one ledger: the project's name and where its ledger is (a file's absolute path or a database URL)."""
    return f"{project}\n{location}"


def open_memo(ledger: str, *, trust: bool, folder: Path | None = None) -> SignatureMemo:
    """The memo of `ledger` (see ledger_identity) in this user's private folder; an empty one that is never written
    when that folder cannot be used safely."""
    cache = memo_folder(folder)
    if cache is None:
        return SignatureMemo(None, trust=trust)
    path = cache / (hashlib.sha256(ledger.encode()).hexdigest()[:40] + SUFFIX)
    return SignatureMemo(path, read_facts(path), trust=trust)  # read even without trust: written only when it changes


def cache_folder() -> Path:
    """This user's cache folder for relpromote: `$XDG_CACHE_HOME/relpromote`, else `~/.cache/relpromote`. In the home,
    not in /tmp: it outlives commands, and nothing of relpromote's outlives a run in a shared temporary folder."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "relpromote"


def memo_folder(folder: Path | None = None) -> Path | None:
    """`verified/` in this user's cache folder (or in the private folder `folder`), each made 0700 and checked; None
    when one is not this user's own (or the home cannot hold it: a read-only home means no memo, never an error)."""
    try:
        if folder is None:
            base = cache_folder()
            base.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(base, 0o700)
            check_folder(base)
        else:
            base = private_folder(folder)
        cache = base / FOLDER
        with contextlib.suppress(FileExistsError):
            os.mkdir(cache, 0o700)
        check_folder(cache)
    except (BadInput, OSError):
        return None
    return cache


def read_facts(path: Path) -> frozenset[bytes]:
    """The remembered signatures in `path`; none when it is not a regular file of this user closed to everyone
    else (another user's file, or one others could have written), or not in this format."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return frozenset()
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077 or info.st_size > MAX_BYTES:
            return frozenset()
        with os.fdopen(os.dup(descriptor), "rb") as stream:
            data = stream.read(MAX_BYTES + 1)
    except OSError:
        return frozenset()
    finally:
        os.close(descriptor)
    body = data[len(MAGIC):]
    if not data.startswith(MAGIC) or len(body) % FACT_SIZE:
        return frozenset()
    return frozenset(body[start:start + FACT_SIZE] for start in range(0, len(body), FACT_SIZE))


def forget_all(folder: Path | None = None) -> int:
    """Remove every remembered signature and state checkpoint of this user (the next command verifies everything
    again); how many files."""
    cache = memo_folder(folder)
    if cache is None:
        return 0
    removed = 0
    # and the checkpoints (adapters.state_checkpoint) and the board memo made of them (usecases.status_state)
    for path in [*cache.glob(f"*{SUFFIX}"), *cache.glob("*.state"), *cache.glob("*.rows"), *cache.glob("*.view"), *cache.glob("*.board")]:
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed
