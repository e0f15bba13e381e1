from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Cli, make_app_source, make_project


@pytest.fixture
def project(tmp_path: Path) -> Cli:
    return make_project(tmp_path / "proj")


@pytest.fixture
def app_source(tmp_path: Path) -> Path:
    return make_app_source(tmp_path / "app")
