"""Real sshd hosts per test, with addresses that never collide between pytest-xdist workers."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from relpromote.testing.sshd import SSHD, SshHostFarm
from tests.helpers import Cli, git_run

ENVIRONMENTS = ("qa", "deployment", "production")
_worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
# Each worker owns 100 addresses of 127.0.77.0/24 (from .10); tests take blocks of 8 in turn.
_blocks = itertools.cycle(range(10 + 100 * _worker, 10 + 100 * _worker + 96, 8))


def why_it_cannot_run() -> str | None:
    """Why this machine cannot run the integration suite (real sshd hosts, each in its own mount
    namespace with a private /opt, /srv, /root and /home), or None."""
    if os.geteuid() != 0:
        return ("needs root: each test host is an sshd in its own mount namespace with a private /opt "
                "(run it as root, as CI does; the fast suite is tests/unit and tests/cli)")
    if not Path(SSHD).exists():
        return f"openssh-server is not installed ({SSHD} is missing): run scripts/bootstrap.sh --system"
    if shutil.which("unshare") is None:
        return "unshare(1) is missing (util-linux): the test hosts cannot get private mounts"
    return None


def pytest_report_header() -> str | None:
    why = why_it_cannot_run()
    return f"integration suite: cannot run here, every integration test is skipped: {why}" if why else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    why = why_it_cannot_run()
    mine = [item for item in items if "integration" in str(item.fspath)]
    if why and mine and os.environ.get("CI"):
        raise pytest.UsageError(f"the integration suite cannot run on this CI machine: {why}")
    for item in mine:
        item.add_marker(pytest.mark.integration)
        if why:
            item.add_marker(pytest.mark.skip(reason=f"integration suite: {why}"))


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[SshHostFarm]:
    """Two hosts per environment: qa-app-1, qa-app-2, deployment-app-1, ..."""
    names = [f"{env}-app-{n}" for env in ENVIRONMENTS for n in (1, 2)]
    with SshHostFarm(tmp_path / "farm", names, first_octet=next(_blocks)) as hosts:
        yield hosts


def environment_inventory(farm: SshHostFarm, environment: str, **host_vars: Any) -> dict[str, Any]:
    names = [n for n in farm.names if n.startswith(f"{environment}-")]
    inventory = farm.inventory(group_by={"app": names})
    inventory["all"]["hosts"] = {n: {**v, **host_vars} for n, v in inventory["all"]["hosts"].items() if n in names}
    return inventory


def write_inventories(project: Cli, farm: SshHostFarm, group_vars: dict[str, Any] | None = None) -> None:
    """Point the project's inventories at the farm and commit them (production is protected)."""
    for environment in ENVIRONMENTS:
        folder = project.cwd / "inventories" / environment
        (folder / "hosts.yml").write_text(yaml.safe_dump(environment_inventory(farm, environment), sort_keys=False))
        settings = {
            "release_base_dir": "/opt/shop",
            "release_keep": 3,
            "release_service_port": 8080,
            "release_health_timeout": 15,
            **(group_vars or {}),
        }
        (folder / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
        (folder / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    commit_project(project, "point inventories at the test hosts")


def commit_project(project: Cli, message: str) -> None:
    git_run(project.cwd, "add", "-A")
    git_run(project.cwd, "commit", "-q", "-m", message)
