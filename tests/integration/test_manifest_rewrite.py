"""An insider who edits a release's file on a host and rewrites its manifest (.release/FILES.json) to match, on real sshd
hosts: the controller knows the manifest from the verified artifact (the signed build record), so promote, rollback
and verify find the rewrite; promote and rollback put the verified copy live, and verify reports drift. Also a file
edited before the (unchanged) manifest was written again, which the ctime shortcut alone takes as untouched.

The tests run in order on one project and two hosts: each leaves the hosts as the next one expects them.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import Cli, make_app_source, make_project
from tests.integration.conftest import _blocks, write_inventories
from tests.integration.test_promote import build, health, ledger_payloads, live_version

HOSTS = ("qa-app-1", "qa-app-2")
REWRITTEN = ".release/FILES.json: differs from the artifact's file list (rewritten on the host)"


@dataclass
class Fleet:
    project: Cli
    farm: SshHostFarm
    digests: dict[str, str]

    def release(self, host: str, version: str) -> Path:
        return self.farm[host].path(f"/opt/shop/releases/{version}")

    def artifact_member(self, version: str, name: str) -> bytes:
        store = self.project.cwd / ".relpromote" / "store" / "sha256" / f"{self.digests[version]}.tar.gz"
        with tarfile.open(store, "r:gz") as tar:
            member = tar.extractfile(name)
            assert member is not None
            return member.read()

    def tamper(self, host: str, version: str, name: str, data: bytes) -> None:
        """Edit a file of the release, then rewrite the manifest to match it, written last (newest), its digest kept."""
        release = self.release(host, version)
        (release / name).write_bytes(data)
        manifest = release / ".release" / "FILES.json"
        document = json.loads(manifest.read_text())
        mode = document["entries"][name][1]
        document["entries"][name] = ["file", mode, len(data), hashlib.sha256(data).hexdigest()]
        manifest.write_text(json.dumps(document, sort_keys=True, separators=(",", ":")))

    def touch(self, host: str, version: str, name: str, data: bytes) -> None:
        """Edit a file, then write the manifest again unchanged: it is the controller's, and newer than the edit."""
        release = self.release(host, version)
        (release / name).write_bytes(data)
        manifest = release / ".release" / "FILES.json"
        body = manifest.read_bytes()
        time.sleep(0.01)  # past the kernel's timestamp tick
        manifest.write_bytes(body)

    def files_digest(self, version: str) -> str:
        built = next(p for p in ledger_payloads(self.project, "release.built") if p["version"] == version)
        return str(built["files"]["digest"])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("rewrite")
    with SshHostFarm(tmp / "farm", list(HOSTS), first_octet=next(_blocks)) as farm:
        project = make_project(tmp / "proj")
        write_inventories(project, farm)
        source = make_app_source(tmp / "app")
        digests = {version: build(project, source, version, greeting) for version, greeting in (("1.0.0", "Hello"), ("1.1.0", "Hi"))}
        project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
        yield Fleet(project, farm, digests)


def test_a_build_records_the_manifest_every_host_writes(fleet: Fleet) -> None:
    built = {p["version"]: p["files"] for p in ledger_payloads(fleet.project, "release.built")}
    assert built["1.0.0"]["rules"] == 1 and built["1.0.0"]["digest"] != built["1.1.0"]["digest"]
    for host in HOSTS:
        written = (fleet.release(host, "1.0.0") / ".release" / "FILES.json").read_bytes()
        assert hashlib.sha256(written).hexdigest() == built["1.0.0"]["digest"]


