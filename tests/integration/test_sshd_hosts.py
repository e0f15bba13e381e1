"""The sshd host farm, proved with real Ansible: reachable, isolated, stoppable, named."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ansible_runner
import pytest

from relpromote.testing.sshd import SSHD, SshHostFarm

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path(SSHD).exists(), reason="openssh-server is not installed"),
]

# An address range of its own, so this module can run next to other suites' farms (they start at .1).
# Three addresses per pytest-xdist worker from .230 up, apart from the blocks tests/integration/conftest.py hands out.
FIRST_OCTET = 230 + 3 * int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


@pytest.fixture(scope="module", autouse=True)
def venv_on_path() -> Iterator[None]:
    # ansible-runner finds ansible/ansible-playbook through PATH: the venv's bin must come first.
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{old_path}"
    yield
    os.environ["PATH"] = old_path


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHostFarm]:
    with SshHostFarm(tmp_path_factory.mktemp("farm"), ["host1", "host2"], first_octet=FIRST_OCTET) as started:
        yield started


def adhoc(inventory: dict[str, Any], tmp_path: Path, module: str, args: str = "", pattern: str = "all", **envvars: str) -> Any:
    """One ad-hoc Ansible run, with a fresh private data dir so no env file of an earlier run applies."""
    run_id = uuid.uuid4().hex[:8]
    private = tmp_path / f"runner-{run_id}"
    private.mkdir()
    # Short, under /tmp: a Unix socket path must stay below 108 bytes, and pytest's tmp paths under xdist do not.
    control = Path(tempfile.mkdtemp(prefix="cp-", dir="/tmp"))
    return ansible_runner.run(
        private_data_dir=str(private),
        inventory=inventory,
        host_pattern=pattern,
        module=module,
        module_args=args,
        envvars={
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            # Control sockets of this run only: a master left from another run must not answer for a stopped host.
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
            **envvars,
        },
        suppress_env_files=True,
        quiet=True,
    )


def ok_results(runner: Any) -> dict[str, dict[str, Any]]:
    return {event["event_data"]["host"]: event["event_data"]["res"] for event in runner.events if event["event"] == "runner_on_ok"}


def test_ping_reaches_every_host(farm: SshHostFarm, tmp_path: Path) -> None:
    runner = adhoc(farm.inventory(), tmp_path, "ping")
    assert runner.rc == 0, runner.stdout.read()
    assert set(runner.stats["ok"]) == {"host1", "host2"}
    assert not runner.stats["dark"]


def test_file_deployed_to_opt_stays_on_its_host(farm: SshHostFarm, tmp_path: Path) -> None:
    remote = f"/opt/relpromote-sshd-test-{uuid.uuid4().hex[:8]}"
    runner = adhoc(farm.inventory(), tmp_path, "copy", f"content=hello dest={remote}", pattern="host1")
    assert runner.rc == 0, runner.stdout.read()
    assert farm["host1"].path(remote).read_text() == "hello"
    assert not farm["host2"].path(remote).exists()
    if farm["host1"].isolated:
        assert not Path(remote).exists(), "the controller's real /opt must not see a host's file"
    else:  # pragma: no cover - not root: the host's /opt is the controller's, see the module docstring
        Path(remote).unlink(missing_ok=True)


def test_hostname_is_the_host_name(farm: SshHostFarm, tmp_path: Path) -> None:
    if not farm["host1"].isolated:
        pytest.skip("without root the hosts share the controller's hostname")
    runner = adhoc(farm.inventory(), tmp_path, "command", "hostname")
    assert runner.rc == 0, runner.stdout.read()
    assert {host: res["stdout"] for host, res in ok_results(runner).items()} == {"host1": "host1", "host2": "host2"}


def test_stopped_host_is_unreachable_until_restarted(farm: SshHostFarm, tmp_path: Path) -> None:
    farm.stop_host("host2")
    assert not farm.is_running("host2")
    try:
        runner = adhoc(farm.inventory(), tmp_path, "ping")
        assert set(runner.stats["dark"]) == {"host2"}
        assert set(runner.stats["ok"]) == {"host1"}
    finally:
        restarted = farm.start_host("host2")
    assert restarted.pid == farm["host2"].pid
    runner = adhoc(farm.inventory(), tmp_path, "ping")
    assert runner.rc == 0, runner.stdout.read()
    assert set(runner.stats["ok"]) == {"host1", "host2"}


def test_farm_trusts_only_the_given_public_key(tmp_path: Path) -> None:
    # Production tests bring a key kept in a vault: the farm trusts its public half and owns no key
    # file; Ansible gets the private half as a variable (ssh agent mode) and never from disk.
    key = tmp_path / "vaulted"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    with SshHostFarm(tmp_path / "farm", ["prod1"], first_octet=FIRST_OCTET + 2, authorized_keys=[key.with_suffix(".pub").read_text()]) as farm:
        assert farm.private_key is None
        assert "ansible_ssh_private_key_file" not in farm.inventory()["all"]["hosts"]["prod1"]
        inventory = farm.inventory(extra_vars={"ansible_ssh_private_key": key.read_text()})
        runner = adhoc(inventory, tmp_path, "ping", ANSIBLE_SSH_AGENT="auto")
        assert runner.rc == 0, runner.stdout.read()
        # Any other key is refused.
        other = tmp_path / "other"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        inventory = farm.inventory(extra_vars={"ansible_ssh_private_key": other.read_text()})
        runner = adhoc(inventory, tmp_path, "ping", ANSIBLE_SSH_AGENT="auto")
        assert set(runner.stats["dark"]) == {"prod1"}
