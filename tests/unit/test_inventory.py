from __future__ import annotations

from pathlib import Path

import pytest

from relpromote.errors import BadInput
from relpromote.inventory import check_variable_files, shadowed_variable_files


def test_a_group_vars_file_beside_a_folder_of_the_same_name_is_refused_naming_the_fix(tmp_path: Path) -> None:
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    (tmp_path / "group_vars" / "all" / "vault.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n")
    (tmp_path / "group_vars" / "all.yml").write_text("release_base_dir: /opt/shop\n")
    (tmp_path / "group_vars" / "app.yml").write_text("release_keep: 3\n")  # no app/ folder: read by Ansible
    assert shadowed_variable_files(tmp_path) == [tmp_path / "group_vars" / "all.yml"]
    with pytest.raises(BadInput, match=r"Ansible ignores this file because the folder .*group_vars/all/ exists beside it; move it to .*all/main.yml"):
        check_variable_files(tmp_path)


def test_host_vars_are_checked_too_and_a_clean_inventory_passes(tmp_path: Path) -> None:
    (tmp_path / "host_vars" / "web1").mkdir(parents=True)
    (tmp_path / "host_vars" / "web1.yaml").write_text("a: 1\n")
    assert shadowed_variable_files(tmp_path) == [tmp_path / "host_vars" / "web1.yaml"]
    clean = tmp_path / "clean"
    (clean / "group_vars" / "all").mkdir(parents=True)
    (clean / "group_vars" / "all" / "main.yml").write_text("a: 1\n")
    check_variable_files(clean)
