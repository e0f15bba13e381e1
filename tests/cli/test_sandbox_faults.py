"""Faults on the sandbox's simulated hosts (local connection, folders under hosts/): a rollback to a release whose
folder on one host lost files. The README promises that such a release is refused naming the paths and unpacked again
from the verified artifact; and whatever happens, `status` must name every host that is off the recorded release."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from relpromote.usecases.sandbox import stop_sandbox_apps
from tests.helpers import Cli, git_run, write_manifest


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Cli]:
    Cli(tmp_path).run("init", str(tmp_path / "shop"), "--sandbox", check=True)
    cli = Cli(tmp_path / "shop")
    config = cli.cwd / "relpromote.yml"  # no smoke tests after each promotion: not what this is about, and faster
    config.write_text("".join(line for line in config.read_text().splitlines(keepends=True) if "playbooks/smoke_test.yml" not in line))
    try:
        for name, role in (("alice", "release_manager"), ("oscar", "operator")):
            cli.run("keygen", name, "--out", str(cli.cwd / ".keys" / f"{name}.key"), check=True)
            cli.run("people", "add", name, "--key", str(cli.cwd / ".keys" / f"{name}.key.pub"), "--role", role, check=True)
        for version in ("1.0.0", "1.1.0"):
            (cli.cwd / "app-source" / "greeting.txt").write_text(f"hello from {version}\n")
            git_run(cli.cwd / "app-source", "commit", "-qam", version)
            manifest = write_manifest(cli.cwd.parent / f"release-{version}.yml", version)
            cli.run("build", version, "--source", "app-source", "--manifest", str(manifest), identity="alice", check=True)
            cli.run("promote", version, "--to", "qa", identity="oscar", check=True)
        yield cli
    finally:
        stop_sandbox_apps(cli.cwd)


def test_a_rollback_to_a_release_that_lost_files_on_a_host_repairs_it(sandbox: Cli) -> None:
    damaged = sandbox.cwd / "hosts" / "qa-app-2" / "opt" / "shop" / "releases" / "1.0.0"
    for folder in (damaged, *damaged.rglob("*")):
        if folder.is_dir():
            folder.chmod(0o755)
    shutil.rmtree(damaged / "bin")
    result = sandbox.run("rollback", "--env", "qa", "--reason", "back to 1.0.0", identity="alice")
    status = {row["environment"]: row for row in sandbox.json("status")["environments"]}["qa"]
    links = {host: (sandbox.cwd / "hosts" / host / "opt" / "shop" / "current").readlink().name for host in ("qa-app-1", "qa-app-2")}
    off = sorted(host for host, release in links.items() if release != status["current"])
    assert set(off) <= set(status["needs_a_person"]) | set(status["hosts_in_doubt"]) | set(status["drifted"]), (status, links)
    assert result.returncode == 0, result.stderr
    assert (damaged / "bin" / "restart").is_file() and links == {"qa-app-1": "1.0.0", "qa-app-2": "1.0.0"}
