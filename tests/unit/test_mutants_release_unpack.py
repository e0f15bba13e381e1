"""roles/release_deploy/library/release_unpack.py, pinned where tests/unit/test_host_release_unpack.py leaves room (issue
18's mutation score): the exchange of a tampered release for its fresh copy (renameat2, and the two renames where the
kernel or the C library has no RENAME_EXCHANGE), the error it raises naming what failed; a pull that cannot start (a
server without the artifact, one that never answers, a CA file that cannot be read), every field of its result; and the
entry the action plugin calls with the host's Python (unpack_host), which must answer exactly what the module prints."""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import http.server
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.unit.host_modules import NET, load, make_tar, release_members, run

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


@pytest.fixture
def listening() -> Iterator[str]:
    """http://address:port of a socket that takes connections and never answers (the kernel completes the handshake)."""
    with socket.socket() as server:
        server.bind((f"{NET}.1", 0))
        server.listen(8)
        yield f"http://{NET}.1:{server.getsockname()[1]}"


def pull(tmp_path: Path, url: str, **args: Any) -> dict[str, Any]:
    dest = tmp_path / "releases" / "1.0.0"
    dest.parent.mkdir(parents=True, exist_ok=True)
    result = run(UNPACK, {"dest": str(dest), "digest": "ab" * 32, "version": "1.0.0", "url": url, **args}).result
    assert not dest.exists() and os.listdir(dest.parent) == [], "nothing unpacked, nothing left"
    return {key: value for key, value in result.items() if key != "invocation"}


def test_a_server_that_does_not_serve_the_artifact_fails_with_every_field_saying_nothing_changed(tmp_path: Path) -> None:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer((f"{NET}.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        url = f"http://{NET}.1:{server.server_address[1]}/sha256/{'ab' * 32}.tar.gz"
        result = pull(tmp_path, url)
    finally:
        server.shutdown()
        server.server_close()
    dest = str(tmp_path / "releases" / "1.0.0")
    assert result == {"failed": True, "msg": f"could not download the artifact from {url}: HTTP Error 404: File not found",
                      "downloaded": False, "changed": False, "dest": dest, "digest": "ab" * 32, "src_removed": False, "present": False,
                      "uploaded": False, "directories": []}


def test_a_server_that_never_answers_is_given_up_after_url_timeout(tmp_path: Path, listening: str) -> None:
    started = time.monotonic()
    result = pull(tmp_path, listening + "/a.tar.gz", url_timeout=1)
    assert time.monotonic() - started < 20, "the download waits url_timeout seconds, not forever"
    assert result["failed"] is True and result["msg"] == f"could not download the artifact from {listening}/a.tar.gz: timed out"


def test_a_ca_file_that_cannot_be_read_is_named_before_any_connection(tmp_path: Path, listening: str) -> None:
    url = listening.replace("http://", "https://") + "/a.tar.gz"
    missing = tmp_path / "no-ca.pem"
    result = pull(tmp_path, url, ca_file=str(missing), url_timeout=1)
    assert result["failed"] is True and result["downloaded"] is False
    assert result["msg"].startswith(f"could not download the artifact from {url}: the CA file {missing} cannot be used: "), result["msg"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on this test's loopback address, and its URL."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer((f"{NET}.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield folder, f"http://{NET}.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_corrupted_download_fails_saying_nothing_changed_and_naming_both_digests(tmp_path: Path, served: tuple[Path, str]) -> None:
    folder, url = served
    digest = make_tar(tmp_path / "a.tar.gz", release_members())
    data = bytearray((tmp_path / "a.tar.gz").read_bytes())
    data[-10] ^= 0xFF
    (folder / "a.tar.gz").write_bytes(bytes(data))
    dest = tmp_path / "releases" / "1.0.0"
    dest.parent.mkdir()
    result = run(UNPACK, {"dest": str(dest), "digest": digest, "version": "1.0.0", "url": url + "/a.tar.gz"}).result
    assert (result["failed"], result["changed"], result["downloaded"], result["expected"]) == (True, False, False, digest), result

    assert result["actual"] == hashlib.sha256(bytes(data)).hexdigest()
    assert not dest.exists() and os.listdir(dest.parent) == []


def test_a_download_cut_off_names_no_digest_it_never_read_whole(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind((f"{NET}.1", 0))
        server.listen(1)

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"\x1f\x8b" + b"\0" * 100)
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset: the transfer breaks

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        result = pull(tmp_path, f"http://{NET}.1:{server.getsockname()[1]}/a.tar.gz", url_timeout=5)
        thread.join(5)
    assert result["failed"] is True and result["changed"] is False and result["downloaded"] is False, result
    assert "expected" not in result and "actual" not in result, (result.get("msg"), result.get("actual"))


def test_an_upload_on_the_host_is_used_and_the_server_never_asked(tmp_path: Path, listening: str) -> None:
    releases = tmp_path / "releases"
    releases.mkdir()
    upload = tmp_path / "a.tar.gz"
    digest = make_tar(upload, release_members())
    nowhere = listening + "/never.tar.gz"  # asked, it would hang until url_timeout and fail
    args = {"src": str(upload), "dest": str(releases / "1.0.0"), "digest": digest, "version": "1.0.0", "url": nowhere, "url_timeout": 1,
            "remove_src": False}
    outcome = run(UNPACK, args)
    assert not outcome.failed and "downloaded" not in outcome.result, outcome.result
    (releases / "1.0.0" / "app.py").write_text("tampered")
    repaired = run(UNPACK, args)
    assert not repaired.failed and repaired["repaired"] is True and "downloaded" not in repaired.result, repaired.result


def test_check_mode_says_it_would_download_when_a_server_is_given(tmp_path: Path) -> None:
    dest = tmp_path / "1.0.0"
    outcome = run(UNPACK, {"dest": str(dest), "digest": "a" * 64, "url": "http://192.0.2.1/a.tar.gz"}, check=True)
    assert not outcome.failed and outcome.msg == f"would download and unpack {dest} (nothing is transferred in check mode)"


def test_a_refused_upload_is_a_change_because_it_was_removed_and_names_its_sha256(tmp_path: Path) -> None:
    upload = tmp_path / "a.tar.gz"
    make_tar(upload, release_members())

    actual = hashlib.sha256(upload.read_bytes()).hexdigest()
    outcome = run(UNPACK, {"src": str(upload), "dest": str(tmp_path / "1.0.0"), "digest": "0" * 64})
    assert outcome.failed and outcome["changed"] is True and outcome["src_removed"] is True and outcome["actual"] == actual


def test_a_missing_executable_with_the_upload_kept_changes_nothing(tmp_path: Path) -> None:
    upload = tmp_path / "a.tar.gz"
    digest = make_tar(upload, release_members())
    outcome = run(UNPACK, {"src": str(upload), "dest": str(tmp_path / "1.0.0"), "digest": digest, "executable": "bin/none",
                           "remove_src": False})
    assert outcome.failed and outcome["executable_problem"] == "missing" and outcome["changed"] is False and upload.exists()


def test_a_release_folder_ending_in_x_is_that_folder(tmp_path: Path) -> None:
    upload = tmp_path / "a.tar.gz"
    digest = make_tar(upload, release_members())
    dest = tmp_path / "buildX"
    outcome = run(UNPACK, {"src": str(upload), "dest": str(dest) + "/", "digest": digest})
    assert not outcome.failed and outcome["dest"] == str(dest) and (dest / ".release" / "DIGEST").exists()


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
