"""Locked-down production and one run per environment, on real sshd hosts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import RELPROMOTE, Cli, make_app_source, make_project, one_line_error
from tests.integration.conftest import _blocks, commit_project, environment_inventory, write_inventories
from tests.integration.test_promote import build, health, ledger_payloads, live_version

VAULT_PASSWORD = "correct-horse-vault-7f3a9c"
APP_SECRET = "app-secret-5d1e0b7c42"


class CommandLineWatch:
    """Samples every process's command line while a run goes on: secrets must never appear there."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.seen: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                self.seen.extend(s for s in self.secrets if s in line)
            self.samples += 1
            time.sleep(0.02)

    def __enter__(self) -> CommandLineWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def files_containing(root: Path, secrets: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found.extend(f"{path}: {s[:12]}…" for s in secrets if s.encode() in data)
    return found


@pytest.fixture
def farms(tmp_path: Path) -> Iterator[tuple[SshHostFarm, SshHostFarm, Path]]:
    """qa and deployment hosts with the farm's key; production hosts that accept only a vaulted key."""
    key = tmp_path / "prod_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "prod", "-f", str(key)], check=True)
    names = [f"{env}-app-{n}" for env in ("qa", "deployment") for n in (1, 2)]
    with SshHostFarm(tmp_path / "farm", names, first_octet=next(_blocks)) as lower:
        with SshHostFarm(tmp_path / "prodfarm", ["production-app-1", "production-app-2"], first_octet=next(_blocks),
                         authorized_keys=[(tmp_path / "prod_key.pub").read_text().strip()]) as production:
            yield lower, production, key


def vault_production(project: Cli, production: SshHostFarm, key: Path, password_file: Path) -> list[str]:
    """Production's inventory with its SSH key and an app secret only in an ansible-vault file."""
    folder = project.cwd / "inventories" / "production"
    (folder / "hosts.yml").write_text(yaml.safe_dump(environment_inventory(production, "production"), sort_keys=False))
    settings = {
        "release_base_dir": "/opt/shop", "release_keep": 3, "release_service_port": 8080, "release_health_timeout": 15,
        "ansible_ssh_private_key": "{{ vault_ssh_private_key }}",
        "app_secret": "{{ vault_app_secret }}",
    }
    (folder / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    private_key = key.read_text()
    vault_file = folder / "group_vars" / "all" / "vault.yml"
    vault_file.write_text(yaml.safe_dump({"vault_ssh_private_key": private_key, "vault_app_secret": APP_SECRET}))
    password_file.write_text(VAULT_PASSWORD + "\n")
    password_file.chmod(0o600)
    subprocess.run([str(Path(RELPROMOTE).parent / "ansible-vault"), "encrypt", "--vault-id", f"prod@{password_file}", str(vault_file)],
                   check=True, capture_output=True)
    key.unlink()  # from now on the key exists only inside the vault
    config_path = project.cwd / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["environments"]["production"]["vault"] = {"id": "prod", "password": {"file": str(password_file)}}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    commit_project(project, "production secrets in the vault")
    key_lines = [line for line in private_key.splitlines() if line and not line.startswith("-----")]
    return [VAULT_PASSWORD, APP_SECRET, *key_lines]


def test_production_only_with_approval_and_vault_and_no_secret_leaks(tmp_path: Path, farms: tuple[SshHostFarm, SshHostFarm, Path]) -> None:
    lower, production, key = farms
    project = make_project(tmp_path / "proj")
    write_inventories(project, lower)
    password_file = tmp_path / "secrets" / "prod-vault-pass"
    password_file.parent.mkdir(mode=0o700)
    secrets = vault_production(project, production, key, password_file)
    build(project, make_app_source(tmp_path / "app"), "1.0.0", "first")

    skip = project.run("promote", "1.0.0", "--to", "production", identity="alice")
    assert skip.returncode == 3 and "rule 'role'" not in skip.stderr and "rule 'order'" in one_line_error(skip)
    wrong_role = project.run("promote", "1.0.0", "--to", "qa", identity="quinn")
    assert wrong_role.returncode == 3 and "quinn (qa) may not promote in qa" in one_line_error(wrong_role)
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
    project.run("accept", "1.0.0", "--env", "qa", identity="quinn", check=True)
    project.run("promote", "1.0.0", "--to", "deployment", identity="oscar", check=True)
    project.run("accept", "1.0.0", "--env", "deployment", identity="quinn", check=True)

    unapproved = project.run("promote", "1.0.0", "--to", "production", identity="alice")
    assert unapproved.returncode == 3 and "rule 'approval'" in one_line_error(unapproved)
    self_approval = project.run("approve", "1.0.0", "--env", "production", "--ticket", "CHG-7", identity="alice")
    assert self_approval.returncode == 3  # alice is no change manager
    project.run("approve", "1.0.0", "--env", "production", "--ticket", "CHG-7", "--expires", "1h", identity="carol", check=True)
    operator = project.run("promote", "1.0.0", "--to", "production", identity="oscar")
    assert operator.returncode == 3 and "rule 'role'" in one_line_error(operator)

    password_file.rename(password_file.with_suffix(".away"))
    no_vault = project.run("promote", "1.0.0", "--to", "production", identity="alice")
    assert no_vault.returncode == 2 and "does not exist" in one_line_error(no_vault)
    assert not production["production-app-1"].path("/opt/shop").exists()
    password_file.with_suffix(".away").rename(password_file)

    plan = project.run("promote", "1.0.0", "--to", "production", "--check", identity="alice")
    assert plan.returncode == 0, plan.stderr
    for rule in ("role", "not-rejected", "order", "approval", "freeze", "committed"):
        assert f"pass  {rule}" in plan.stdout

    with CommandLineWatch(secrets) as watch:
        result = subprocess.run([RELPROMOTE, "--json", "promote", "1.0.0", "--to", "production"], cwd=project.cwd,
                                env={**os.environ, "RELPROMOTE_IDENTITY": str(project.cwd / ".keys" / "alice.key")},
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for host in ("production-app-1", "production-app-2"):
        assert live_version(production, host) == "1.0.0" and health(production, host)["version"] == "1.0.0"
    assert json.loads(result.stdout)["approval"]["ticket"] == "CHG-7"

    assert watch.samples > 20 and watch.seen == []
    assert files_containing(project.cwd / ".relpromote", secrets) == []  # ledger, run dirs, artifacts, store
    assert not any(s in result.stdout + result.stderr for s in secrets)
    assert list((project.cwd / ".relpromote" / "runs").glob("*/env")) == []


def test_two_promotions_at_once_one_runs_one_is_busy(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    build(project, make_app_source(tmp_path / "app"), "1.0.0", "first")
    env = {**os.environ, "RELPROMOTE_IDENTITY": str(project.cwd / ".keys" / "oscar.key")}
    runs = [subprocess.Popen([RELPROMOTE, "promote", "1.0.0", "--to", "qa"], cwd=project.cwd, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = sorted((run.wait(timeout=300), run.stderr.read() if run.stderr else "") for run in runs)
    assert [code for code, _ in outcomes] == [0, 4]
    assert "qa is locked by oscar" in outcomes[1][1] and "lock id" in outcomes[1][1]
    assert len(ledger_payloads(project, "promotion.finished")) == 1
    assert project.json("lock", "status", "--env", "qa")["locked"] is False


def test_a_crashed_runs_lock_is_released_by_id(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    build(project, make_app_source(tmp_path / "app"), "1.0.0", "first")
    env = {**os.environ, "RELPROMOTE_IDENTITY": str(project.cwd / ".keys" / "oscar.key")}
    doomed = subprocess.Popen([RELPROMOTE, "promote", "1.0.0", "--to", "qa"], cwd=project.cwd, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not project.json("lock", "status", "--env", "qa")["locked"]:
        assert time.monotonic() < deadline, "the promotion never took the lock"
        time.sleep(0.05)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    _kill_orphaned_ansible(project.cwd)

    held = project.json("lock", "status", "--env", "qa")["lock"]
    busy = project.run("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert busy.returncode == 4 and held["lock_id"] in one_line_error(busy)
    wrong_id = project.run("lock", "release", "--env", "qa", "--lock-id", "nope", identity="oscar")
    assert wrong_id.returncode == 2
    not_allowed = project.run("lock", "release", "--env", "qa", "--lock-id", held["lock_id"], identity="quinn")
    assert not_allowed.returncode == 3
    project.run("lock", "release", "--env", "qa", "--lock-id", held["lock_id"], identity="oscar", check=True)
    released = ledger_payloads(project, "lock.released")
    assert [r["lock"]["lock_id"] for r in released] == [held["lock_id"]]
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
    assert live_version(farm, "qa-app-1") == "1.0.0"
    assert project.json("audit", "verify")["ok"] is True


def _kill_orphaned_ansible(project_dir: Path) -> None:
    """ansible-playbook runs in its own session; a SIGKILLed relpromote leaves it behind."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                line = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "ansible-playbook" in line and str(project_dir) in line:
                os.kill(int(proc.name), signal.SIGKILL)
    time.sleep(0.5)
