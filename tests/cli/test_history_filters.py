"""`history --person --kind --since --until`: the contract's filters, on a real ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relpromote.errors import BadInput
from relpromote.ledger import parse_moment
from tests.helpers import Cli, git_run, make_project, one_line_error, write_manifest


def _seqs(project: Cli, *args: str) -> list[int]:
    return [e["seq"] for e in project.json("history", *args)["entries"]]


def test_history_filters_by_person_kind_and_time(tmp_path: Path, app_source: Path) -> None:
    project = make_project(tmp_path / "proj", people={"alice": ["release_manager"], "bruno": ["release_manager"], "quinn": ["qa"]})
    for version, builder in (("1.0.0", "alice"), ("1.1.0", "alice"), ("1.2.0", "bruno")):
        (app_source / "greeting.txt").write_text(f"hello from {version}\n")
        git_run(app_source, "commit", "-qam", version)
        manifest = write_manifest(project.cwd / f"release-{version}.yml", version)
        project.run("build", version, "--source", str(app_source), "--manifest", str(manifest), identity=builder, check=True)
    everything = _seqs(project)
    assert len(everything) == 3
    assert _seqs(project, "--person", "alice") == everything[:2]
    assert _seqs(project, "--person", "bruno") == everything[2:]
    assert _seqs(project, "--person", "quinn") == []
    assert _seqs(project, "--kind", "release") == everything  # a family: release.*
    assert _seqs(project, "--kind", "release.built", "--kind", "verdict.rejected") == everything
    assert _seqs(project, "--kind", "verdict") == []
    assert _seqs(project, "--kind", "releas") == []  # a family is a whole word, not a prefix
    today = datetime.now(UTC).date().isoformat()
    assert _seqs(project, "--since", today, "--until", today) == everything  # a bare --until date includes that day
    assert _seqs(project, "--until", today + "T00:00:00Z") == []
    assert _seqs(project, "--since", "1h") == everything
    assert _seqs(project, "--since", "2030-01-01") == []
    assert _seqs(project, "--person", "alice", "--version", "1.1.0", "--since", "2d") == everything[1:2]
    assert _seqs(project, "--person", "bruno", "--version", "1.1.0") == []
    bad = project.run("history", "--since", "yesterday")
    assert bad.returncode == 2 and "--since 'yesterday': not a time" in one_line_error(bad)


def test_parse_moment_reads_dates_times_and_ages() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert parse_moment("2026-11-30", "--since") == datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_moment("2026-11-30", "--until", end_of_day=True) == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_moment("2026-11-30T14:00+01:00", "--since") == datetime(2026, 11, 30, 13, 0, tzinfo=UTC)
    assert parse_moment("2026-11-30T14:00", "--until", end_of_day=True) == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    assert parse_moment("12h", "--since", now=now) == now - timedelta(hours=12)
    assert parse_moment("2w", "--since", now=now) == now - timedelta(days=14)
    for bad in ("", "h", "7y", "last week"):
        with pytest.raises(BadInput, match="not a time"):
            parse_moment(bad, "--since")
