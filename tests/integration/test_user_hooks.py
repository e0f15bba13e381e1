"""The inventory's user tasks (release_user_tasks) on real sshd hosts: each stage's tasks run on the host in order, under
the host's lease; a failing stage fails the promotion, which is rolled back and recorded naming the stage, the file and
the host; a file that is not there is refused before anything changes. One project and two hosts for the module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import Cli, make_app_source, make_project, one_line_error
from tests.integration.conftest import _blocks, commit_project, write_inventories
from tests.integration.test_promote import build, health, ledger_payloads, live_version

QA = ("qa-app-1", "qa-app-2")
STAGES = ("before_unpack", "after_unpack", "before_switch", "after_switch",
          "before_restart", "after_restart", "before_health", "after_health")
LOG = "/opt/shop/user-tasks.log"

# One line per stage on the host: the stage, the documented variables, where `current` points, whether this run's lease
# is on the host, and which version the application answers (or "down"). One raw command: no module to start per stage.
MARK = """\
- name: Note the stage on the host
  ansible.builtin.raw: |
    BASE={{ release_base_dir | quote }}
    link=$(readlink "$BASE/current" || echo none)
    lease=$(test -e "$BASE/.relpromote-lock.json" && echo leased || echo free)
    app=$(python3 -c "import json, urllib.request as u; print(json.load(u.urlopen('http://{{ release_service_host }}:8080/health', timeout=2))['version'])" \\
      2>/dev/null || echo down)
    echo {{ release_user_tasks_stage }} {{ release_version }} {{ release_previous_version or '-' }} {{ release_dir }} "$BASE $link $lease $app" \\
      >> "$BASE/user-tasks.log"
  changed_when: true
"""
FAIL_ON_QA_2 = """\
- name: Warm the cache
  ansible.builtin.fail:
    msg: the cache did not warm up
  when: inventory_hostname == 'qa-app-2'
"""


@pytest.fixture(scope="module")
def qa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, Path, SshHostFarm]]:
    """A project whose qa hosts run 1.0.0 (put live without user tasks), its app source and the hosts."""
    tmp_path = tmp_path_factory.mktemp("user_tasks")
    with SshHostFarm(tmp_path / "farm", list(QA), first_octet=next(_blocks)) as farm:
        project = make_project(tmp_path / "proj")
        write_inventories(project, farm, {"release_health_timeout": 10})
        folder = project.cwd / "inventories" / "qa" / "user_tasks"
        folder.mkdir()
        (folder / "mark.yml").write_text(MARK)
        (folder / "warm_cache.yml").write_text(FAIL_ON_QA_2)
        commit_project(project, "user tasks")
        source = make_app_source(tmp_path / "app")
        build(project, source, "1.0.0", "first")
        project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
        yield project, source, farm


def set_user_tasks(project: Cli, user_tasks: dict[str, Any]) -> None:
    path = project.cwd / "inventories" / "qa" / "group_vars" / "all" / "main.yml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "release_user_tasks": user_tasks}, sort_keys=False))
    commit_project(project, f"qa user tasks: {user_tasks}")


def marks(farm: SshHostFarm, host: str) -> list[list[str]]:
    log = farm[host].path(LOG)
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def test_user_tasks_run_at_each_stage_in_order_under_the_lease(qa: tuple[Cli, Path, SshHostFarm]) -> None:
    project, source, farm = qa
    set_user_tasks(project, {stage: "user_tasks/mark.yml" for stage in STAGES})
    build(project, source, "1.1.0", "second")

    project.run("promote", "1.1.0", "--to", "qa", identity="oscar", check=True)

    for host in QA:
        lines = marks(farm, host)
        assert [line[0] for line in lines] == list(STAGES), lines
        for line in lines:
            assert line[1:5] == ["1.1.0", "1.0.0", "/opt/shop/releases/1.1.0", "/opt/shop"], line
            assert line[6] == "leased", line
        links = {line[0]: line[5] for line in lines}
        answers = {line[0]: line[7] for line in lines}
        assert all(links[stage] == "releases/1.0.0" for stage in STAGES[:3]), links
        assert all(links[stage] == "releases/1.1.0" for stage in STAGES[3:]), links
        # The application is restarted between before_restart and after_restart, and answers 1.1.0 after the health check.
        assert answers["before_restart"] == "1.0.0" and answers["after_health"] == "1.1.0", answers
        assert live_version(farm, host) == "1.1.0" and health(farm, host)["version"] == "1.1.0"
        assert not farm[host].path("/opt/shop/.relpromote-lock.json").exists()


def test_a_failing_user_task_rolls_the_promotion_back_naming_stage_file_and_host(qa: tuple[Cli, Path, SshHostFarm]) -> None:
    project, source, farm = qa
    set_user_tasks(project, {"after_switch": "user_tasks/warm_cache.yml"})
    build(project, source, "1.2.0", "third")

    failed = project.run("promote", "1.2.0", "--to", "qa", identity="oscar")

    error = one_line_error(failed)
    assert failed.returncode == 1, failed.stderr
    said = 'qa-app-2: the user tasks of after_switch (user_tasks/warm_cache.yml) failed at "Warm the cache": the cache did not warm up'
    assert said in error and "rolled back qa-app-1→1.1.0, qa-app-2→1.1.0" in error, error
    for host in QA:
        assert live_version(farm, host) == "1.1.0" and health(farm, host)["version"] == "1.1.0", host
    finished = ledger_payloads(project, "promotion.finished")[-1]
    assert finished["version"] == "1.2.0" and finished["result"] == "rolled_back", finished
    assert said in finished["reason"] and not finished["verification_failed"], finished
    assert finished["rollback"]["succeeded"] and sorted(h["host"] for h in finished["rollback"]["hosts"]) == list(QA)
    by_host = {h["host"]: h for h in finished["hosts"]}
    assert by_host["qa-app-2"]["failed_task"] == "Fail naming the user tasks that failed", by_host
    assert by_host["qa-app-1"]["switched"] and by_host["qa-app-2"]["switched"], by_host


def test_a_missing_user_tasks_file_is_refused_before_anything_changes(qa: tuple[Cli, Path, SshHostFarm]) -> None:
    project, source, farm = qa
    set_user_tasks(project, {"before_switch": "user_tasks/drain.yml", "after_health": "user_tasks/mark.yml"})
    build(project, source, "1.3.0", "fourth")
    before = {host: marks(farm, host) for host in QA}
    missing = project.cwd / "inventories" / "qa" / "user_tasks" / "drain.yml"

    for check in (("--check",), ()):
        refused = project.run("promote", "1.3.0", "--to", "qa", *check, identity="oscar")
        error = one_line_error(refused)
        assert refused.returncode == 1, refused.stderr
        assert f"qa-app-1, qa-app-2: release_user_tasks.before_switch: {missing} is not a file" in error, error
        assert "mark.yml" not in error, error
    for host in QA:
        assert live_version(farm, host) == "1.1.0", host
        assert not farm[host].path("/opt/shop/releases/1.3.0").exists(), host
        assert marks(farm, host) == before[host], host
