"""Errors Ansible meets before any host ran, on real sshd hosts: a wrong vault password and a YAML error in group_vars
are reported as Ansible's own reason, on one line, exit 2, with no secret; never as "no hosts matched"."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import RELPROMOTE, make_app_source, make_project, one_line_error
from tests.integration.conftest import commit_project, write_inventories
from tests.integration.test_promote import build

VAULT_PASSWORD = "right-vault-pass-5c1e"
SECRET = "app-secret-only-in-the-vault-9d2b"


def test_a_yaml_error_in_group_vars_is_ansibles_reason_on_one_line(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    source = make_app_source(tmp_path / "app")
    build(project, source, "1.0.0", "Hello")
    settings = project.cwd / "inventories" / "qa" / "group_vars" / "all" / "main.yml"
    settings.write_text(settings.read_text() + "db_password: yaml-secret-4471\n  oops: [unclosed\n")
    failed = project.run("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert failed.returncode == 2, failed.stderr
    line = one_line_error(failed)
    assert "Ansible stopped before any host ran" in line and "YAML" in line, line
    assert "no hosts matched" not in line and "yaml-secret-4471" not in failed.stderr + failed.stdout
    assert not farm["qa-app-1"].path("/opt/shop/current").exists()
    verify = project.json("verify", "qa", identity="oscar", expect=2)
    assert "YAML" in verify["error"] and "\n" not in verify["error"]


def test_a_wrong_vault_password_is_ansibles_reason_without_the_secret(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    password = secrets / "qa-vault-pass"
    password.write_text(VAULT_PASSWORD + "\n")
    password.chmod(0o600)
    vault = project.cwd / "inventories" / "qa" / "group_vars" / "all" / "vault.yml"
    vault.write_text(yaml.safe_dump({"vault_app_secret": SECRET}))
    subprocess.run([str(Path(RELPROMOTE).parent / "ansible-vault"), "encrypt", "--vault-id", f"qa@{password}", str(vault)],
                   check=True, capture_output=True)
    config_path = project.cwd / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["environments"]["qa"]["vault"] = {"id": "qa", "password": {"file": str(password)}}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    commit_project(project, "qa secrets in a vault")
    source = make_app_source(tmp_path / "app")
    build(project, source, "1.0.0", "Hello")
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)  # the right password works

    password.write_text("a-wrong-password-0000\n")
    failed = project.run("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert failed.returncode == 2, failed.stderr
    line = one_line_error(failed)
    assert "Ansible stopped before any host ran" in line and "Decryption failed" in line, line
    everything = failed.stderr + failed.stdout
    assert SECRET not in everything and VAULT_PASSWORD not in everything and "a-wrong-password-0000" not in everything
    assert "no hosts matched" not in line
