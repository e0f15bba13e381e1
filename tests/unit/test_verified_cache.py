"""relpromote.adapters.verified_cache: the signatures a user already verified, remembered in their private folder.

What is remembered is only "this key's signature over this hash verifies". The tests plant a false fact (a signature
that does not verify) in the file, as an attacker would have to, and show where it is believed (only the user's own
0600 file, only by a memo that trusts it) and where it never is (a file of someone else's or open to others, a folder
that is not the user's own 0700 one, a memo that does not trust: the gates and audit verify).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from relpromote.adapters import verified_cache
from relpromote.adapters.verified_cache import MAGIC, SignatureMemo, fact, forget_all, open_memo, read_facts
from tests.unit.real_ledger import new_identity

LEDGER = verified_cache.ledger_identity("shop", "/srv/shop/.relpromote/ledger.db")
ALICE = new_identity()
MESSAGE = b"a" * 64
GOOD = ALICE.sign(MESSAGE)
BAD = new_identity().sign(MESSAGE)  # someone else's signature: never verifies under alice's key


@pytest.fixture
def folder() -> Iterator[Path]:
    """A private folder short enough for SSH control sockets (as relpromote.adapters.control_path wants it)."""
    base = Path(tempfile.mkdtemp(prefix="rpv", dir="/tmp"))
    try:
        yield base / "p"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def memo_path(folder: Path) -> Path:
    memo = open_memo(LEDGER, trust=True, folder=folder)
    assert memo.path is not None
    return memo.path


def plant(path: Path, *facts: bytes, mode: int = 0o600) -> None:
    """What an attacker would have to write: a fact that is false (BAD does not verify)."""
    path.write_bytes(MAGIC + b"".join(facts))
    path.chmod(mode)


def test_what_verified_is_remembered_and_read_back_from_an_0600_file_of_the_user(folder: Path) -> None:
    memo = open_memo(LEDGER, trust=True, folder=folder)
    assert memo.verify(ALICE.public_key, MESSAGE, GOOD) and not memo.verify(ALICE.public_key, MESSAGE, BAD)
    memo.save()
    assert memo.path is not None and (memo.path.stat().st_mode & 0o777) == 0o600
    assert (memo.path.parent.stat().st_mode & 0o777) == 0o700
    assert read_facts(memo.path) == {fact(ALICE.public_key, MESSAGE, GOOD)}  # only what verified: never a failure
    again = open_memo(LEDGER, trust=True, folder=folder)
    assert again.known == {fact(ALICE.public_key, MESSAGE, GOOD)}
    assert forget_all(folder) == 1 and read_facts(memo.path) == frozenset()


def test_a_fact_is_one_exact_triple() -> None:
    assert len({fact(ALICE.public_key, MESSAGE, GOOD), fact(ALICE.public_key, MESSAGE, BAD),
                fact(ALICE.public_key, b"b" * 64, GOOD), fact(new_identity().public_key, MESSAGE, GOOD)}) == 4
    # length-prefixed: moving bytes from one part to the next names another triple
    assert fact("ab", b"c", "d") != fact("a", b"bc", "d") != fact("a", b"b", "cd")


def test_the_users_own_file_is_believed_by_a_trusting_memo_only(folder: Path) -> None:
    plant(memo_path(folder), fact(ALICE.public_key, MESSAGE, BAD))
    assert open_memo(LEDGER, trust=True, folder=folder).verify(ALICE.public_key, MESSAGE, BAD)  # why the file must be the user's alone
    assert not open_memo(LEDGER, trust=False, folder=folder).verify(ALICE.public_key, MESSAGE, BAD)  # gates, audit verify


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o602, 0o660])
def test_a_file_others_could_have_written_or_read_is_ignored(folder: Path, mode: int) -> None:
    path = memo_path(folder)
    plant(path, fact(ALICE.public_key, MESSAGE, BAD), mode=mode)
    memo = open_memo(LEDGER, trust=True, folder=folder)
    assert memo.known == frozenset() and not memo.verify(ALICE.public_key, MESSAGE, BAD)
    assert memo.verify(ALICE.public_key, MESSAGE, GOOD)
    memo.save()  # replaced by the user's own file
    assert (path.stat().st_mode & 0o777) == 0o600 and read_facts(path) == {fact(ALICE.public_key, MESSAGE, GOOD)}


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_file_of_another_user_is_ignored(folder: Path) -> None:
    path = memo_path(folder)
    plant(path, fact(ALICE.public_key, MESSAGE, BAD))
    os.chown(path, 65534, 65534)
    assert not open_memo(LEDGER, trust=True, folder=folder).verify(ALICE.public_key, MESSAGE, BAD)


def test_a_link_or_a_file_in_another_format_is_ignored(folder: Path) -> None:
    path = memo_path(folder)
    elsewhere = folder.parent / "elsewhere"
    plant(elsewhere, fact(ALICE.public_key, MESSAGE, BAD))
    path.symlink_to(elsewhere)
    assert not open_memo(LEDGER, trust=True, folder=folder).verify(ALICE.public_key, MESSAGE, BAD)
    path.unlink()
    path.write_bytes(b"not a memo" + fact(ALICE.public_key, MESSAGE, BAD))
    path.chmod(0o600)
    assert read_facts(path) == frozenset()
    plant(path, fact(ALICE.public_key, MESSAGE, BAD) + b"x")  # not whole facts
    assert read_facts(path) == frozenset()


@pytest.mark.parametrize("mode", [0o755, 0o770, 0o711])
def test_a_memo_folder_others_may_enter_means_no_memo_at_all(folder: Path, mode: int) -> None:
    path = memo_path(folder)
    plant(path, fact(ALICE.public_key, MESSAGE, BAD))
    path.parent.chmod(mode)
    memo = open_memo(LEDGER, trust=True, folder=folder)
    assert memo.path is None and not memo.verify(ALICE.public_key, MESSAGE, BAD)
    memo.verify(ALICE.public_key, MESSAGE, GOOD)
    memo.save()  # writes nothing there
    assert path.read_bytes() == MAGIC + fact(ALICE.public_key, MESSAGE, BAD)


def test_an_unusable_private_folder_means_no_memo_and_no_error(folder: Path) -> None:
    folder.mkdir(mode=0o755)  # the private folder itself open to others: control_path refuses it
    folder.chmod(0o755)
    memo = open_memo(LEDGER, trust=True, folder=folder)
    assert memo.path is None and memo.verify(ALICE.public_key, MESSAGE, GOOD)
    memo.save()
    assert not (folder / verified_cache.FOLDER).exists()


def test_a_memo_is_written_only_when_what_verified_changed(folder: Path) -> None:
    memo = open_memo(LEDGER, trust=True, folder=folder)
    memo.verify(ALICE.public_key, MESSAGE, GOOD)
    memo.save()
    assert memo.path is not None
    written = memo.path.stat().st_mtime_ns
    os.utime(memo.path, ns=(written - 10**9, written - 10**9))
    same = open_memo(LEDGER, trust=True, folder=folder)
    same.verify(ALICE.public_key, MESSAGE, GOOD)
    same.save()
    assert memo.path.stat().st_mtime_ns == written - 10**9
    assert SignatureMemo(None, trust=True).verify(ALICE.public_key, MESSAGE, GOOD)
