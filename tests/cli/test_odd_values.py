"""Times and durations no calendar holds: one line, exit 2, never a traceback (README: every error is one line)."""

from __future__ import annotations

import pytest

from tests.helpers import Cli, make_app_source, make_project, one_line_error, write_manifest


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    base = tmp_path_factory.mktemp("odd-values")
    cli = make_project(base / "proj")
    manifest = write_manifest(base / "m.yml", "1.0.0")
    cli.run("build", "1.0.0", "--source", str(make_app_source(base / "app")), "--manifest", str(manifest), identity="alice", check=True)
    return cli


CASES = [
    ("approve --expires 99999999999999999999h", ["approve", "1.0.0", "--env", "production", "--ticket", "CHG-1",
                                                 "--expires", "99999999999999999999h"], "carol"),
    ("approve --expires 999999999d", ["approve", "1.0.0", "--env", "production", "--ticket", "CHG-1", "--expires", "999999999d"], "carol"),
    ("history --since 999999999999d", ["history", "--since", "999999999999d"], None),
    ("history --until 9999-12-31", ["history", "--until", "9999-12-31"], None),
    ("history --since 0001-01-01T00:00+01:00", ["history", "--since", "0001-01-01T00:00+01:00"], None),
    ("metrics --since 999999999d", ["metrics", "--since", "999999999d"], None),
]


@pytest.mark.parametrize(("case", "args", "who"), CASES)
def test_a_time_beyond_the_calendar_is_bad_input(project: Cli, case: str, args: list[str], who: str | None) -> None:
    result = project.run(*args, identity=who)
    assert "Traceback" not in result.stderr, (case, result.stderr[-300:])
    assert result.returncode in (2, 3), (case, result.returncode)
    one_line_error(result)
