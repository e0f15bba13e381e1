"""Hosts pull the artifact from a real artifact server (nginx on loopback) and check its sha256 themselves: a host given a
corrupted copy refuses it naming both digests and nothing switches; a served copy that is not the ledger's artifact
stops the promotion on the controller before any host is touched; a clean pull puts the release live everywhere; a
rollback to a release no longer on the hosts pulls it too, with the same check."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from relpromote.testing.nginx import NginxServer
from relpromote.testing.sshd import SshHostFarm
from tests.helpers import Cli, make_app_source, make_project, one_line_error
from tests.integration.conftest import _blocks, commit_project, write_inventories
from tests.integration.test_promote import build, health, live_version

HOSTS = ("qa-app-1", "qa-app-2", "qa-app-3")
CORRUPTED = "qa-app-3"


@dataclass
class Fleet:
    project: Cli
    farm: SshHostFarm
    server: NginxServer
    digest: str
    source: Path

    def requests(self) -> list[str]:
        """What nginx served, each `PATH STATUS`, from its access log (the server's own record)."""
        lines = (self.server.workdir / "access.log").read_text().splitlines()
        fields = [line.split('"') for line in lines]  # ... "GET /path HTTP/1.1" 200 ...
        return [f"{field[1].split()[1]} {field[2].split()[0]}" for field in fields]

    def kinds(self) -> list[str]:
        with closing(sqlite3.connect(self.project.cwd / ".relpromote" / "ledger.db")) as db:
            return [row[0] for row in db.execute("SELECT kind FROM entries ORDER BY seq")]

    def payloads(self, kind: str) -> list[dict[str, object]]:
        with closing(sqlite3.connect(self.project.cwd / ".relpromote" / "ledger.db")) as db:
            return [json.loads(row[0]) for row in db.execute("SELECT payload FROM entries WHERE kind = ? ORDER BY seq", (kind,))]

    def configure(self, url: str) -> None:
        config_path = self.project.cwd / "relpromote.yml"
        config = yaml.safe_load(config_path.read_text())
        config["environments"]["qa"]["artifacts"] = {"transfer": "pull", "url": url}
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        commit_project(self.project, f"qa pulls from {url}")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("pull")
    block = next(_blocks)
    with SshHostFarm(tmp / "farm", list(HOSTS), first_octet=block) as farm:
        served = tmp / "served"
        with NginxServer(tmp / "nginx", root=served, address=f"{farm.network}.{block + 7}", uploads=True) as server:
            project = make_project(tmp / "proj", people={"alice": ["release_manager"], "oscar": ["operator"]})
            write_inventories(project, farm)
            source = make_app_source(tmp / "app")
            digest = build(project, source, "1.0.0", "Pulled")
            # Published as a user does: the store's sha256/ folder copied into the served folder; and, uploaded by HTTP
            # PUT, a tampered copy under the same name at a second location, the server one host is pointed at.
            store = project.cwd / ".relpromote" / "store"
            server.publish(store)
            data = bytearray((store / "sha256" / f"{digest}.tar.gz").read_bytes())
            data[len(data) // 2] ^= 0xFF
            (tmp / "tampered.tar.gz").write_bytes(bytes(data))
            assert server.upload(tmp / "tampered.tar.gz", f"/tampered/sha256/{digest}.tar.gz") == 201
            yield Fleet(project, farm, server, digest, source)


def test_a_served_copy_that_is_not_the_ledgers_artifact_stops_the_promotion_before_any_host(fleet: Fleet) -> None:
    fleet.configure(f"{fleet.server.url}/tampered")
    result = fleet.project.run("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert result.returncode == 2
    error = one_line_error(result)
    assert f"{fleet.server.url}/tampered/sha256/{fleet.digest}.tar.gz" in error and f"the ledger says {fleet.digest}" in error
    assert "promotion.started" not in fleet.kinds()
    assert not any(fleet.farm[host].path("/opt/shop").exists() for host in HOSTS)


def test_a_host_given_a_corrupted_artifact_refuses_it_and_no_host_switches(fleet: Fleet) -> None:
    fleet.configure(fleet.server.url)
    host_vars = fleet.project.cwd / "inventories" / "qa" / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / f"{CORRUPTED}.yml").write_text(yaml.safe_dump({"release_artifact_server": f"{fleet.server.url}/tampered"}))
    commit_project(fleet.project, f"{CORRUPTED} pulls from a server holding a tampered copy")

    before = len(fleet.requests())
    result = fleet.project.run("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert result.returncode == 1, result.stderr
    error = one_line_error(result)
    assert f"{CORRUPTED}: the artifact downloaded from {fleet.server.url}/tampered/sha256/{fleet.digest}.tar.gz has sha256 " in error
    assert f"expected {fleet.digest}" in error
    actual = error.split("has sha256 ", 1)[1].split(",", 1)[0]
    assert len(actual) == 64 and actual != fleet.digest
    # Nothing switched anywhere; the corrupted host unpacked nothing and kept no part of the download.
    assert all(live_version(fleet.farm, host) is None for host in HOSTS)
    assert not fleet.farm[CORRUPTED].path("/opt/shop/releases/1.0.0").exists()
    assert list(fleet.farm[CORRUPTED].path("/opt/shop/.incoming").iterdir()) == []
    finished = fleet.payloads("promotion.finished")[-1]
    assert finished["result"] == "failed" and finished["switched"] == []
    # Each host downloaded it itself (the controller read the environment's copy once, before the run): the good hosts
    # unpacked it, without switching to it.
    artifact = f"/sha256/{fleet.digest}.tar.gz"
    assert sorted(fleet.requests()[before:]) == sorted([f"{artifact} 200"] * 3 + [f"/tampered{artifact} 200"])
    assert all(fleet.farm[host].path("/opt/shop/releases/1.0.0/.release/DIGEST").is_file() for host in HOSTS if host != CORRUPTED)


def test_a_fleet_pulls_the_artifact_itself_and_goes_live(fleet: Fleet) -> None:
    (fleet.project.cwd / "inventories" / "qa" / "host_vars" / f"{CORRUPTED}.yml").unlink(missing_ok=True)
    commit_project(fleet.project, "every qa host pulls from the artifact server")
    before = len(fleet.requests())

    result = fleet.project.json("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert result["result"] == "succeeded"
    assert all(live_version(fleet.farm, host) == "1.0.0" and health(fleet.farm, host)["version"] == "1.0.0" for host in HOSTS)
    for host in HOSTS:
        recorded = fleet.farm[host].path("/opt/shop/releases/1.0.0/.release/DIGEST").read_text().strip()
        assert recorded == fleet.digest
        assert list(fleet.farm[host].path("/opt/shop/.incoming").iterdir()) == []
    # The controller's check and the one host that had not unpacked it yet asked the server; the others had it.
    assert fleet.requests()[before:] == [f"/sha256/{fleet.digest}.tar.gz 200"] * 2
    assert fleet.payloads("promotion.finished")[-1]["result"] == "succeeded"


def test_a_rollback_pulls_a_release_the_hosts_no_longer_have_and_refuses_a_corrupted_copy(fleet: Fleet) -> None:
    # 1.1.0 goes live (pulled); 1.0.0 is then gone from every host (pruned) and from this controller's store, so that
    # only the artifact server has it: a rollback that pushed could not redeploy it.
    build(fleet.project, fleet.source, "1.1.0", "Newer")
    store = fleet.project.cwd / ".relpromote" / "store"
    fleet.server.publish(store)
    assert fleet.project.json("promote", "1.1.0", "--to", "qa", identity="oscar")["result"] == "succeeded"
    for host in HOSTS:
        shutil.rmtree(fleet.farm[host].path("/opt/shop/releases/1.0.0"))
    (store / "sha256" / f"{fleet.digest}.tar.gz").unlink()
    host_vars = fleet.project.cwd / "inventories" / "qa" / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / f"{CORRUPTED}.yml").write_text(yaml.safe_dump({"release_artifact_server": f"{fleet.server.url}/tampered"}))
    commit_project(fleet.project, f"{CORRUPTED} pulls from a server holding a tampered copy")
    before = len(fleet.requests())

    result = fleet.project.run("rollback", "--env", "qa", "--version", "1.0.0", "--reason", "1.1.0 misbehaves", identity="alice")
    assert result.returncode != 0, result.stdout
    error = one_line_error(result)
    assert f"failed on {CORRUPTED}: " in error and f"{fleet.server.url}/tampered/sha256/{fleet.digest}.tar.gz has sha256 " in error
    # The others pulled 1.0.0 again, checked it and run it; the corrupted one refused its copy, kept nothing of it and
    # still runs 1.1.0.
    good = [host for host in HOSTS if host != CORRUPTED]
    for host in good:
        assert live_version(fleet.farm, host) == "1.0.0" and health(fleet.farm, host)["version"] == "1.0.0"
        assert fleet.farm[host].path("/opt/shop/releases/1.0.0/.release/DIGEST").read_text().strip() == fleet.digest
    assert live_version(fleet.farm, CORRUPTED) == "1.1.0" and health(fleet.farm, CORRUPTED)["version"] == "1.1.0"
    releases = fleet.farm[CORRUPTED].path("/opt/shop/releases")
    assert sorted(path.name for path in releases.iterdir()) == ["1.1.0"]
    assert list(fleet.farm[CORRUPTED].path("/opt/shop/.incoming").iterdir()) == []
    artifact = f"/sha256/{fleet.digest}.tar.gz"
    assert sorted(fleet.requests()[before:]) == sorted([f"{artifact} 200"] * len(good) + [f"/tampered{artifact} 200"])
    finished = fleet.payloads("rollback.finished")[-1]
    assert finished["result"] == "failed" and finished["version"] == "1.0.0"
