"""relpromote leaves release_deploy's user-task includes out of a run (--skip-tags release_user_tasks) only when no file
Ansible reads variables from for the run can set release_user_tasks (relpromote/usecases/runs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relpromote.usecases.runs import may_set_user_tasks


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    inventory = tmp_path / "inventories" / "qa"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "hosts.yml").write_text("app:\n  hosts:\n    web1: {ansible_host: 127.0.0.1}\n")
    (inventory / "group_vars" / "all" / "main.yml").write_text("release_base_dir: /opt/shop\n")
    playbook = tmp_path / "playbooks" / "promote.yml"
    playbook.parent.mkdir()
    playbook.write_text("- hosts: app\n  roles: [release_deploy]\n")
    return inventory, playbook


def test_an_inventory_without_user_tasks_lets_the_run_leave_them_out(layout: tuple[Path, Path]) -> None:
    inventory, playbook = layout
    assert not may_set_user_tasks(inventory, playbook)


@pytest.mark.parametrize("where", ["group_vars/all/main.yml", "host_vars/web1.yml", "hosts.yml", "group_vars/app.yml"])
def test_a_file_of_the_inventory_naming_them_keeps_them(layout: tuple[Path, Path], where: str) -> None:
    inventory, playbook = layout
    path = inventory / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((path.read_text() if path.exists() else "") + "release_user_tasks: {after_health: user_tasks/undrain.yml}\n")
    assert may_set_user_tasks(inventory, playbook)


def test_an_encrypted_file_keeps_them_as_its_names_cannot_be_read(layout: tuple[Path, Path]) -> None:
    inventory, playbook = layout
    (inventory / "group_vars" / "all" / "vault.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n6162636465\n")
    assert may_set_user_tasks(inventory, playbook)


def test_an_executable_in_the_inventory_keeps_them(layout: tuple[Path, Path]) -> None:
    inventory, playbook = layout
    script = inventory / "dynamic.py"
    script.write_text("#!/usr/bin/env python3\nprint('{}')\n")
    script.chmod(0o755)
    assert may_set_user_tasks(inventory, playbook)


def test_vars_beside_the_playbook_in_the_playbook_or_in_an_extra_vars_file_keep_them(layout: tuple[Path, Path], tmp_path: Path) -> None:
    inventory, playbook = layout
    beside = playbook.parent / "group_vars" / "all.yml"
    beside.parent.mkdir()
    beside.write_text("release_user_tasks: {before_unpack: drain.yml}\n")
    assert may_set_user_tasks(inventory, playbook)
    beside.unlink()
    playbook.write_text(playbook.read_text() + "  vars: {release_user_tasks: {before_unpack: drain.yml}}\n")
    assert may_set_user_tasks(inventory, playbook)
    playbook.write_text("- hosts: app\n")
    extra = tmp_path / "extra.yml"
    extra.write_text("release_user_tasks: {}\n")
    assert not may_set_user_tasks(inventory, playbook)
    assert may_set_user_tasks(inventory, playbook, (str(extra),))


def test_an_inventory_given_as_one_file(layout: tuple[Path, Path]) -> None:
    inventory, playbook = layout
    assert not may_set_user_tasks(inventory / "hosts.yml", playbook)
    (inventory / "hosts.yml").write_text("all:\n  vars:\n    release_user_tasks: {after_switch: warm.yml}\n")
    assert may_set_user_tasks(inventory / "hosts.yml", playbook)


def test_group_vars_beside_an_inventory_file_keep_them(layout: tuple[Path, Path]) -> None:
    inventory, playbook = layout
    (inventory / "group_vars" / "all" / "main.yml").write_text("release_user_tasks: {after_switch: warm.yml}\n")
    assert may_set_user_tasks(inventory / "hosts.yml", playbook)


@pytest.mark.parametrize("reads", ["  vars_files: [../vars/common.yml]\n", "  tasks:\n    - ansible.builtin.include_vars: ../vars/common.yml\n"])
def test_a_playbook_reading_other_variable_files_keeps_them(layout: tuple[Path, Path], reads: str) -> None:
    inventory, playbook = layout
    playbook.write_text(playbook.read_text() + reads)
    assert may_set_user_tasks(inventory, playbook)
