"""The QA refresh role's controller plugins keep relpromote's core (pydantic) out of ansible-playbook's start-up:
ansible-playbook imports the role's filter plugin before the first task, and pydantic costs 0.2 s of CPU on a quiet
controller, about a second under load, for filters the role itself no longer uses (its action plugin plans)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FILTER = REPO / "roles" / "qa_data_refresh" / "filter_plugins" / "relpromote_refresh.py"
ACTION = REPO / "roles" / "qa_data_refresh" / "action_plugins" / "pg_masked_refresh.py"

PROGRAM = """
import importlib.util, sys
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
filters = load("relpromote_refresh_filters", sys.argv[1]).FilterModule().filters()
load("relpromote_refresh_action", sys.argv[2])
print("loaded", "relpromote.refresh" in sys.modules, "pydantic" in sys.modules)
try:
    filters["relpromote_refresh_plan"]({"tables": "not a list"}, {})
except Exception as exc:
    print("called", type(exc).__name__, "relpromote.refresh" in sys.modules)
"""


def test_loading_the_plugins_does_not_import_relpromotes_core_and_using_a_filter_does() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(FILTER), str(ACTION)], capture_output=True, text=True, check=True, cwd=REPO
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "loaded False False"
    # The filter still plans with relpromote's core: a catalog it cannot read is refused by its validation.
    assert lines[1].startswith("called ") and lines[1].endswith(" True")
    assert "ImportError" not in lines[1] and "NameError" not in lines[1]
