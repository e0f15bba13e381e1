"""roles/release_deploy/module_utils/release_download.py, pinned exactly (issue 18's mutation score): the stream an
artifact is pulled through, against real servers in this process (HTTP, TLS with a CA made for the test, raw sockets
that stall or watch the client hang up). Every refusal is asserted by its whole message."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.client import HTTPException
from pathlib import Path
from urllib.error import HTTPError, URLError

import pytest

from relpromote.testing.nginx import Certificates, make_certificates
from tests.unit.host_modules import FolderServer as Server
from tests.unit.host_modules import load_util

DOWNLOAD = load_util("roles/release_deploy/module_utils/release_download.py")
CHUNK = 1 << 18
# Larger than two reads, not a multiple of one: the hash and the count must take every block, the last short one too.
DATA = os.urandom(2 * CHUNK + 12345)
DIGEST = hashlib.sha256(DATA).hexdigest()


class Stalling:
    """A raw server: accepts one connection, sends `prefix` (nothing, or headers and part of a body) and then says
    nothing more for `hold` seconds, watching for the client to hang up. `hung_up` is set when it did, within `hold`."""

    def __init__(self, prefix: bytes = b"", hold: float = 4.0) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/sha256/{DIGEST}.tar.gz"
        self.hung_up = threading.Event()
        self.prefix, self.hold = prefix, hold
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            connection.settimeout(self.hold)
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(4096)
            connection.sendall(self.prefix)
            try:
                while connection.recv(4096):
                    pass
                self.hung_up.set()
            except OSError:  # the hold ran out with the connection still open
                pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("pki"), "127.0.0.1")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    served = tmp_path / "served"
    (served / "sha256").mkdir(parents=True)
    (served / "sha256" / f"{DIGEST}.tar.gz").write_bytes(DATA)
    return served


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for server in made:
        server.close()


def started(servers: list[Server], folder: Path, tls: Certificates | None = None, redirect: Callable[[str], str] | None = None) -> Server:
    server = Server(folder, tls, redirect)
    servers.append(server)
    return server


def refusal(call: Callable[[], object]) -> str:
    with pytest.raises(DOWNLOAD.Refused) as caught:
        call()
    return str(caught.value)


ASKED = f"/sha256/{DIGEST}.tar.gz"


def test_every_byte_handed_on_is_hashed_and_counted_and_reads_are_bounded(folder: Path, servers: list[Server]) -> None:
    server = started(servers, folder)
    with DOWNLOAD.Download(DOWNLOAD.artifact_url(server.url, DIGEST)) as download:
        assert download.size == 0
        first = download.read(1)
        assert first == DATA[:1] and download.size == 1, "a read of one byte hands on one byte"
        second = download.read(-1)  # no size: one block, never the whole rest
        assert second == DATA[1 : 1 + CHUNK] and download.size == 1 + CHUNK
        third = download.read(0)
        assert 0 < len(third) <= CHUNK and third == DATA[1 + CHUNK : 1 + CHUNK + len(third)]
        at = download.size
        assert download.read(None) == DATA[at : at + CHUNK]
        assert download.finish() == DIGEST and download.size == len(DATA)
        assert download.read() == b"" and download.size == len(DATA)
        assert download.refusal(DIGEST) is None
        other = "0" * 64
        refused = download.refusal(other)
        assert isinstance(refused, DOWNLOAD.Refused) and refused.actual == DIGEST
        assert str(refused) == (f"the artifact downloaded from {server.url}{ASKED} has sha256 {DIGEST}, expected {other}; "
                                "refused it (what it unpacked was removed)")
    assert server.asked == [ASKED]


def test_finish_reads_what_the_reader_left(folder: Path, servers: list[Server]) -> None:
    server = started(servers, folder)
    with DOWNLOAD.Download(DOWNLOAD.artifact_url(server.url, DIGEST)) as download:
        assert download.finish() == DIGEST and download.size == len(DATA)


def test_the_store_layout_and_urls_without_secrets() -> None:
    assert DOWNLOAD.artifact_url("https://store.example/shop", "ab") == "https://store.example/shop/sha256/ab.tar.gz"
    assert DOWNLOAD.artifact_url("https://store.example/SHOP-BOX//", "ab") == "https://store.example/SHOP-BOX/sha256/ab.tar.gz"
    assert DOWNLOAD.shown("https://ci:s3cret@store.example/x.tar.gz") == "https://store.example/x.tar.gz"
    assert DOWNLOAD.shown("HTTP://ci@store.example/x") == "HTTP://store.example/x"
    assert DOWNLOAD.shown("https://store.example/a@b/x") == "https://store.example/a@b/x", "an @ in the path is no user"
    assert DOWNLOAD.shown("https://store.example/x") == "https://store.example/x"


def test_a_refusal_carries_its_message_and_the_digest_read() -> None:
    refused = DOWNLOAD.Refused("why", "abc")
    assert str(refused) == "why" and refused.actual == "abc"
    assert DOWNLOAD.Refused("why").actual is None


def test_each_reason_is_one_line() -> None:
    gone = HTTPError("http://h/x", 404, "Not Found", None, None)  # type: ignore[arg-type]
    assert DOWNLOAD._reason(gone) == "HTTP Error 404: Not Found", "an HTTP error says its status"
    assert DOWNLOAD._reason(URLError(ConnectionRefusedError(111, "Connection refused"))) == "[Errno 111] Connection refused"
    assert DOWNLOAD._reason(OSError("two\n   lines")) == "two lines"
    assert DOWNLOAD._reason(HTTPException()) == "HTTPException", "nothing said: the kind of error"


def test_what_is_not_http_or_https_is_refused_before_anything_is_asked() -> None:
    assert refusal(lambda: DOWNLOAD.Download("ftp://ci:pw@store.example/x.tar.gz")) == (
        "artifact URL ftp://store.example/x.tar.gz is not http:// or https://")
    assert refusal(lambda: DOWNLOAD.Download("file:///etc/passwd")) == "artifact URL file:///etc/passwd is not http:// or https://"


def test_a_server_that_refuses_the_connection_or_the_artifact_is_named(folder: Path, servers: list[Server]) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    assert refusal(lambda: DOWNLOAD.Download(f"http://127.0.0.1:{port}/x.tar.gz")) == (
        f"could not download the artifact from http://127.0.0.1:{port}/x.tar.gz: [Errno 111] Connection refused")
    server = started(servers, folder)
    assert refusal(lambda: DOWNLOAD.Download(f"{server.url}/sha256/missing.tar.gz")) == (
        f"could not download the artifact from {server.url}/sha256/missing.tar.gz: HTTP Error 404: File not found")


def test_a_server_that_never_answers_is_given_up_after_the_timeout() -> None:
    silent = Stalling()
    try:
        began = time.monotonic()
        assert refusal(lambda: DOWNLOAD.Download(silent.url, timeout=0.3)) == f"could not download the artifact from {silent.url}: timed out"
        assert time.monotonic() - began < 3
    finally:
        silent.close()


def test_a_transfer_that_stalls_is_refused_naming_the_timeout() -> None:
    stalled = Stalling(b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    try:
        download = DOWNLOAD.Download(stalled.url, timeout=0.3)
        began = time.monotonic()
        assert refusal(lambda: download.read(100)) == f"could not download the artifact from {stalled.url}: timed out"
        assert time.monotonic() - began < 3
        download.close()
    finally:
        stalled.close()


def test_closing_hangs_up_once_and_the_with_block_closes() -> None:
    watched = Stalling(b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    try:
        with DOWNLOAD.Download(watched.url, timeout=5) as download:
            assert download.read(10) == b"x" * 10 and download.size == 10
            assert not watched.hung_up.wait(0.2), "open while being read"
        assert watched.hung_up.wait(3), "the connection is closed when the with block ends"
        download.close()  # twice: nothing left to close, no error
    finally:
        watched.close()


def test_https_is_checked_against_the_ca_file_given(tmp_path: Path, pki: Certificates, folder: Path, servers: list[Server]) -> None:
    server = started(servers, folder, pki)
    url = DOWNLOAD.artifact_url(server.url, DIGEST)
    shared = tmp_path / "ca-group.pem"  # writable by its group only: not anyone on the host
    shared.write_bytes(pki.ca.read_bytes())
    shared.chmod(0o664)
    with DOWNLOAD.Download(url, ca_file=str(shared)) as download:
        assert download.finish() == DIGEST
    # Without a CA file, the host's store: it does not know the test's CA.
    message = refusal(lambda: DOWNLOAD.Download(url))
    assert message.startswith(f"could not download the artifact from {url}: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), message
    assert server.asked == [ASKED]


def test_a_ca_file_that_anyone_may_write_missing_or_not_pem_is_refused_before_any_connection(
    tmp_path: Path, pki: Certificates, folder: Path, servers: list[Server]
) -> None:
    server = started(servers, folder, pki)
    url = f"https://ci:pw@127.0.0.1:{server.url.rsplit(':', 1)[1]}{ASKED}"
    bare = f"{server.url}{ASKED}"
    open_ca = tmp_path / "ca-open.pem"
    open_ca.write_bytes(pki.ca.read_bytes())
    open_ca.chmod(0o666)
    assert refusal(lambda: DOWNLOAD.Download(url, ca_file=str(open_ca))) == (
        f"could not download the artifact from {bare}: the CA file {open_ca} is writable by everyone on the host "
        "(anyone could add a CA to it); make it 0644")
    missing = tmp_path / "missing.pem"
    assert refusal(lambda: DOWNLOAD.Download(url, ca_file=str(missing))) == (
        f"could not download the artifact from {bare}: the CA file {missing} cannot be used: "
        f"[Errno 2] No such file or directory: '{missing}'")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    assert refusal(lambda: DOWNLOAD.Download(url, ca_file=str(garbage))) == (
        f"could not download the artifact from {bare}: the CA file {garbage} cannot be used: NO_CERTIFICATE_OR_CRL_FOUND")
    assert server.asked == []


def test_plain_http_ignores_the_ca_file(tmp_path: Path, folder: Path, servers: list[Server]) -> None:
    server = started(servers, folder)
    with DOWNLOAD.Download(DOWNLOAD.artifact_url(server.url, DIGEST), ca_file=str(tmp_path / "missing.pem")) as download:
        assert download.finish() == DIGEST


def test_from_https_a_redirect_is_followed_only_to_https(tmp_path: Path, pki: Certificates, folder: Path, servers: list[Server]) -> None:
    clear = started(servers, folder)
    mirror = started(servers, folder, pki)
    to_clear = started(servers, tmp_path, pki, redirect=lambda path: clear.url.replace("://", "://ci:pw@") + path)
    message = refusal(lambda: DOWNLOAD.Download(to_clear.url + ASKED, ca_file=str(pki.ca)))
    assert message == (f"could not download the artifact from {to_clear.url}{ASKED}: the server redirected to {clear.url}{ASKED}, "
                       "which is not https://: refused")
    assert to_clear.asked == [ASKED] and clear.asked == [], "nothing asked in clear text"
    to_mirror = started(servers, tmp_path, pki, redirect=lambda path: mirror.url + path)
    with DOWNLOAD.Download(to_mirror.url + ASKED, ca_file=str(pki.ca)) as download:
        assert download.finish() == DIGEST
    assert mirror.asked == [ASKED]


def test_from_http_a_redirect_is_followed_to_http_or_https_only(
    tmp_path: Path, pki: Certificates, folder: Path, servers: list[Server]
) -> None:
    clear = started(servers, folder)
    to_clear = started(servers, tmp_path, redirect=lambda path: clear.url + path)
    with DOWNLOAD.Download(to_clear.url + ASKED) as download:
        assert download.finish() == DIGEST
    assert clear.asked == [ASKED]
    secure = started(servers, folder, pki)
    to_secure = started(servers, tmp_path, redirect=lambda path: secure.url + path)
    # Followed: the https server is reached (and, the download being plain http, checked against the host's store).
    message = refusal(lambda: DOWNLOAD.Download(to_secure.url + ASKED))
    assert message.startswith(f"could not download the artifact from {to_secure.url}{ASKED}: [SSL: CERTIFICATE_VERIFY_FAILED]"), message
    to_ftp = started(servers, tmp_path, redirect=lambda path: "ftp://127.0.0.1" + path)
    assert refusal(lambda: DOWNLOAD.Download(to_ftp.url + ASKED)) == (
        f"could not download the artifact from {to_ftp.url}{ASKED}: the server redirected to ftp://127.0.0.1{ASKED}, "
        "which is not http:// or https://: refused")
