"""Names in relpromote.yml that end up in paths, run folders, messages and the ledger are names, not paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Cli, one_line_error

CONFIG = """\
project: shop
promotion_path: ["{name}"]
environments:
  "{name}": {{inventory: inventories/qa}}
"""


@pytest.mark.parametrize("name", ["../../outside", "qa/x", "qa x", "-qa"])
def test_an_environment_name_that_is_no_name_is_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "relpromote.yml").write_text(CONFIG.format(name=name))
    result = Cli(tmp_path).run("status")
    assert result.returncode == 2, result.stdout
    assert "environment" in one_line_error(result)
