from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Cli, make_app_source, make_project

# The suite runs with `pytest -n 2 --dist loadscope --no-loadscope-reorder` (the Makefile's `test`): every module runs
# whole on one worker, so a module-scoped fixture (a demo, a PostgreSQL pair, a host farm) is set up once, not once per
# worker; and modules start in the order below, the longest first, so that no worker is left alone with a long module
# at the end while the other idles. Seconds of one module on one worker (CI, 2 cores, `--durations`); a module not
# named here is placed by its folder: integration modules before the command-line ones, the unit modules last.
LONG_MODULES = {
    "integration/test_refresh_interruptions.py": 240,
    "integration/test_demo.py": 170,
    "integration/test_qa_refresh_engine.py": 150,
    "integration/test_runs_in_doubt.py": 110,
    "integration/test_ledger_trust.py": 100,
    "integration/test_execution_node.py": 100,
    "integration/test_pg_ledger.py": 90,
    "integration/test_refresh_real_schemas.py": 90,
    "integration/test_jump_host.py": 80,
    "integration/test_rollback.py": 60,
    "integration/test_collection.py": 55,
    "integration/test_readme_walkthrough.py": 50,
    "integration/test_guides.py": 45,
    "integration/test_change_management.py": 45,
    "integration/test_refresh_odd_schemas.py": 45,
    "integration/test_refresh_reader.py": 45,
    "integration/test_refresh_schedule.py": 45,
    "integration/test_user_hooks.py": 30,
    "integration/test_artifact_pull.py": 20,
    "integration/test_manifest_rewrite.py": 40,
    "integration/test_artifact_https.py": 15,
}
FOLDER_WEIGHT = {"integration": 30, "cli": 10, "unit": 0}


def module_weight(path: Path) -> int:
    return LONG_MODULES.get(f"{path.parent.name}/{path.name}", FOLDER_WEIGHT.get(path.parent.name, 0))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest modules first (see LONG_MODULES); a module's tests keep their file order."""
    items.sort(key=lambda item: -module_weight(Path(str(item.fspath))))


@pytest.fixture
def project(tmp_path: Path) -> Cli:
    return make_project(tmp_path / "proj")


@pytest.fixture
def app_source(tmp_path: Path) -> Path:
    return make_app_source(tmp_path / "app")
