"""A step of the switch that fails on one host while the others went live (roles/release_deploy's release_live).

The role fails such a host in its block's rescue under the name of the step (relpromote tells a failed verification
from a failed restart by that name). With any_errors_fatal the other hosts are stopped at that moment, and then a play
with max_fail_percentage (promote.yml) ends the failed host's rescue after its first task (ansible-core 2.19): the host
is counted "rescued", not failed. relpromote still names it and what failed there, under the step's task name, and rolls
back every host that switched (relpromote/adapters/runner.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import make_app_source, make_project, one_line_error
from tests.integration.conftest import _blocks, write_inventories
from tests.integration.test_promote import build, health, ledger_payloads, live_version

QA = ("qa-app-1", "qa-app-2")
HOOK = "/opt/shop/current/bin/restart"  # the default: the hook the release ships


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHostFarm]:
    with SshHostFarm(tmp_path_factory.mktemp("farm"), list(QA), first_octet=next(_blocks)) as hosts:
        yield hosts


def test_a_restart_that_fails_on_one_host_names_it_and_rolls_every_switched_host_back(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm, {"release_health_timeout": 4})
    source = make_app_source(tmp_path / "app")
    build(project, source, "1.0.0", "first")
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)

    # 1.1.0's hook fails on qa-app-2 only (each test host has its own hostname); qa-app-1 goes live.
    hook = source / "bin" / "restart"
    shebang, rest = hook.read_text().split("\n", 1)
    hook.write_text(f'{shebang}\nif [ "$(hostname)" = qa-app-2 ]; then echo "no room on $(hostname)" >&2; exit 7; fi\n{rest}')
    build(project, source, "1.1.0", "second")

    failed = project.run("promote", "1.1.0", "--to", "qa", identity="oscar")
    error = one_line_error(failed)
    assert failed.returncode == 1, failed.stderr
    assert f'qa-app-2: the restart hook "{HOOK}" exited with 7' in error and "no room on qa-app-2" in error, error
    assert "qa-app-1:" not in error.split("; rolled back")[0], error
    assert "rolled back qa-app-1→1.0.0, qa-app-2→1.0.0" in error, error
    for host in QA:
        assert live_version(farm, host) == "1.0.0" and health(farm, host)["version"] == "1.0.0", host

    recorded = ledger_payloads(project, "promotion.finished")[-1]
    assert recorded["result"] == "rolled_back" and recorded["rollback"]["succeeded"] is True
    assert recorded["verification_failed"] is False  # a restart that failed: the release may be promoted again
    assert sorted(recorded["switched"]) == list(QA)
    by_host = {host["host"]: host for host in recorded["hosts"]}
    assert by_host["qa-app-2"]["failed_task"] == "Restart the application if needed, wait until it answers the release's version, prune"
    assert by_host["qa-app-2"]["error"]["step"] == "restart" and by_host["qa-app-2"]["error"]["rc"] == 7
    assert by_host["qa-app-1"]["failed_task"] == ""
