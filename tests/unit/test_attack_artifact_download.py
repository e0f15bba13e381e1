"""release_unpack pulling over HTTPS (module_utils/release_download.py) from real TLS servers in the test process, against
a server that misleads: a redirect from https to http:// is refused before anything is asked there (urllib followed it),
a redirect to another https server is followed and checked against the same CA, and a CA file anyone may write (itself
or through a link) is refused. Each refusal leaves no release, no partial folder and nothing staged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from relpromote.testing.nginx import Certificates, make_certificates
from tests.unit.host_modules import FolderServer as Server
from tests.unit.host_modules import load, make_tar, release_members, run

UNPACK = load("roles/release_deploy/library/release_unpack.py")
DOWNLOAD = load("roles/release_deploy/module_utils/release_download.py")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("pki"), "127.0.0.1")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for server in made:
        server.close()


def artifact(tmp_path: Path, folder: Path) -> str:
    (folder / "sha256").mkdir(parents=True, exist_ok=True)
    made = tmp_path / "a.tar.gz"
    digest = make_tar(made, release_members())
    (folder / "sha256" / f"{digest}.tar.gz").write_bytes(made.read_bytes())
    return digest


def pull(tmp_path: Path, url: str, digest: str, ca_file: Path) -> tuple[dict[str, object], Path, Path]:
    base = tmp_path / "opt" / "app"
    staging = base / ".incoming"
    (base / "releases").mkdir(parents=True)
    staging.mkdir()
    dest = base / "releases" / "1.0.0"
    outcome = run(UNPACK, {"dest": str(dest), "digest": digest, "version": "1.0.0", "leftovers": str(staging),
                           "url": DOWNLOAD.artifact_url(url, digest), "ca_file": str(ca_file)})
    return outcome.result, dest, staging


def nothing_left(dest: Path, staging: Path) -> None:
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == [] and list(staging.iterdir()) == []


def test_a_redirect_from_https_to_http_is_refused_before_anything_is_asked_there(
    tmp_path: Path, pki: Certificates, servers: list[Server]
) -> None:
    folder = tmp_path / "served"
    digest = artifact(tmp_path, folder)
    clear = Server(folder, None)
    servers.append(clear)
    tls = Server(folder, pki, redirect=lambda path: clear.url + path)
    servers.append(tls)
    result, dest, staging = pull(tmp_path, tls.url, digest, pki.ca)
    assert result["failed"] is True, result
    asked = f"/sha256/{digest}.tar.gz"
    assert result["msg"] == (f"could not download the artifact from {tls.url}{asked}: the server redirected to "
                             f"{clear.url}{asked}, which is not https://: refused")
    assert tls.asked == [asked] and clear.asked == []  # the artifact never travelled in clear text
    nothing_left(dest, staging)


def test_a_redirect_to_another_https_server_of_the_same_ca_is_followed(tmp_path: Path, pki: Certificates, servers: list[Server]) -> None:
    folder = tmp_path / "served"
    digest = artifact(tmp_path, folder)
    mirror = Server(folder, pki)
    servers.append(mirror)
    front = Server(tmp_path, pki, redirect=lambda path: mirror.url + path)
    servers.append(front)
    result, dest, staging = pull(tmp_path, front.url, digest, pki.ca)
    assert not result.get("failed"), result
    assert list(staging.iterdir()) == []
    assert (dest / ".release" / "DIGEST").read_text().strip() == digest
    assert mirror.asked == [f"/sha256/{digest}.tar.gz"]


@pytest.mark.parametrize("through", ["file", "link"])
def test_a_ca_file_anyone_may_write_is_refused(tmp_path: Path, pki: Certificates, servers: list[Server], through: str) -> None:
    folder = tmp_path / "served"
    digest = artifact(tmp_path, folder)
    server = Server(folder, pki)
    servers.append(server)
    writable = tmp_path / "ca-open.pem"
    writable.write_bytes(pki.ca.read_bytes())
    writable.chmod(0o666)
    given = writable
    if through == "link":
        given = tmp_path / "ca-link.pem"
        given.symlink_to(writable)
    result, dest, staging = pull(tmp_path, server.url, digest, given)
    assert result["failed"] is True, result
    assert result["msg"] == (f"could not download the artifact from {server.url}/sha256/{digest}.tar.gz: the CA file {given} is "
                             "writable by everyone on the host (anyone could add a CA to it); make it 0644")
    assert server.asked == []
    nothing_left(dest, staging)
    # The same CA, closed to others (a link to it is fine): downloaded and unpacked.
    writable.chmod(0o644)
    result, dest, _ = pull(tmp_path / "again", server.url, digest, given)
    assert not result.get("failed"), result
    assert (dest / ".release" / "DIGEST").read_text().strip() == digest
