"""The guides in docs/ run as written: every block marked `guide step N`, from every guide, in step order, as one
session on one sandbox project (as the README's walkthrough test does for the README). A line ending in `# exit N`
must exit N; every other line must succeed. Then what landed is checked: hosts, files, ledger."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from relpromote.usecases.sandbox import recorded_sandbox, stop_sandbox_apps
from tests.helpers import REPO
from tests.newcomer import newcomer

STEP = re.compile(r"<!-- guide step (\d+):[^>]*-->\s*```sh\n(.*?)```", re.DOTALL)
GUIDES = ("README.md", "operations-engineer.md", "release-manager.md", "change-manager.md", "qa.md", "scheduled-job.md")


def guide_steps() -> list[tuple[int, str, str]]:
    steps = []
    for name in GUIDES:
        for match in STEP.finditer((REPO / "docs" / name).read_text()):
            steps.append((int(match.group(1)), name, match.group(2)))
    return sorted(steps)


def test_every_guide_has_tested_steps_in_a_single_order() -> None:
    steps = guide_steps()
    assert {name for _, name, _ in steps} == set(GUIDES)
    numbers = [number for number, _, _ in steps]
    assert len(numbers) == len(set(numbers)), "two blocks share a step number"


def test_the_guides_run_as_written(tmp_path: Path) -> None:
    script_text = "\n".join(f"# --- {name}, step {number}\n{block}" for number, name, block in guide_steps())
    user = newcomer(tmp_path)
    clone, env = user.clone, user.env
    project = clone / "shop-releases"
    try:
        result = user.run_script(script_text, "guides.sh")
        assert result.returncode == 0, result.stderr[-4000:]
        assert "Traceback" not in result.stderr + result.stdout
        assert recorded_sandbox(project) is not None

        hosts = project / "hosts"
        for host in ("qa-app-1", "deploy-app-2", "prod-app-1", "prod-app-2"):
            assert (hosts / host / "opt" / "shop" / "current").resolve().name == "1.0.0", host
        assert "<tr data-change=\"CH-100\">" in (project / "notes-1.0.0.html").read_text()
        assert 'data-field="release"' in (project / "board.html").read_text()
        people = {p["name"]: p["roles"] for p in yaml.safe_load((project / "relpromote.yml").read_text())["people"]}
        assert people["nightly"] == ["data_refresher"] and people["carol"] == ["change_manager"]
        relpromote = str(clone / ".venv" / "bin" / "relpromote")
        verified = subprocess.run([relpromote, "--json", "evidence", "verify", str(project / "evidence-1.0.0.tar")], cwd=tmp_path,
                                  env=env, capture_output=True, text=True, check=True)
        assert json.loads(verified.stdout)["verified"] is True
        history = json.loads(subprocess.run([relpromote, "--json", "history"], cwd=project, env=env, capture_output=True, text=True,
                                            check=True).stdout)["entries"]
        acts = [(e["kind"], e["actor"], e["environment"]) for e in history if e["kind"] in ("verdict.accepted", "approval.granted")]
        assert acts == [("verdict.accepted", "quinn", "qa"), ("verdict.accepted", "quinn", "deployment"),
                        ("approval.granted", "carol", "production")]
    finally:
        if project.exists():
            stop_sandbox_apps(project)
