"""Hosts pull the artifact over HTTPS from a real nginx whose certificate a private CA signed (made here with the
`cryptography` package): each host checks the server's certificate against the CA file its inventory names
(release_artifact_ca_file) and the controller against its own (SSL_CERT_FILE); a host given a server whose certificate
does not verify fails with one line naming the host and the URL, and no host switches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from relpromote.testing.nginx import Certificates, NginxServer, make_certificates
from relpromote.testing.sshd import SshHostFarm
from tests.helpers import Cli, make_app_source, make_project, one_line_error
from tests.integration.conftest import _blocks, commit_project, write_inventories
from tests.integration.test_promote import build, health, live_version

HOSTS = ("qa-app-1", "qa-app-2")
MISLED = "qa-app-2"


@dataclass
class Fleet:
    project: Cli
    farm: SshHostFarm
    server: NginxServer  # its certificate signed by the CA the hosts are given
    stranger: NginxServer  # the same files, with a certificate of another CA
    pki: Certificates
    digest: str


def requests(server: NginxServer) -> list[str]:
    """What nginx served, each `PATH STATUS`, from its access log."""
    fields = [line.split('"') for line in (server.workdir / "access.log").read_text().splitlines()]
    return [f"{field[1].split()[1]} {field[2].split()[0]}" for field in fields]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("https")
    block = next(_blocks)
    with SshHostFarm(tmp / "farm", list(HOSTS), first_octet=block) as farm:
        address = f"{farm.network}.{block + 7}"
        pki = make_certificates(tmp / "pki", address)
        other = make_certificates(tmp / "other-ca", address)
        served = tmp / "served"
        with NginxServer(tmp / "nginx", root=served, address=address, tls=pki) as server, \
                NginxServer(tmp / "stranger", root=served, address=address, tls=other) as stranger:
            project = make_project(tmp / "proj", people={"alice": ["release_manager"], "oscar": ["operator"]})
            # The hosts' CA file, named by the inventory (the test hosts share the controller's /tmp); the controller
            # checks the served copy with OpenSSL's own variable.
            write_inventories(project, farm, group_vars={"release_artifact_ca_file": str(pki.ca)})
            project.env["SSL_CERT_FILE"] = str(pki.ca)
            digest = build(project, make_app_source(tmp / "app"), "1.0.0", "Over TLS")
            server.publish(project.cwd / ".relpromote" / "store")
            config_path = project.cwd / "relpromote.yml"
            config = yaml.safe_load(config_path.read_text())
            config["environments"]["qa"]["artifacts"] = {"transfer": "pull", "url": server.url}
            config_path.write_text(yaml.safe_dump(config, sort_keys=False))
            commit_project(project, f"qa pulls from {server.url}")
            yield Fleet(project, farm, server, stranger, pki, digest)


def test_a_host_given_a_server_whose_certificate_does_not_verify_fails_naming_host_and_url(fleet: Fleet) -> None:
    host_vars = fleet.project.cwd / "inventories" / "qa" / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / f"{MISLED}.yml").write_text(yaml.safe_dump({"release_artifact_server": fleet.stranger.url}))
    commit_project(fleet.project, f"{MISLED} pulls from a server of another CA")

    result = fleet.project.run("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert result.returncode == 1, result.stderr
    error = one_line_error(result)
    url = f"{fleet.stranger.url}/sha256/{fleet.digest}.tar.gz"
    assert f"{MISLED}: could not download the artifact from {url}: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed" in error
    assert all(live_version(fleet.farm, host) is None for host in HOSTS)
    assert not fleet.farm[MISLED].path("/opt/shop/releases/1.0.0").exists()
    assert sorted(p.name for p in fleet.farm[MISLED].path("/opt/shop/releases").iterdir()) == []
    assert requests(fleet.stranger) == []  # the host gave up in the handshake: nothing was asked
    assert fleet.farm["qa-app-1"].path("/opt/shop/releases/1.0.0/.release/DIGEST").read_text().strip() == fleet.digest


def test_hosts_pull_over_https_checking_the_certificate_against_the_inventorys_ca_file(fleet: Fleet) -> None:
    (fleet.project.cwd / "inventories" / "qa" / "host_vars" / f"{MISLED}.yml").unlink(missing_ok=True)
    commit_project(fleet.project, "every qa host pulls from the artifact server")
    before = len(requests(fleet.server))

    result = fleet.project.json("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert result["result"] == "succeeded"
    for host in HOSTS:
        assert live_version(fleet.farm, host) == "1.0.0" and health(fleet.farm, host)["version"] == "1.0.0"
        assert fleet.farm[host].path("/opt/shop/releases/1.0.0/.release/DIGEST").read_text().strip() == fleet.digest
    # The controller's check and the host that had not unpacked it yet, both over TLS.
    assert requests(fleet.server)[before:] == [f"/sha256/{fleet.digest}.tar.gz 200"] * 2