def test_a_rollback_target_with_a_rewritten_manifest_goes_live_as_the_verified_copy(fleet: Fleet) -> None:
    fleet.project.run("promote", "1.1.0", "--to", "qa", identity="oscar", check=True)
    fleet.tamper("qa-app-2", "1.0.0", "app.py", fleet.artifact_member("1.0.0", "app.py") + b"\n# a backdoor\n")
    fleet.touch("qa-app-1", "1.0.0", "app.py", fleet.artifact_member("1.0.0", "app.py") + b"\n# another\n")

    result = fleet.project.json("rollback", "--env", "qa", "--reason", "back", identity="alice")
    assert result["result"] == "succeeded"
    assert all(live_version(fleet.farm, host) == "1.0.0" and health(fleet.farm, host)["version"] == "1.0.0" for host in HOSTS)
    assert all((fleet.release(host, "1.0.0") / "app.py").read_bytes() == fleet.artifact_member("1.0.0", "app.py") for host in HOSTS)
    manifest = (fleet.release("qa-app-2", "1.0.0") / ".release" / "FILES.json").read_bytes()
    assert hashlib.sha256(manifest).hexdigest() == fleet.files_digest("1.0.0")


def test_a_release_on_the_host_with_a_rewritten_manifest_is_unpacked_again_by_its_promotion(fleet: Fleet) -> None:
    greeting = fleet.release("qa-app-2", "1.1.0") / "greeting.txt"
    fleet.tamper("qa-app-2", "1.1.0", "greeting.txt", b"Hi from an insider\n")
    fleet.touch("qa-app-1", "1.1.0", "greeting.txt", b"Yo\n")  # the same size

    result = fleet.project.json("promote", "1.1.0", "--to", "qa", identity="oscar")
    assert result["result"] == "succeeded"
    assert greeting.read_bytes() == fleet.artifact_member("1.1.0", "greeting.txt") == b"Hi\n"
    assert (fleet.release("qa-app-1", "1.1.0") / "greeting.txt").read_bytes() == b"Hi\n"
    recorded = {h["host"]: h for h in ledger_payloads(fleet.project, "promotion.finished")[-1]["hosts"]}
    assert recorded["qa-app-2"]["tampered"] == [REWRITTEN, "greeting.txt: changed (size 19, not 3)"]
    assert recorded["qa-app-1"]["tampered"] == ["greeting.txt: changed (content)"]
    assert all(health(fleet.farm, host)["version"] == "1.1.0" for host in HOSTS)


def test_verify_reports_a_live_release_whose_manifest_was_rewritten_as_drift(fleet: Fleet) -> None:
    fleet.tamper("qa-app-1", "1.1.0", "greeting.txt", b"Hi, edited live\n")

    answered = fleet.project.json("verify", "qa", identity="oscar", expect=3)
    verified = ledger_payloads(fleet.project, "verify.finished")[-1]
    assert answered["drifted"] == verified["drifted"]
    assert verified["drifted"] == ["qa-app-1"]
    hosts = {h["host"]: h for h in verified["hosts"]}
    assert hosts["qa-app-1"]["integrity"] == [REWRITTEN]
    assert hosts["qa-app-2"]["integrity"] == [] and hosts["qa-app-2"]["differences"] == []


@pytest.mark.xfail(strict=True, reason="known gap: release_unpack's look (action plugin) takes the live release as untouched when no "
                   "entry's ctime is newer than the manifest's mtime, and whoever can write the release moves that forward "
                   "(writes the manifest again, or touch): the fix is H-A's (anchor the manifest's ctime on the controller, "
                   "or hash the live release fully when files_digest is given)")
def test_a_re_promotion_of_the_live_release_repairs_a_file_edited_before_the_manifest_was_written_again(fleet: Fleet) -> None:
    # qa-app-2 runs 1.1.0 as verified (the earlier tests): an edit of the same size, then the manifest written again.
    fleet.touch("qa-app-2", "1.1.0", "greeting.txt", b"Yo\n")

    result = fleet.project.json("promote", "1.1.0", "--to", "qa", identity="oscar")
    assert result["result"] == "succeeded"
    recorded = {h["host"]: h for h in ledger_payloads(fleet.project, "promotion.finished")[-1]["hosts"]}
    assert (fleet.release("qa-app-2", "1.1.0") / "greeting.txt").read_bytes() == b"Hi\n", recorded
    assert recorded["qa-app-2"]["tampered"] == ["greeting.txt: changed (content)"]
