from __future__ import annotations

import pytest

from relpromote.errors import BadInput
from relpromote.manifest import parse_manifest

GOOD = """\
version: "1.4.0"
changes:
  - id: CH-101
    type: enhancement
    title: CSV export of invoices
    owner: dana
    why: Finance closes the month from a spreadsheet
    how: New /export endpoint streaming rows; no schema change
    commits: [3f2a9c1]
"""


def test_good_manifest() -> None:
    manifest = parse_manifest(GOOD, "m.yml")
    assert manifest.version == "1.4.0"
    change = manifest.change("CH-101")
    assert change is not None and change.commits == ("3f2a9c1",)


@pytest.mark.parametrize("field", ["type", "title", "owner", "why", "how"])
def test_every_documentation_field_is_required(field: str) -> None:
    text = "\n".join(line for line in GOOD.splitlines() if not line.strip().startswith(f"{field}:"))
    with pytest.raises(BadInput) as caught:
        parse_manifest(text, "m.yml")
    assert caught.value.message.startswith(f"m.yml: change CH-101 has no '{field}'; documentation standards require")


def test_empty_field_is_refused() -> None:
    with pytest.raises(BadInput, match="'why' is empty"):
        parse_manifest(GOOD.replace("why: Finance closes the month from a spreadsheet", "why: '  '"), "m.yml")


def test_bad_type() -> None:
    with pytest.raises(BadInput, match="type must be enhancement, fix or other"):
        parse_manifest(GOOD.replace("type: enhancement", "type: feature"), "m.yml")


def test_duplicate_change_ids() -> None:
    twice = GOOD + GOOD.split("changes:\n")[1]
    with pytest.raises(BadInput, match="CH-101 is listed twice"):
        parse_manifest(twice, "m.yml")


def test_unquoted_numeric_version_is_explained() -> None:
    with pytest.raises(BadInput, match='quoted string'):
        parse_manifest(GOOD.replace('"1.4.0"', "1.4"), "m.yml")


def test_no_changes() -> None:
    with pytest.raises(BadInput, match="at least one change"):
        parse_manifest('version: "1"\nchanges: []\n', "m.yml")
