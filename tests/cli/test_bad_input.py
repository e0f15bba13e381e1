"""Bad input across verbs, through the console script: each gets its exit code, one line on stderr, no traceback."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import Cli, git_run, make_app_source, make_project, one_line_error, write_manifest

GOOD_CONFIG = """\
project: shop
promotion_path: [qa]
environments:
  qa: {inventory: inventories/qa}
"""
CHANGE = "  - {{id: CH-{0}, type: fix, title: Fix {0}, owner: dana, why: It broke, how: It is mended}}\n"


@dataclass(frozen=True)
class Case:
    name: str
    prepare: Callable[[Path, Path], tuple[Path, list[str], str | None]]  # (scratch, project) -> (cwd, argv, identity)
    code: int
    says: str


def _build(manifest: str, source: str = "app") -> Callable[[Path, Path], tuple[Path, list[str], str | None]]:
    return lambda scratch, project: (project, ["build", "1.0.0", "--source", str(scratch / source), "--manifest", str(scratch / manifest)], "alice")


def _accept(evidence: str) -> Callable[[Path, Path], tuple[Path, list[str], str | None]]:
    return lambda scratch, project: (project, ["accept", "1.0.0", "--env", "qa", "--evidence", f"unit={scratch / evidence}"], "quinn")


def _status_with(config: str | bytes) -> Callable[[Path, Path], tuple[Path, list[str], str | None]]:
    def prepare(scratch: Path, project: Path) -> tuple[Path, list[str], str | None]:
        folder = Path(tempfile.mkdtemp(prefix="elsewhere-", dir=scratch))
        (folder / "sub").mkdir()
        data = config.encode() if isinstance(config, str) else config
        (folder / "relpromote.yml").write_bytes(data)
        return folder / "sub", ["status"], None  # found upward from a subfolder

    return prepare


def _outside(scratch: Path, project: Path) -> tuple[Path, list[str], str | None]:
    return scratch, ["status"], None


CASES = [
    Case("outside any project", _outside, 2, "not inside a promotion project: no relpromote.yml in"),
    Case("--config names no file", lambda s, p: (p, ["--config", str(s / "nope.yml"), "status"], None), 2, "nope.yml: no such config"),
    Case("--config names a folder", lambda s, p: (p, ["--config", str(s), "releases"], None), 2, "cannot read the config"),
    Case("config: second people block", _status_with(GOOD_CONFIG + "people: []\nstore: {path: x}\npeople: []\n"), 2,
         "relpromote.yml: line 7: duplicate key 'people' (first on line 5)"),
    Case("config: malformed YAML", _status_with(GOOD_CONFIG + "people: [\n"), 2, "relpromote.yml: line 6, column 1: malformed YAML"),
    Case("config: not UTF-8", _status_with(b"project: \xff\xfe\n"), 2, "cannot read the config"),
    Case("config: bad cron", _status_with(GOOD_CONFIG.replace("inventories/qa}", 'inventories/qa, freeze: [{reason: x, cron: "* * * * FUNDAY"}]}')), 2,
         "cron '* * * * FUNDAY': bad day-of-week"),
    Case("status: unknown environment", lambda s, p: (p, ["status", "--env", "nope"], None), 2, "unknown environment 'nope'"),
    Case("build: manifest of 10 MB", _build("huge.yml"), 2, "MiB is too large for a release manifest (limit 1 MiB)"),
    Case("build: malformed manifest", _build("malformed.yml"), 2, "malformed.yml: line 4, column 4: malformed YAML"),
    Case("build: duplicate key in manifest", _build("twice.yml"), 2, "twice.yml: line 2: duplicate key 'version' (first on line 1)"),
    Case("build: duplicate change id", _build("dup-id.yml"), 2, "change CH-7 is listed twice"),
    Case("build: manifest missing", _build("missing.yml"), 2, "missing.yml: no such manifest"),
    Case("build: manifest is a folder", _build("folder"), 2, "cannot read the manifest"),
    Case("build: manifest not UTF-8", _build("binary.yml"), 2, "cannot read the manifest"),
    Case("build: empty source folder", _build("good.yml", "empty"), 2, "holds no files, so there is nothing to release"),
    Case("build: source of empty folders", _build("good.yml", "hollow"), 2, "holds no files, so there is nothing to release"),
    Case("build: git repository without commits", _build("good.yml", "uncommitted"), 2, "the git repository has no commits, so there is nothing to release"),
    Case("build: git repository whose files are all ignored", _build("good.yml", "ignored"), 2, "tracks no files here that git does not ignore"),
    Case("build: source is missing", _build("good.yml", "no-such-app"), 2, "source is not a directory"),
    Case("accept: evidence file missing", _accept("missing.xml"), 2, "cannot read the evidence (No such file or directory)"),
    Case("accept: evidence is a folder", _accept("folder"), 2, "cannot read the evidence (Is a directory)"),
    Case("accept: evidence not XML", _accept("good.yml"), 2, "not JUnit XML"),
    Case("accept: evidence with entities", _accept("laughs.xml"), 2, "refused: "),
]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One project with people, and a folder of bad inputs, shared by every case (none of them changes anything)."""
    base = tmp_path_factory.mktemp("bad-input")
    project = make_project(base / "proj").cwd
    files = base / "inputs"
    files.mkdir()
    make_app_source(files / "app")
    write_manifest(files / "good.yml", "1.0.0")
    good = (files / "good.yml").read_text()
    (files / "huge.yml").write_text('version: "1.0.0"\nchanges:\n' + "".join(CHANGE.format(n) for n in range(110_000)))
    (files / "malformed.yml").write_text('version: "1.0.0"\nchanges:\n  - id: CH-1\n   title: x\n')
    (files / "twice.yml").write_text(good.replace("changes:", 'version: "1.0.0"\nchanges:', 1))
    (files / "dup-id.yml").write_text('version: "1.0.0"\nchanges:\n' + "".join(CHANGE.format(n) for n in range(3000)) + CHANGE.format(7))
    (files / "folder").mkdir()
    (files / "binary.yml").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    (files / "empty").mkdir()
    (files / "hollow" / "a" / "b").mkdir(parents=True)
    (files / "uncommitted").mkdir()
    (files / "uncommitted" / "app.py").write_text("print('hi')\n")
    git_run(files / "uncommitted", "init", "-q")
    shutil.copytree(files / "app", files / "ignored")
    (files / "ignored" / ".gitignore").write_text("*\n")
    git_run(files / "ignored", "rm", "-rq", "--cached", ".")
    git_run(files / "ignored", "commit", "-qm", "ignore everything")
    entities = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    (files / "laughs.xml").write_text(f'<?xml version="1.0"?><!DOCTYPE t [{entities}]><testsuite><testcase name="&a9;"/></testsuite>')
    return files, project


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case: Case, scratch: tuple[Path, Path]) -> None:
    files, project = scratch
    cwd, argv, identity = case.prepare(files, project)
    cli = Cli(cwd)
    if identity:
        cli.env["RELPROMOTE_IDENTITY"] = str(project / ".keys" / f"{identity}.key")
    result = cli.run(*argv)
    assert "Traceback" not in result.stdout + result.stderr
    line = one_line_error(result)
    assert result.returncode == case.code, result.stderr
    assert case.says in line, line


def test_commands_work_from_any_subfolder_of_the_project(scratch: tuple[Path, Path]) -> None:
    _, project = scratch
    deep = project / "inventories" / "qa"
    assert Cli(deep).json("status") == Cli(project).json("status")
    assert Cli(deep).json("releases") == Cli(project).json("releases")


def test_refused_builds_leave_nothing_in_the_store(scratch: tuple[Path, Path]) -> None:
    _, project = scratch
    store = project / ".relpromote" / "store" / "sha256"
    assert sorted(path.name for path in store.glob("*")) == [] if store.exists() else True
