"""The house stays easy to walk: cli → usecases → core and adapters, never an arrow back up."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "relpromote"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("relpromote.")}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in ("cli", "usecases", "adapters", "testing") else "core"


def test_no_module_imports_a_layer_above_it() -> None:
    above = {"core": {"cli", "usecases", "testing"}, "adapters": {"cli", "usecases", "testing"}, "usecases": {"cli", "testing"}}
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = "relpromote." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        layer = _layer(module if not module.endswith(".__init__") else module.removesuffix(".__init__") + ".x")
        for imported in _imports(path):
            if _layer(imported) in above.get(layer, set()):
                wrong.append(f"{module} ({layer}) imports {imported}")
    assert wrong == []


def test_the_check_notices_an_arrow_back_up(tmp_path: Path) -> None:
    bad = tmp_path / "policy.py"
    bad.write_text("from relpromote.cli.status import status\n")
    assert _imports(bad) == {"relpromote.cli.status"} and _layer("relpromote.cli.status") == "cli"
