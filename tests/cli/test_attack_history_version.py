"""`history --version V` of a version no ledger entry names is bad input, in `show`'s words (exit 2), whether the table
is answered from the board memo, from the project, or as JSON; a version the ledger names but not in the asked
environment is an empty table (exit 0)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Cli, make_app_source, make_project, one_line_error, write_manifest


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    base = tmp_path_factory.mktemp("histver")
    made = make_project(base / "proj")
    made.env["XDG_CACHE_HOME"] = str(base / "cache")
    source = make_app_source(base / "app")
    made.run("build", "1.0.0", "--source", str(source), "--manifest", str(write_manifest(base / "m.yml", "1.0.0")),
             identity="alice", check=True)
    yield made


def memos(cli: Cli) -> list[Path]:
    return sorted((Path(cli.env["XDG_CACHE_HOME"]) / "relpromote" / "verified").glob("*.board"))


def test_history_of_a_version_never_seen_says_what_show_says(cli: Cli) -> None:
    shown = cli.run("show", "nope")
    assert shown.returncode == 2
    message = one_line_error(shown)
    assert "unknown version nope; built releases: 1.0.0" in message
    for memo in memos(cli):
        memo.unlink()
    for attempt in ("from the project", "from the memo"):
        history = cli.run("history", "--version", "nope")
        assert history.returncode == 2, (attempt, history.stdout, history.stderr)
        assert one_line_error(history) == message and history.stdout == "", attempt
        assert cli.run("history", check=True).returncode == 0  # writes the board memo the second attempt answers from
        assert memos(cli)
    with_filters = cli.run("history", "--version", "nope", "--env", "qa", "--person", "alice")
    assert with_filters.returncode == 2 and one_line_error(with_filters) == message
    as_json = cli.run("--json", "history", "--version", "nope")
    document = json.loads(as_json.stdout)
    assert as_json.returncode == 2 and document["ok"] is False and document["exit_code"] == 2
    assert document["error"] == json.loads(cli.run("--json", "show", "nope").stdout)["error"]


def test_history_of_a_seen_version_elsewhere_is_an_empty_table(cli: Cli) -> None:
    for args in (("history", "--version", "1.0.0", "--env", "production"), ("history", "--version", "1.0.0", "--person", "quinn")):
        assert cli.run(*args).returncode == 0, args
        assert cli.json(*args)["entries"] == []
    built = cli.json("history", "--version", "1.0.0")["entries"]
    assert [entry["kind"] for entry in built] == ["release.built"]
    text = cli.run("history", "--version", "1.0.0")
    assert text.returncode == 0 and "build 1.0.0" in text.stdout
