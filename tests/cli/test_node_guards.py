"""An environment that runs on an execution node refuses up front what its node cannot run: test playbook steps, and an
installed collection's content. Exit 2 with one line that says what to change, before the promotion is recorded and
before any SSH connection (the node's name here does not even resolve), and the environment's lock is given back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import Cli, git_run, make_app_source, make_project, one_line_error, write_manifest


def project_on_a_node(tmp_path: Path, **settings: Any) -> Cli:
    cli = make_project(tmp_path / "proj")
    config_path = cli.cwd / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["environments"]["qa"]["execution_node"] = {"host": "node.invalid", "user": "relpromote"}
    for key, value in settings.items():
        if key == "tests":
            config["environments"]["qa"]["tests"] = value
        else:
            config[key] = value
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    git_run(cli.cwd, "add", "-A")
    git_run(cli.cwd, "commit", "-q", "-m", "qa runs on an execution node")
    source = make_app_source(tmp_path / "app")
    manifest = write_manifest(tmp_path / "m.yml", "1.0.0")
    cli.run("build", "1.0.0", "--source", str(source), "--manifest", str(manifest), identity="alice", check=True)
    return cli


@pytest.mark.parametrize(("settings", "reason"), [
    ({"tests": [{"kind": "smoke", "playbook": "playbooks/smoke_test.yml"}]},
     "qa runs on an execution node, which does not run test playbooks yet: make its tests: steps commands, or remove them"),
    ({"content": {"collection": "relpromote.release", "path": "collections"}},
     "qa runs on an execution node, which runs the project's playbooks and roles only, not an installed collection's: "
     "remove content: or execution_node:"),
], ids=["test-playbooks", "collection-content"])
def test_what_the_node_cannot_run_is_refused_before_anything_is_recorded(tmp_path: Path, settings: dict[str, Any], reason: str) -> None:
    cli = project_on_a_node(tmp_path, **settings)
    refused = cli.run("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert refused.returncode == 2, refused.stderr
    assert one_line_error(refused).startswith(f"relpromote: {reason}")
    kinds = [entry["kind"] for entry in cli.json("history")["entries"]]
    assert "promotion.started" not in kinds and "promotion.finished" not in kinds, kinds
    lock = cli.json("lock", "status", "--env", "qa")
    assert lock["locked"] is False and lock["lock"] is None
