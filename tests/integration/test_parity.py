"""`relpromote parity` on real sshd hosts: each test sets up one real difference on one host of deployment
(a Python package's version in its private /opt, a value in its app config, the CPUs its processes may use)
and the report names exactly that difference and nothing else; the result lands in the ledger and the
production gate reads it. Configuration values never appear in the output, the ledger or the run folders.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import Cli, make_project
from tests.integration.conftest import commit_project, write_inventories

SECRET = "postgresql://shop:s3cr3t-value-7f1c@db.internal/shop"
PARITY = {
    "packages": ["openssh-server", "libc6"],
    "python_packages": ["shopkit"],
    "python_path": ["/opt/shop/venv/lib/python3*/site-packages"],
    "runtime": "/usr/bin/python3 --version",
    "app_config": ["/opt/shop/shared/app.env"],
    # The test hosts share the machine's network: only sshd's port is theirs (others' listeners come and go).
    "ports": ["22"],
    "gate": {"environment": "production", "mirror": "deployment", "max_age": "24h"},
}


def install(farm: SshHostFarm, host: str, shopkit: str = "2.4.1", db_url: str = SECRET) -> None:
    """The app's environment on one host: a Python distribution in its venv and its config file."""
    site = farm[host].path("/opt/shop/venv/lib/python3.11/site-packages")
    for old in site.glob("shopkit-*.dist-info") if site.exists() else []:
        for member in old.iterdir():
            member.unlink()
        old.rmdir()
    info = site / f"shopkit-{shopkit}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: shopkit\nVersion: {shopkit}\n\nThe shop's toolkit.\n")
    shared = farm[host].path("/opt/shop/shared")
    shared.mkdir(parents=True, exist_ok=True)
    (shared / "app.env").write_text(f"# shop settings\nDB_URL={db_url}\nWORKERS=4\nexport FEATURE_FLAGS=checkout\n")


def cpus_of_host(farm: SshHostFarm, host: str, cpus: set[int]) -> None:
    """Pin every process of the host (its sshd and the sessions it forked) to `cpus`: what new sessions inherit."""
    namespace = os.readlink(f"/proc/{farm[host].pid}/ns/mnt")
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.readlink(f"/proc/{entry.name}/ns/mnt") == namespace:
                    os.sched_setaffinity(int(entry.name), cpus)
            except OSError:
                continue


@pytest.fixture
def project(tmp_path: Path, farm: SshHostFarm) -> Iterator[Cli]:
    cli = make_project(tmp_path / "proj", parity=PARITY)
    write_inventories(cli, farm)
    for host in farm.names:
        install(farm, host)
    yield cli


def parity(project: Cli, expect: int) -> dict[str, Any]:
    result = project.run("--json", "parity", "deployment", "production", identity="oscar")
    assert result.returncode == expect, result.stderr[-3000:]
    document: dict[str, Any] = json.loads(result.stdout)
    assert document["ok"] is (expect == 0)
    assert all(isinstance(json.loads(line), dict) for line in result.stderr.splitlines())
    assert SECRET not in result.stdout + result.stderr
    return dict(document["parity"])


def differences(report: dict[str, Any]) -> list[tuple[str, str, str, list[str]]]:
    return [(d["group"], d["fact"], d["item"], d["off_hosts"]) for d in report["differences"]]


def recorded(project: Cli) -> list[dict[str, Any]]:
    with sqlite3.connect(project.cwd / ".relpromote" / "ledger.db") as db:
        rows = db.execute("SELECT payload FROM entries WHERE kind = 'parity.checked' ORDER BY seq").fetchall()
    return [json.loads(row[0]) for row in rows]


def nothing_leaked(project: Cli) -> None:
    """The config value is nowhere relpromote writes: the ledger, the run folders."""
    assert SECRET.encode() not in (project.cwd / ".relpromote" / "ledger.db").read_bytes()
    for path in (project.cwd / ".relpromote" / "runs").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_identical_environments_are_within_and_the_check_is_recorded(project: Cli, farm: SshHostFarm) -> None:
    report = parity(project, 0)
    assert report["result"] == "within" and report["differences"] == [] and report["groups"] == ["app"]
    assert report["hosts"] == {"deployment": ["deployment-app-1", "deployment-app-2"], "production": ["production-app-1", "production-app-2"]}
    assert [(p["environment"], p["reference"], p["result"]) for p in recorded(project)] == [("deployment", "production", "within")]
    human = project.run("parity", "deployment", "production", identity="oscar")
    assert human.returncode == 0 and human.stdout.startswith("deployment mirrors production within tolerance: 1 group")
    nothing_leaked(project)


