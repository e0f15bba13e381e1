"""release_unpack pulling its artifact (the url option, module_utils/release_download.py) from a real HTTP server in
this process: a good download is unpacked and leaves nothing in the staging folder; a corrupted one, a missing one or
a cut one is refused naming what went wrong, nothing unpacked, nothing left behind."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.host_modules import Member, file, load, make_tar, release_members, run
from tests.unit.test_host_release_unpack import HOSTILE  # the member checks, one list of cases for upload and download

UNPACK = load("roles/release_deploy/library/release_unpack.py")
DOWNLOAD = load("roles/release_deploy/module_utils/release_download.py")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on loopback, and its URL."""
    folder = tmp_path / "served"
    (folder / "sha256").mkdir(parents=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def pull(tmp_path: Path, url: str, digest: str) -> tuple[dict[str, object], Path, Path]:
    base = tmp_path / "opt" / "app"
    staging = base / ".incoming"
    (base / "releases").mkdir(parents=True)
    staging.mkdir()
    dest = base / "releases" / "1.0.0"
    outcome = run(UNPACK, {"dest": str(dest), "digest": digest, "version": "1.0.0", "leftovers": str(staging),
                           "url": DOWNLOAD.artifact_url(url, digest)})
    return outcome.result, dest, staging


def test_a_download_with_the_digest_is_unpacked_and_leaves_nothing_behind(tmp_path: Path, served: tuple[Path, str]) -> None:
    folder, url = served
    artifact = tmp_path / "a.tar.gz"
    digest = make_tar(artifact, release_members())
    (folder / "sha256" / f"{digest}.tar.gz").write_bytes(artifact.read_bytes())
    result, dest, staging = pull(tmp_path, url, digest)
    assert not result.get("failed"), result
    assert result["downloaded"] is True and result["changed"] is True
    assert (dest / ".release" / "DIGEST").read_text().strip() == digest
    assert list(staging.iterdir()) == []


def test_a_corrupted_download_is_refused_naming_both_digests(tmp_path: Path, served: tuple[Path, str]) -> None:
    folder, url = served
    artifact = tmp_path / "a.tar.gz"
    digest = make_tar(artifact, release_members())
    data = bytearray(artifact.read_bytes())
    data[-10] ^= 0xFF
    (folder / "sha256" / f"{digest}.tar.gz").write_bytes(bytes(data))
    result, dest, staging = pull(tmp_path, url, digest)
    assert result["failed"] is True and result["expected"] == digest
    actual = str(result["actual"])
    assert len(actual) == 64 and actual != digest
    assert result["msg"] == (f"the artifact downloaded from {url}/sha256/{digest}.tar.gz has sha256 {actual}, expected {digest}; "
                             "refused it (what it unpacked was removed)")
    assert not dest.exists() and list(staging.iterdir()) == []


def test_a_missing_artifact_is_refused_with_the_servers_answer(tmp_path: Path, served: tuple[Path, str]) -> None:
    _, url = served
    digest = "ab" * 32
    result, dest, staging = pull(tmp_path, url, digest)
    assert result["failed"] is True
    assert result["msg"] == f"could not download the artifact from {url}/sha256/{digest}.tar.gz: HTTP Error 404: File not found"
    assert not dest.exists() and list(staging.iterdir()) == []


def test_a_url_keeps_its_password_out_of_messages() -> None:
    assert DOWNLOAD.shown("https://ci:s3cret@artifacts.example.org/shop/sha256/x.tar.gz") == "https://artifacts.example.org/shop/sha256/x.tar.gz"
    with pytest.raises(DOWNLOAD.Refused, match="is not http"):
        DOWNLOAD.Download("file:///etc/passwd")


def good_artifact(tmp_path: Path, payload: int = 0) -> tuple[bytes, str]:
    """A release artifact, with `payload` bytes of incompressible data in a file when asked (so that a flipped byte
    in the middle lands in a member's data or in the gzip stream), and its sha256."""
    extra = [file("payload.bin", os.urandom(payload))] if payload else []
    artifact = tmp_path / "good.tar.gz"
    digest = make_tar(artifact, [*release_members(), *extra])
    return artifact.read_bytes(), digest


def pull_as(tmp_path: Path, folder: Path, url: str, data: bytes, digest: str) -> tuple[dict[str, object], Path, Path]:
    (folder / "sha256" / f"{digest}.tar.gz").write_bytes(data)
    return pull(tmp_path, url, digest)


def nothing_left(dest: Path, staging: Path) -> None:
    """No release, no partial folder beside it, nothing in the staging folder."""
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == [] and list(staging.iterdir()) == []


@pytest.mark.parametrize(("extra", "reason"), HOSTILE)
def test_every_member_check_applies_to_a_download(tmp_path: Path, served: tuple[Path, str], extra: list[Member], reason: str) -> None:
    # The artifact is the one the ledger recorded (its digest matches): only the member checks can refuse it.
    folder, url = served
    artifact = tmp_path / "hostile.tar.gz"
    digest = make_tar(artifact, [*release_members(), *extra])
    result, dest, staging = pull_as(tmp_path, folder, url, artifact.read_bytes(), digest)
    assert result["failed"] is True, result
    assert result["msg"].startswith(f"artifact {url}/sha256/{digest}.tar.gz: ") and reason in result["msg"], result["msg"]
    assert result["msg"].endswith("; refusing to unpack it") and "actual" not in result
    nothing_left(dest, staging)


@pytest.mark.parametrize("where", [20, 200, 100_000], ids=["gzip-broken", "tar-ends-early", "in-file-data"])
def test_a_download_corrupted_anywhere_is_refused_for_its_digest_and_leaves_nothing(
    tmp_path: Path, served: tuple[Path, str], where: int
) -> None:
    # A flipped byte may break the gzip stream (the unpacker fails), end the tar early (it unpacks three members and
    # stops, satisfied) or land in a file's data (it unpacks it all): each time the refusal is the digest's, the rest
    # read whole, and what was unpacked is gone.
    folder, url = served
    data, digest = good_artifact(tmp_path, payload=200_000)
    corrupted = bytearray(data)
    corrupted[where] ^= 0xFF
    result, dest, staging = pull_as(tmp_path, folder, url, bytes(corrupted), digest)
    assert result["failed"] is True and result["expected"] == digest
    assert result["actual"] == hashlib.sha256(bytes(corrupted)).hexdigest()
    assert result["msg"].startswith(f"the artifact downloaded from {url}/sha256/{digest}.tar.gz has sha256 "), result["msg"]
    nothing_left(dest, staging)


def test_a_download_cut_off_is_refused_for_its_digest_and_leaves_nothing(tmp_path: Path, served: tuple[Path, str]) -> None:
    folder, url = served
    data, digest = good_artifact(tmp_path, payload=200_000)
    result, dest, staging = pull_as(tmp_path, folder, url, data[: len(data) // 2], digest)
    assert result["failed"] is True and result["actual"] == hashlib.sha256(data[: len(data) // 2]).hexdigest()
    nothing_left(dest, staging)


def test_a_large_download_is_unpacked_as_it_arrives_and_recorded_in_the_manifest(tmp_path: Path, served: tuple[Path, str]) -> None:
    folder, url = served
    data, digest = good_artifact(tmp_path, payload=3_000_000)
    result, dest, staging = pull_as(tmp_path, folder, url, data, digest)
    assert not result.get("failed"), result
    payload = (dest / "payload.bin").read_bytes()
    entries = json.loads((dest / ".release" / "FILES.json").read_text())["entries"]
    assert entries["payload.bin"][2:] == [len(payload), hashlib.sha256(payload).hexdigest()]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["1.0.0"] and list(staging.iterdir()) == []


def test_a_tampered_release_is_unpacked_again_from_a_download_and_a_bad_one_switches_nothing(
    tmp_path: Path, served: tuple[Path, str]
) -> None:
    folder, url = served
    data, digest = good_artifact(tmp_path)
    result, dest, staging = pull_as(tmp_path, folder, url, data, digest)
    assert not result.get("failed"), result
    (dest / "app.py").write_text("print('owned')\n")
    inode = dest.stat().st_ino
    # The server now holds a corrupted copy: the tampered release stays where it is, untouched, and nothing is left.
    corrupted = bytearray(data)
    corrupted[len(corrupted) // 2] ^= 0xFF
    (folder / "sha256" / f"{digest}.tar.gz").write_bytes(bytes(corrupted))
    refused = run(UNPACK, {"dest": str(dest), "digest": digest, "url": DOWNLOAD.artifact_url(url, digest)}).result
    assert refused["failed"] is True and refused["tampered"] and "has sha256 " in str(refused["msg"]), refused
    assert dest.stat().st_ino == inode and (dest / "app.py").read_text() == "print('owned')\n"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["1.0.0"]
    # The good copy back: unpacked again from the download and exchanged for the tampered one.
    (folder / "sha256" / f"{digest}.tar.gz").write_bytes(data)
    repaired = run(UNPACK, {"dest": str(dest), "digest": digest, "url": DOWNLOAD.artifact_url(url, digest)}).result
    assert repaired.get("repaired") is True and repaired["downloaded"] is True, repaired
    assert (dest / "app.py").read_text() == "print('hi')\n"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["1.0.0"] and list(staging.iterdir()) == []
