"""The collection relpromote.release, built and installed into a fresh folder, runs as AWX and ansible-navigator run it.

One build and install for the module; two real sshd hosts. Its promote playbook runs by its collection name from plain
ansible-playbook with only the collection installed (no roles_path, no ansible.cfg: the modules run as modules), from
ansible-navigator without an execution environment (pipelining on: the host-side work runs with the host's Python), and
from relpromote itself with `content: {collection: relpromote.release}`; what lands on the hosts is checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from relpromote.testing.sshd import SshHostFarm
from relpromote.usecases.collection import build as build_collection
from tests.helpers import BIN, REPO, Cli, make_app_source, make_project
from tests.integration.conftest import _blocks, commit_project, write_inventories
from tests.integration.test_promote import build, health, ledger_payloads, live_version

QA = ("qa-app-1", "qa-app-2")
TIMES: dict[str, float] = {}


@dataclass
class Installed:
    tarball: Path
    path: Path  # holds ansible_collections/relpromote/release
    lint: subprocess.Popen[str]  # ansible-lint on the installed collection, running while the hosts are used


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """The collection built from this checkout and installed with ansible-galaxy into a folder of its own."""
    started = time.monotonic()
    out = tmp_path_factory.mktemp("collection")
    tarball = build_collection(out / "build")
    target = out / "installed"
    done = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(target)],
                          capture_output=True, text=True, timeout=120, cwd=out)
    assert done.returncode == 0, done.stdout + done.stderr
    root = target / "ansible_collections" / "relpromote" / "release"
    assert (root / "playbooks" / "promote.yml").is_file()
    TIMES["build+install"] = time.monotonic() - started
    # ansible-lint spends most of its time waiting for the syntax checks it starts: it runs beside the host tests.
    lint = subprocess.Popen(
        [str(BIN / "ansible-lint"), "--offline", "--nocolor", "-q", "--profile", "production"], cwd=root, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(target),
                                                               "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
    )
    yield Installed(tarball, target, lint)
    if lint.poll() is None:
        lint.kill()
        lint.communicate()


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHostFarm]:
    with SshHostFarm(tmp_path_factory.mktemp("farm"), list(QA), first_octet=next(_blocks)) as hosts:
        yield hosts


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, farm: SshHostFarm) -> dict[str, Any]:
    """A relpromote project whose qa inventory is the two hosts, with releases 1.0.0 and 1.1.0 built."""
    base = tmp_path_factory.mktemp("project")
    cli = make_project(base / "proj")
    write_inventories(cli, farm)
    source = make_app_source(base / "app")
    digests = {version: build(cli, source, version, f"Hello {version}") for version in ("1.0.0", "1.1.0")}
    return {"cli": cli, "digests": digests}


def inputs(project: dict[str, Any], version: str) -> dict[str, Any]:
    """The job template's extra vars: what relpromote passes, as docs/awx.md's survey lists them."""
    cli: Cli = project["cli"]
    digest = project["digests"][version]
    return {
        "release_version": version,
        "release_digest": digest,
        "release_artifact": str(cli.cwd / ".relpromote" / "store" / "sha256" / f"{digest}.tar.gz"),
        "release_base_dir": "/opt/shop",
        "release_keep": 3,
        "release_health_timeout": 15,
    }


def collection_only(tmp: Path, installed: Installed, **extra: str) -> dict[str, str]:
    """An environment that knows the collection and nothing of this checkout: no ansible.cfg, no roles path."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    # SSH's control sockets in a short folder of the test's own (a socket's path has at most 108 bytes).
    sockets = tempfile.mkdtemp(prefix="rp-cp-", dir="/tmp")
    return {**env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": str(home), "ANSIBLE_SSH_CONTROL_PATH_DIR": sockets,
            "ANSIBLE_COLLECTIONS_PATH": str(installed), "ANSIBLE_HOST_KEY_CHECKING": "False", **extra}


def write_run_folder(tmp: Path, farm: SshHostFarm, project: dict[str, Any], version: str) -> Path:
    folder = tmp / f"job-{version}"
    folder.mkdir()
    (folder / "inventory.yml").write_text(yaml.safe_dump(farm.inventory(group_by={"app": list(QA)})))
    (folder / "extravars.yml").write_text(yaml.safe_dump(inputs(project, version)))
    return folder


def assert_live(farm: SshHostFarm, project: dict[str, Any], version: str) -> None:
    for host in QA:
        assert live_version(farm, host) == version
        assert farm[host].path(f"/opt/shop/releases/{version}/.release/DIGEST").read_text().strip() == project["digests"][version]
        assert health(farm, host)["version"] == version


def test_plain_ansible_playbook_runs_the_installed_promote(installed: Installed, farm: SshHostFarm, project: dict[str, Any], tmp_path: Path) -> None:
    folder = write_run_folder(tmp_path, farm, project, "1.0.0")
    started = time.monotonic()
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "inventory.yml", "relpromote.release.promote", "-e", "@extravars.yml"],
        cwd=folder, env=collection_only(tmp_path, installed.path), capture_output=True, text=True, timeout=300,
    )
    TIMES["ansible-playbook"] = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert_live(farm, project, "1.0.0")
    assert not farm[QA[0]].path("/opt/shop/.relpromote-lock.json").exists() or "held" not in farm[QA[0]].path(
        "/opt/shop/.relpromote-lock.json").read_text()


