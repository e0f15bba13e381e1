"""`relpromote --help` lists the verbs from a table (importing every verb would double the start-up): keep it true."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from relpromote.cli import SUMMARIES, VERBS


@pytest.mark.parametrize("verb", list(VERBS))
def test_the_listed_summary_is_the_verbs_own(verb: str) -> None:
    module, attribute = VERBS[verb].split(":")
    command = getattr(importlib.import_module(f"relpromote.cli.{module}"), attribute)
    assert SUMMARIES.get(verb) == command.get_short_help_str(limit=10_000), f"update SUMMARIES[{verb!r}] in relpromote/cli/__init__.py"


def test_help_imports_no_verb_and_no_config() -> None:
    probe = "import sys; sys.argv = ['relpromote', '--help']\nfrom relpromote.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
    probe += "print(sorted(m for m in sys.modules if m.startswith('relpromote')))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    assert loaded == "['relpromote', 'relpromote.cli', 'relpromote.cli.help', 'relpromote.errors']"  # help: examples, exit codes
