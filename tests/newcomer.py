"""Run documentation as a newcomer pastes it: a shell block from the README or a guide, from a folder that
looks like their clone (.venv, examples), with a home of their own and no git identity. A line that ends in
`# exit N` must exit N; every other line must succeed (the first that does not stops the run, named)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import REPO

EXPECTED_EXIT = re.compile(r"#\s*exit (\d)\b")


def as_checked_script(block: str) -> str:
    """The block as a bash script: stop at the first unexpected exit code, naming the line."""
    out: list[str] = []
    heredoc = None
    for line in block.splitlines():
        if heredoc is not None:  # inside a here-document: copied as is
            out.append(line)
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        opening = re.search(r"<<-?\s*'?(\w+)'?", line)
        if opening:
            heredoc = opening.group(1)
        expected = EXPECTED_EXIT.search(line)
        want = int(expected.group(1)) if expected else 0
        if not line.strip() or line.lstrip().startswith("#") or opening:
            out.append(line)
            continue
        quoted = line.replace("'", "'\\''")
        out.append(f"{line}\nrc=$?; if [ $rc -ne {want} ]; then echo 'WALKTHROUGH: exit '$rc' (wanted {want}): {quoted}' >&2; exit 99; fi")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Newcomer:
    clone: Path
    home: Path
    env: dict[str, str]

    @property
    def relpromote(self) -> str:
        return str(self.clone / ".venv" / "bin" / "relpromote")

    def run_script(self, text: str, name: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        script = self.clone / name
        script.write_text(as_checked_script(text))
        return subprocess.run(["bash", str(script)], cwd=self.clone, env=self.env, capture_output=True, text=True, timeout=timeout)


def newcomer(tmp_path: Path) -> Newcomer:
    """A clone-like folder and a fresh home, and the environment of a login that has neither git identity nor relpromote settings."""
    clone, home = tmp_path / "clone", tmp_path / "home"
    clone.mkdir()
    home.mkdir()
    (clone / ".venv").symlink_to(Path(sys.prefix))
    (clone / "examples").symlink_to(REPO / "examples")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RELPROMOTE_", "GIT_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", PATH="/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    return Newcomer(clone, home, env)
