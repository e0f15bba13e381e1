"""roles/release_deploy/library/release_unpack.py, pinned where tests/unit/test_host_release_unpack.py leaves room (issue
18's mutation score): the exchange of a tampered release for its fresh copy (renameat2, and the two renames where the
kernel or the C library has no RENAME_EXCHANGE), the error it raises naming what failed, and the entry the action
plugin calls with the host's Python (unpack_host), which must answer exactly what the module prints."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.unit.host_modules import load, make_tar, release_members, run

UNPACK = load("roles/release_deploy/library/release_unpack.py")


def two_folders(root: Path) -> tuple[Path, Path]:
    fresh, dest = root / "fresh", root / "dest"
    fresh.mkdir()
    dest.mkdir()
    (fresh / "new").write_text("n")
    (dest / "old").write_text("o")
    return fresh, dest


def swapped(root: Path, fresh: Path, dest: Path) -> bool:
    return sorted(os.listdir(dest)) == ["new"] and sorted(os.listdir(fresh)) == ["old"] and sorted(os.listdir(root)) == ["dest", "fresh"]


def test_a_failed_exchange_raises_the_kernels_error_naming_the_release(tmp_path: Path) -> None:
    _, dest = two_folders(tmp_path)
    with pytest.raises(OSError) as failed:
        UNPACK.replace(str(tmp_path / "none"), str(dest))
    assert (failed.value.errno, failed.value.strerror, failed.value.filename) == (errno.ENOENT, os.strerror(errno.ENOENT), str(dest))
    assert sorted(os.listdir(dest)) == ["old"], "a failed exchange leaves the release as it was"


def test_the_exchange_works_with_paths_relative_to_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh, dest = two_folders(tmp_path)
    monkeypatch.chdir(tmp_path)
    UNPACK.replace("fresh", "dest")
    assert swapped(tmp_path, fresh, dest)


class Libc:
    """A C library whose renameat2 fails with `code` (as a kernel or file system without RENAME_EXCHANGE answers), or
    that has no renameat2 at all (`code` None: glibc before 2.28)."""

    def __init__(self, code: int | None) -> None:
        self.code = code
        self.calls: list[tuple[Any, ...]] = []
        if code is not None:
            self.renameat2 = self._renameat2

    def _renameat2(self, *args: Any) -> int:
        self.calls.append(args)
        ctypes.set_errno(self.code or 0)
        return -1


def with_libc(monkeypatch: pytest.MonkeyPatch, libc: Libc) -> None:
    fake = SimpleNamespace(CDLL=lambda name, use_errno=False: libc, get_errno=ctypes.get_errno)
    monkeypatch.setattr(UNPACK, "ctypes", fake)


@pytest.mark.parametrize("code", [None, errno.ENOSYS, errno.EINVAL], ids=["no-renameat2", "ENOSYS", "EINVAL"])
def test_without_rename_exchange_two_renames_swap_the_folders_and_leave_nothing_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                                       code: int | None) -> None:
    fresh, dest = two_folders(tmp_path)
    libc = Libc(code)
    with_libc(monkeypatch, libc)
    UNPACK.replace(str(fresh), str(dest))
    assert swapped(tmp_path, fresh, dest)
    if code is not None:
        assert libc.calls == [(UNPACK.AT_FDCWD, os.fsencode(fresh), UNPACK.AT_FDCWD, os.fsencode(dest), UNPACK.RENAME_EXCHANGE)]


def test_an_exchange_refused_for_another_reason_is_not_done_by_renames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh, dest = two_folders(tmp_path)
    with_libc(monkeypatch, Libc(errno.EXDEV))
    with pytest.raises(OSError) as failed:
        UNPACK.replace(str(fresh), str(dest))
    assert (failed.value.errno, failed.value.filename) == (errno.EXDEV, str(dest))
    assert sorted(os.listdir(dest)) == ["old"] and sorted(os.listdir(fresh)) == ["new"]


def params_for(**given: Any) -> dict[str, Any]:
    """Every option with its default, as the action plugin checks them on the controller, then `given`."""
    return {**{name: spec.get("default") for name, spec in UNPACK.ARGUMENT_SPEC.items()}, **given}


def test_unpack_host_answers_what_the_module_prints(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    releases.mkdir()
    upload = tmp_path / "a.tar.gz"
    digest = make_tar(upload, release_members())
    args = {"src": str(upload), "dest": str(releases / "1.0.0"), "digest": digest, "version": "1.0.0", "remove_src": False}
    checked = UNPACK.unpack_host(params_for(**args), True)
    assert checked == {"changed": True, "dest": args["dest"], "digest": digest, "src_removed": False, "present": False, "uploaded": False,
                       "directories": [], "members": 5}
    assert os.listdir(releases) == [], "check mode writes nothing"
    done = UNPACK.unpack_host(params_for(**args), False)
    assert done == {**checked, "members": 5} and (releases / "1.0.0" / ".release" / "DIGEST").read_text() == digest + "\n"
    printed = {k: v for k, v in run(UNPACK, args).result.items() if k != "invocation"}
    again = UNPACK.unpack_host(params_for(**args), False)
    # AnsibleModule adds what it knows of `dest` (owner, mode, ...); everything the work said is the same.
    assert {key: printed[key] for key in again} == again and again["present"] is True and again["changed"] is False
    refused = UNPACK.unpack_host(params_for(**{**args, "digest": "0" * 64}), False)
    assert refused["failed"] is True and refused["msg"].startswith(f"{args['dest']} already exists holding digest {digest}, not {'0' * 64}")
