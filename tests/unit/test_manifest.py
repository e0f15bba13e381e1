from __future__ import annotations

import time

import pytest
import yaml

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


def _changes(count: int) -> str:
    entry = "  - {{id: CH-{0}, type: fix, title: Fix {0}, owner: dana, why: It broke, how: It is mended}}\n"
    return 'version: "1.4.0"\nchanges:\n' + "".join(entry.format(n) for n in range(count))


def test_many_changes_and_a_late_duplicate_are_quick() -> None:
    text = _changes(5000)
    started = time.process_time()  # CPU time: a loaded machine must not fail it, a quadratic parse must
    assert len(parse_manifest(text, "m.yml").changes) == 5000
    with pytest.raises(BadInput, match="CH-0 is listed twice"):
        parse_manifest(text + "  - {id: CH-0, type: fix, title: T, owner: dana, why: W, how: H}\n", "m.yml")
    assert time.process_time() - started < 10


def test_a_huge_manifest_is_refused_by_size() -> None:
    text = _changes(110_000)  # about 10 MB
    started = time.process_time()
    with pytest.raises(BadInput, match=r"m.yml: 1\d\.\d MiB is too large for a release manifest \(limit 1 MiB\)"):
        parse_manifest(text, "m.yml")
    assert time.process_time() - started < 1


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(BadInput, match=r"m.yml: line 2: duplicate key 'version' \(first on line 1\)"):
        parse_manifest(GOOD.replace("changes:", 'version: "9.9"\nchanges:'), "m.yml")


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    with pytest.raises(BadInput, match="expands to more than"):
        parse_manifest("\n".join(lines) + "\n", "m.yml")


def test_malformed_yaml_names_the_line() -> None:
    with pytest.raises(BadInput, match=r"m.yml: line 4, column 4: malformed YAML"):
        parse_manifest('version: "1"\nchanges:\n  - id: CH-1\n   title: x\n  - id: CH-2\n', "m.yml")


@pytest.mark.parametrize("text", ["\x1b[2K\rCH-1 accepted", "red \x1b[31m", "\x9b2J", "bell\x07", "back\rspace", "\u202eevil"])
def test_control_characters_that_would_drive_a_terminal_are_refused(text: str) -> None:
    change = {"id": "CH-1", "type": "fix", "title": "t", "owner": "dana", "why": "w", "how": "h"}
    """`show`, `history` and the notes print a manifest's text to terminals: an escape sequence in it could rewrite what
    a reader sees (erase a line, move the cursor, reverse the text), so it is refused at build, naming the change."""
    manifest = yaml.safe_dump({"version": "1.0.0", "changes": [{**change, "title": text}]})
    with pytest.raises(BadInput, match=r"change CH-1: title: .*control character U\+"):
        parse_manifest(manifest, "m.yml")
    assert parse_manifest(yaml.safe_dump({"version": "1.0.0", "changes": [{**change, "how": "line 1\n\tline 2"}]}), "m.yml")
