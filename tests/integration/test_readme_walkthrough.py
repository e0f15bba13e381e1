"""The README's process, run from the README's own text: it cannot drift from the tool.

The block after the `<!-- walkthrough ... -->` marker is run as a newcomer pastes it: from a folder
that looks like their clone (.venv, examples), with a home of their own and no git identity. A
line that ends in `# exit N` must exit N; every other line must succeed.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from relpromote.usecases.sandbox import recorded_sandbox, stop_sandbox_apps
from tests.helpers import REPO
from tests.newcomer import as_checked_script, newcomer

MARKER = "<!-- walkthrough:"


def walkthrough_block(readme: str) -> str:
    after = readme[readme.index(MARKER):]
    match = re.search(r"```sh\n(.*?)```", after, re.DOTALL)
    assert match, "the README's walkthrough marker is not followed by a ```sh block"
    return match.group(1)


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    block = walkthrough_block((REPO / "README.md").read_text())
    user = newcomer(tmp_path)
    clone, home, env = user.clone, user.home, user.env
    project = clone / "shop-releases"
    try:
        result = user.run_script(block, "walkthrough.sh")
        assert result.returncode == 0, result.stderr[-4000:]
        assert "Traceback" not in result.stderr + result.stdout

        # What landed: the hosts' live releases, the people, the ledger.
        hosts = project / "hosts"
        assert (hosts / "prod-app-1" / "opt" / "shop" / "current").resolve().name == "1.0.0"
        assert (hosts / "deploy-app-2" / "opt" / "shop" / "current").resolve().name == "1.0.0"
        assert (hosts / "qa-app-1" / "opt" / "shop" / "current").resolve().name == "1.0.0"  # rolled back from 1.1.0
        assert not (hosts / "deploy-app-1" / "opt" / "shop" / "releases" / "1.1.0").exists()
        people = {p["name"]: p["roles"] for p in yaml.safe_load((project / "relpromote.yml").read_text())["people"]}
        assert people == {"alice": ["release_manager"], "oscar": ["operator"], "quinn": ["qa"], "carol": ["change_manager"]}
        log = subprocess.run([str(clone / ".venv" / "bin" / "relpromote"), "--json", "history"], cwd=project, env=env,
                             capture_output=True, text=True, check=True)
        entries = json.loads(log.stdout)["entries"]
        by_kind = [(e["kind"], e["actor"]) for e in entries]
        assert ("approval.granted", "carol") in by_kind and ("verdict.rejected", "quinn") in by_kind
        assert ("rollback.finished", "alice") in by_kind
        assert sum(1 for kind, _ in by_kind if kind == "promotion.finished") == 4  # the refused one changed nothing
        assert (home / ".config" / "relpromote" / "alice.key").stat().st_mode & 0o077 == 0
        # The last line stopped the sandbox's apps.
        sandbox = recorded_sandbox(project)
        assert sandbox is not None
        assert stop_sandbox_apps(project) == 0
    finally:
        stop_sandbox_apps(project)


def test_the_checked_script_notices_an_unexpected_exit(tmp_path: Path) -> None:
    script = tmp_path / "s.sh"
    script.write_text(as_checked_script("true\nfalse  # exit 1\ncat > f <<'X'\nfalse\nX\n(exit 3)   # exit 0\n"))
    result = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 99 and "wanted 0" in result.stderr and (tmp_path / "f").read_text() == "false\n"
