"""docs/awx/relpromote-workflow.json: an `awx import` document whose templates and surveys match the roles (docs/awx.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
AWX = REPO / "docs" / "awx"
ROLE_OF = {"promote.yml": "release_deploy", "rollback.yml": "release_rollback"}
PLAYBOOK_OF = {"promote.yml": "promote", "rollback.yml": "rollback"}


def document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((AWX / "relpromote-workflow.json").read_text())
    return data


def role_inputs(role: str) -> set[str]:
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return set(specs["argument_specs"]["main"]["options"])


def variables(template: dict[str, Any]) -> set[str]:
    asked = {question["variable"] for question in template["related"]["survey_spec"]["spec"]}
    given = set(yaml.safe_load(template.get("extra_vars") or "{}") or {})
    return asked | given


def test_every_variable_a_job_template_passes_is_an_input_of_its_role_or_its_playbook() -> None:
    templates = document()["job_templates"]
    assert {t["playbook"] for t in templates} == set(ROLE_OF)
    for template in templates:
        playbook = (REPO / "playbooks" / template["playbook"]).read_text()
        inputs = role_inputs(ROLE_OF[template["playbook"]])
        for name in variables(template):
            if name.startswith("release_"):
                assert name in inputs, f"{template['name']}: {name} is not in roles/{ROLE_OF[template['playbook']]}/meta/argument_specs.yml"
            else:
                assert re.search(rf"\b{name}\b", playbook), f"{template['name']}: {name} is not used by playbooks/{template['playbook']}"
        required = {name for name, option in yaml.safe_load((REPO / "roles" / ROLE_OF[template["playbook"]] / "meta" / "argument_specs.yml").read_text())[
            "argument_specs"]["main"]["options"].items() if option.get("required")}
        asked = {q["variable"] for q in template["related"]["survey_spec"]["spec"] if q["required"]}
        assert required <= asked, f"{template['name']} does not ask for {required - asked}"


def test_the_workflow_is_qa_then_deployment_then_an_approval_then_production() -> None:
    data = document()
    (workflow,) = data["workflow_job_templates"]
    nodes = {node["identifier"]: node for node in workflow["related"]["workflow_nodes"]}
    names = {t["name"] for t in data["job_templates"]}

    def after(identifier: str) -> list[str]:
        return [edge["identifier"] for edge in nodes[identifier]["related"]["success_nodes"]]

    order, current = [], "promote-qa"
    while True:
        order.append(current)
        following = after(current)
        if not following:
            break
        (current,) = following
    assert order == ["promote-qa", "promote-deployment", "approve-production", "promote-production"]
    approval = nodes["approve-production"]
    assert approval["unified_job_template"] is None and approval["related"]["create_approval_template"]["timeout"] > 0
    for identifier in ("promote-qa", "promote-deployment", "promote-production"):
        template = nodes[identifier]["unified_job_template"]
        assert template["type"] == "job_template" and template["name"] in names
        assert template["name"].endswith(identifier.removeprefix("promote-"))
    for template in data["job_templates"]:
        assert template["inventory"]["name"].endswith(template["name"].rsplit(" ", 1)[1])
    assert not variables(workflow) - role_inputs("release_deploy") - {"relpromote_hosts"}


def test_the_projects_playbooks_are_the_collections() -> None:
    for playbook, stem in PLAYBOOK_OF.items():
        (play,) = yaml.safe_load((AWX / "project" / playbook).read_text())
        assert play["ansible.builtin.import_playbook"] == f"relpromote.release.{stem}"
    requirements = yaml.safe_load((AWX / "project" / "collections" / "requirements.yml").read_text())
    assert requirements["collections"][0]["name"].startswith("relpromote-release-")
