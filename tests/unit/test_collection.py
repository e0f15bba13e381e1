"""The collection relpromote.release as assembled from the roles and playbooks (relpromote/collection.py, usecases/collection.py)."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from relpromote import collection
from relpromote.config import ContentConfig, parse_config
from relpromote.errors import BadInput
from relpromote.usecases.collection import assemble

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return assemble(tmp_path_factory.mktemp("collection"))


def test_the_collection_is_relpromote_release_at_relpromotes_version_and_ansible_core() -> None:
    galaxy = yaml.safe_load((REPO / "collection" / "galaxy.yml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert (galaxy["namespace"], galaxy["name"]) == ("relpromote", "release") == (collection.NAMESPACE, collection.NAME)
    assert galaxy["version"] == project["version"]
    core = next(dep for dep in project["dependencies"] if dep.startswith("ansible-core"))
    runtime = yaml.safe_load((REPO / "collection" / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"] == ">=" + core.removeprefix("ansible-core>=") + ".0"


def test_each_plugin_and_helper_is_in_the_collection_once_and_no_role_keeps_its_own(tree: Path) -> None:
    modules = {path.stem for path in (REPO / "roles").glob("*/library/*.py")}
    utils = {path.stem for path in (REPO / "roles").glob("*/module_utils/*.py")}
    assert {path.stem for path in (tree / "plugins" / "modules").glob("*.py")} == modules
    assert {path.stem for path in (tree / "plugins" / "module_utils").glob("*.py")} == utils
    assert (tree / "plugins" / "action" / "_host_python.py").is_file() and (tree / "plugins" / "filter" / "relpromote_refresh.py").is_file()
    for role in collection.ROLES:
        assert (tree / "roles" / role / "tasks" / "main.yml").is_file()
        assert not {"library", "module_utils", "action_plugins", "filter_plugins"} & {p.name for p in (tree / "roles" / role).iterdir()}
    assert not any(path.is_symlink() for path in tree.rglob("*"))
    for stem in collection.PLAYBOOKS:
        assert yaml.safe_load((tree / "playbooks" / f"{stem}.yml").read_text())


def test_every_module_documents_itself_in_yaml_ansible_doc_can_read(tree: Path) -> None:
    """`ansible-doc relpromote.release.<module>` and ansible-lint read these blocks; a colon in a plain line breaks them."""
    for path in sorted((tree / "plugins" / "modules").glob("*.py")):
        blocks = {node.targets[0].id: node.value.value for node in ast.parse(path.read_text()).body
                  if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Constant)
                  and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN")}
        assert "DOCUMENTATION" in blocks, path.name
        for name, text in blocks.items():
            try:
                yaml.safe_load(text)
            except yaml.YAMLError as exc:
                pytest.fail(f"{path.name} {name}: {exc}")
        assert yaml.safe_load(blocks["DOCUMENTATION"])["module"] == path.stem


def test_modules_import_their_helpers_by_the_collections_name(tree: Path) -> None:
    for path in (tree / "plugins").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"ansible\.module_utils\.(release_|relpromote_)", text), path
        assert not re.search(r"from ansible\.module_utils import (release_|relpromote_)", text), path
        assert '"ansible.legacy.' not in text, path
    live = (tree / "plugins" / "module_utils" / "release_live.py").read_text()
    assert "from ansible_collections.relpromote.release.plugins.module_utils.release_integrity import fsync_dir" in live
    host = (tree / "plugins" / "action" / "_host_python.py").read_text()
    assert '"ansible_collections.relpromote.release.plugins.module_utils." + name' in host


def test_the_host_python_program_loads_the_collections_helpers_as_the_host_would(tree: Path) -> None:
    """The action plugins' host program, built from the collection's files, runs in a fresh Python with no Ansible."""
    spec = importlib.util.spec_from_file_location("collection_host_python", tree / "plugins" / "action" / "_host_python.py")
    assert spec and spec.loader
    host = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(host)
    # release_live imports the others by the collection's name: each must be registered under it on the host.
    names = ("release_health", "release_hook", "release_integrity", "release_lease", "release_witness", "release_live")
    sources = host.read_sources(str(tree / "plugins" / "module_utils"), names)
    lock = str(tree.parent / "lock.json")
    program = host.program(sources, "release_lease", "lease_command", {"path": lock, "state": "held", "run": {"id": "r1"}, "ttl": 60,
                                                                       "breakable": [], "token": None, "wait": 0}, False)
    done = subprocess.run([sys.executable, "-I", "-S", "-"], input=program, capture_output=True, text=True, timeout=60, check=False)
    line = next(line for line in done.stdout.splitlines() if line.startswith(host.RESULT_MARK))
    result = json.loads(line[len(host.RESULT_MARK):])
    assert not result.get("failed"), result
    assert json.loads(Path(lock).read_text())


def test_tasks_call_modules_by_the_collections_name_and_leave_keys_of_that_name_deeper_down() -> None:
    text = (
        "- name: Unpack\n  block:\n    - name: Unpack it\n      release_unpack:\n        dest: /x\n"
        "- name: Publish\n  ansible.builtin.set_stats:\n    data:\n      release_unpack:\n        a: 1\n"
        "- name: Verify\n  release_verify:  # a comment\n    base_dir: /x\n"
        "- name: Again\n  ansible.builtin.include_role:\n    name: release_deploy\n"
    )
    out = collection.tasks_for_collection(text, ["release_unpack", "release_verify"])
    assert "      relpromote.release.release_unpack:\n        dest: /x" in out
    assert "    data:\n      release_unpack:\n" in out
    assert "  relpromote.release.release_verify:  # a comment\n" in out
    assert "    name: relpromote.release.release_deploy\n" in out
    assert collection.playbook_for_collection("  roles:\n    - role: release_deploy\n") == "  roles:\n    - role: relpromote.release.release_deploy\n"


def test_a_project_playbook_maps_to_the_collections_playbook_only_when_the_collection_has_it() -> None:
    assert collection.collection_playbook("playbooks/promote.yml") == "relpromote.release.promote"
    assert collection.collection_playbook("playbooks/host_unlock.yml", "acme.deploy") == "acme.deploy.host_unlock"
    assert collection.collection_playbook("playbooks/smoke_test.yml") is None
    assert collection.collection_playbook("tests/promote.yml") is None


def test_two_roles_with_a_module_of_one_name_are_refused_unless_it_is_one_file() -> None:
    placed = collection.role_files("a", ["library/x.py"]) + collection.role_files("b", ["library/x.py"])
    assert collection.clashes(placed) == ["plugins/modules/x.py: roles/a/library/x.py and roles/b/library/x.py"]
    assert collection.clashes(placed, [("roles/a/library/x.py", "roles/b/library/x.py")]) == []


def test_assemble_refuses_two_different_files_at_one_place(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for role in collection.ROLES:
        (source / "roles" / role / "tasks").mkdir(parents=True)
        (source / "roles" / role / "tasks" / "main.yml").write_text("---\n[]\n")
    for role, body in (("release_deploy", "A = 1\n"), ("release_rollback", "A = 2\n")):
        (source / "roles" / role / "module_utils").mkdir()
        (source / "roles" / role / "module_utils" / "release_lease.py").write_text(body)
    (source / "collection").mkdir()
    with pytest.raises(BadInput, match=r"plugins/module_utils/release_lease\.py"):
        assemble(tmp_path / "out", source)


def test_content_is_the_project_by_default_or_an_installed_collection() -> None:
    base = "project: shop\npromotion_path: [qa]\nenvironments: {qa: {inventory: inventories/qa}}\n"
    assert parse_config(base, "relpromote.yml").content == "project"
    named = parse_config(base + "content: {collection: relpromote.release, path: collections}\n", "relpromote.yml").content
    assert named == ContentConfig(collection="relpromote.release", path="collections")
    with pytest.raises(BadInput, match="content"):
        parse_config(base + "content: {collection: roles/release_deploy}\n", "relpromote.yml")
    with pytest.raises(BadInput, match="content"):
        parse_config(base + "content: bundled\n", "relpromote.yml")
