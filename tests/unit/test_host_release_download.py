"""release_unpack pulling its artifact (the url option, module_utils/release_download.py) from a real HTTP server in
this process: a good download is unpacked and leaves nothing in the staging folder; a corrupted one, a missing one or
a cut one is refused naming what went wrong, nothing unpacked, nothing left behind."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.host_modules import load, make_tar, release_members, run

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
                             "refused it (the download was removed)")
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
        DOWNLOAD.download("file:///etc/passwd", "/nonexistent", "ab" * 32)