def test_a_package_version_on_one_host_is_named_and_nothing_else(project: Cli, farm: SshHostFarm) -> None:
    install(farm, "deployment-app-2", shopkit="2.5.0")
    report = parity(project, 3)
    assert differences(report) == [("app", "packages", "python:shopkit", ["deployment-app-2"])]
    assert report["differences"][0]["values"] == {
        "deployment": {"2.4.1": ["deployment-app-1"], "2.5.0": ["deployment-app-2"]},
        "production": {"2.4.1": ["production-app-1", "production-app-2"]},
    }
    human = project.run("parity", "deployment", "production", identity="oscar")
    assert human.returncode == 3 and "python:shopkit" in human.stdout and "2.5.0 (deployment-app-2)" in " ".join(human.stdout.split())
    assert human.stderr.startswith("relpromote: deployment does not mirror production: 1 difference;") and len(human.stderr.splitlines()) == 1
    assert [p["result"] for p in recorded(project)] == ["drifted", "drifted"]


def test_a_config_value_on_one_host_is_named_by_key_never_shown(project: Cli, farm: SshHostFarm) -> None:
    install(farm, "deployment-app-1", db_url=SECRET.replace("db.internal", "db-staging.internal"))
    report = parity(project, 3)
    assert differences(report) == [("app", "config", "app.env:DB_URL", ["deployment-app-1"])]
    hashes = report["differences"][0]["values"]
    assert all(len(value) == 16 for side in hashes.values() for value in side)  # salted hashes, never the values
    nothing_leaked(project)


def test_the_cpus_one_host_may_use_are_named_and_nothing_else(project: Cli, farm: SshHostFarm) -> None:
    everything = os.sched_getaffinity(0)
    if len(everything) < 2:
        pytest.skip("needs a machine with at least 2 CPUs to give one host fewer")
    cpus_of_host(farm, "deployment-app-1", {min(everything)})
    report = parity(project, 3)
    assert differences(report) == [("app", "cpu_count", "", ["deployment-app-1"])]
    assert report["differences"][0]["values"]["deployment"]["1"] == ["deployment-app-1"]


def test_the_production_gate_reads_the_last_check(project: Cli, farm: SshHostFarm) -> None:
    """promote --check shows the parity gate: never checked, then a drifted check, then a passed one (order still refuses)."""
    from tests.helpers import make_app_source, write_manifest

    source = make_app_source(project.cwd.parent / "app")
    manifest = write_manifest(project.cwd / "release-1.0.0.yml", "1.0.0")
    commit_project(project, "plan 1.0.0")
    project.run("build", "1.0.0", "--source", str(source), "--manifest", str(manifest), identity="alice", check=True)

    def parity_gate() -> dict[str, Any]:
        result = project.run("--json", "promote", "1.0.0", "--to", "production", "--check", identity="alice")
        assert result.returncode == 3, result.stderr
        return next(g for g in json.loads(result.stdout)["gates"] if g["rule"] == "parity")

    assert parity_gate() == {"rule": "parity", "passed": False,
                             "reason": "deployment was never checked against production; run `relpromote parity deployment production`"}
    install(farm, "deployment-app-2", shopkit="2.5.0")
    parity(project, 3)
    gate = parity_gate()
    assert not gate["passed"] and "did not mirror production" in gate["reason"] and "python:shopkit" in gate["reason"]
    install(farm, "deployment-app-2")
    parity(project, 0)
    gate = parity_gate()
    assert not gate["passed"] and gate["reason"].startswith("1.0.0 was not accepted in deployment, the mirror of production")


def test_config_without_parity_section_still_loads(tmp_path: Path) -> None:
    cli = make_project(tmp_path / "plain")
    config = yaml.safe_load((cli.cwd / "relpromote.yml").read_text())
    assert "parity" not in config and cli.run("status").returncode == 0
