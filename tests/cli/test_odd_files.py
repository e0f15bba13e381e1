"""A file option given a pipe nobody writes to, an endless device or a folder: one line, exit 2, never a hang
(and never reading /dev/zero until memory runs out)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.helpers import Cli, make_project, one_line_error, write_manifest


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    base = tmp_path_factory.mktemp("odd")
    source = base / "src"
    source.mkdir()
    (source / "app.txt").write_text("hello\n")
    cli = make_project(base / "proj", project="shop", source={"allow_dirty": True, "tag": False})
    manifest = write_manifest(cli.cwd / "release-1.0.0.yml", "1.0.0")
    cli.run("build", "1.0.0", "--source", str(source), "--manifest", str(manifest), identity="alice", check=True)
    os.mkfifo(base / "fifo")
    return cli


CASES = [
    ("identity: a pipe", ["accept", "1.0.0", "--env", "qa", "--identity", "{fifo}"]),
    ("identity: /dev/zero", ["accept", "1.0.0", "--env", "qa", "--identity", "/dev/zero"]),
    ("identity: /dev/null", ["accept", "1.0.0", "--env", "qa", "--identity", "/dev/null"]),
    ("manifest: a pipe", ["build", "2.0.0", "--source", "{src}", "--manifest", "{fifo}", "--identity", "{alice}"]),
    ("manifest: /dev/zero", ["build", "2.0.0", "--source", "{src}", "--manifest", "/dev/zero", "--identity", "{alice}"]),
    ("evidence: a pipe", ["accept", "1.0.0", "--env", "qa", "--evidence", "unit={fifo}", "--identity", "{quinn}"]),
    ("evidence: /dev/zero", ["accept", "1.0.0", "--env", "qa", "--evidence", "unit=/dev/zero", "--identity", "{quinn}"]),
    ("evidence pack: a pipe", ["evidence", "verify", "{fifo}"]),  # nobody writes: an empty pack, refused (exit 1)
    ("evidence pack: /dev/zero", ["evidence", "verify", "/dev/zero"]),
    ("public key: a pipe", ["people", "add", "zed", "--key", "{fifo}", "--role", "qa"]),
    ("public key: /dev/zero", ["people", "add", "zed", "--key", "/dev/zero", "--role", "qa"]),
    ("toolchain: /dev/zero", ["doctor", "--file", "/dev/zero"]),
    ("config: a pipe", ["--config", "{fifo}", "status"]),
    ("config: /dev/zero", ["--config", "/dev/zero", "status"]),
]


@pytest.mark.parametrize(("case", "args"), CASES)
def test_a_pipe_or_device_given_as_a_file_is_one_line_exit_2(project: Cli, case: str, args: list[str]) -> None:
    base = project.cwd.parent
    values = {"fifo": str(base / "fifo"), "src": str(base / "src"), "alice": str(project.cwd / ".keys" / "alice.key"),
              "quinn": str(project.cwd / ".keys" / "quinn.key")}
    try:
        result = project.run(*[arg.format(**values) for arg in args], timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case}: relpromote still waited after 10 s")
    assert result.returncode == (1 if case == "evidence pack: a pipe" else 2), (case, result.returncode, result.stderr)
    one_line_error(result)