def test_ansible_navigator_runs_the_installed_promote_without_an_execution_environment(
    installed: Installed, farm: SshHostFarm, project: dict[str, Any], tmp_path: Path
) -> None:
    navigator = BIN / "ansible-navigator"
    assert navigator.exists(), "ansible-navigator is missing: scripts/bootstrap.sh installs the test extra"
    folder = write_run_folder(tmp_path, farm, project, "1.1.0")
    # As AWX runs it: the project's playbook file (docs/awx/project/promote.yml), an import of relpromote.release.promote.
    shutil.copy(REPO / "docs" / "awx" / "project" / "promote.yml", folder / "promote.yml")
    started = time.monotonic()
    done = subprocess.run(
        [str(navigator), "run", "promote.yml", "--ee", "false", "--mode", "stdout", "--pae", "false",
         "--lf", str(tmp_path / "navigator.log"), "-i", "inventory.yml", "-e", "@extravars.yml"],
        cwd=folder, env=collection_only(tmp_path, installed.path, ANSIBLE_PIPELINING="True"),
        capture_output=True, text=True, timeout=300,
    )
    TIMES["ansible-navigator"] = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert_live(farm, project, "1.1.0")
    history = farm[QA[0]].path("/opt/shop/.history").read_text().split()
    assert history[-2:] == ["1.0.0", "1.1.0"]


def test_relpromote_runs_the_installed_collection_with_content_collection(
    installed: Installed, farm: SshHostFarm, project: dict[str, Any]
) -> None:
    cli: Cli = project["cli"]
    config_path = cli.cwd / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["content"] = {"collection": "relpromote.release", "path": str(installed.path)}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    # The project's own copies are gone: only the installed collection can put the release live.
    for name in ("promote.yml", "host_unlock.yml"):
        (cli.cwd / "playbooks" / name).unlink()
    shutil.rmtree(cli.cwd / "roles" / "release_deploy")
    commit_project(cli, "run the installed collection")
    started = time.monotonic()
    result = cli.json("promote", "1.0.0", "--to", "qa", identity="oscar")
    TIMES["relpromote promote"] = time.monotonic() - started
    assert result["result"] == "succeeded" and sorted(result["switched"]) == list(QA)
    assert_live(farm, project, "1.0.0")
    recorded = ledger_payloads(cli, "promotion.finished")[-1]
    assert recorded["environment"] == "qa" and recorded["digest"] == project["digests"]["1.0.0"]


def test_the_installed_rollback_puts_the_hosts_back_on_an_earlier_release(
    installed: Installed, farm: SshHostFarm, project: dict[str, Any], tmp_path: Path
) -> None:
    """relpromote.release.rollback with pipelining: release_rollback's work runs with the host's Python from the
    collection's plugins (its module and the module_utils it imports, by the collection's name)."""
    assert live_version(farm, QA[0]) == "1.0.0"  # after relpromote's run above
    folder = write_run_folder(tmp_path, farm, project, "1.1.0")
    started = time.monotonic()
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "inventory.yml", "relpromote.release.rollback", "-e", "@extravars.yml"],
        cwd=folder, env=collection_only(tmp_path, installed.path, ANSIBLE_PIPELINING="True"), capture_output=True, text=True, timeout=300,
    )
    TIMES["rollback"] = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert_live(farm, project, "1.1.0")
    assert farm[QA[1]].path("/opt/shop/.history").read_text().split()[-1] == "1.1.0"


def test_ansible_builder_creates_the_execution_environments_build_context(installed: Installed, tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    shutil.copy(installed.tarball, tmp_path / "dist")
    shutil.copy(REPO / "execution-environment.yml", tmp_path)
    started = time.monotonic()
    done = subprocess.run([str(BIN / "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", "context"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    TIMES["ansible-builder create"] = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    build = tmp_path / "context" / "_build"
    named = yaml.safe_load((build / "requirements.yml").read_text())["collections"]
    assert named == [{"name": installed.tarball.name, "type": "file"}]  # the version built is the one it installs
    assert (build / installed.tarball.name).is_file()
    assert "relpromote" in (build / "requirements.txt").read_text().split()
    assert (tmp_path / "context" / "Dockerfile").is_file() or (tmp_path / "context" / "Containerfile").is_file()


def test_ansible_lint_passes_the_installed_collection_with_the_production_profile(installed: Installed) -> None:
    started = time.monotonic()
    output, _ = installed.lint.communicate(timeout=400)
    TIMES["ansible-lint (waited)"] = time.monotonic() - started
    assert installed.lint.returncode == 0, output[-4000:]
    print("measured:", {key: round(value, 1) for key, value in TIMES.items()})
