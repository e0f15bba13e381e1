"""`relpromote init DIR`: where the project lands decides how it is put under git."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import Cli, git_run, one_line_error


def _repository(path: Path, ignore: str = "") -> Path:
    path.mkdir()
    git_run(path, "init", "-q", "-b", "main")
    (path / "README").write_text("infrastructure\n")
    if ignore:
        (path / ".gitignore").write_text(ignore)
    git_run(path, "add", "-A")
    git_run(path, "commit", "-q", "-m", "infra")
    return path


def test_init_outside_any_repository_makes_its_own_and_commits_the_scaffold(tmp_path: Path) -> None:
    data = Cli(tmp_path).json("init", "proj")
    assert data["committed"] is True and Path(data["repository"]) == tmp_path / "proj"
    assert git_run(tmp_path / "proj", "status", "--porcelain") == ""
    assert "relpromote.yml" in git_run(tmp_path / "proj", "ls-files")


def test_init_inside_a_repository_commits_nothing_there_and_says_what_to_commit(tmp_path: Path) -> None:
    infra = _repository(tmp_path / "infra")
    result = Cli(infra).run("init", "deploy/shop")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert not (infra / "deploy" / "shop" / ".git").exists()
    assert git_run(infra, "rev-list", "--count", "HEAD").strip() == "1"  # their history untouched
    assert git_run(infra, "diff", "--cached", "--name-only") == ""  # nothing staged either
    assert f"git -C {infra} add deploy/shop" in result.stdout
    # Following the printed line makes the project committed: production's gate sees no dirty path.
    git_run(infra, "add", "deploy/shop")
    git_run(infra, "commit", "-q", "-m", "relpromote project")
    assert git_run(infra / "deploy" / "shop", "status", "--porcelain", "--", ".") == ""


def test_init_in_a_folder_the_repository_ignores_makes_its_own_repository(tmp_path: Path) -> None:
    infra = _repository(tmp_path / "clone", ignore="relpromote-demo/\nscratch/\n")
    data = Cli(infra).json("init", "scratch")
    assert data["committed"] is True and Path(data["repository"]) == infra / "scratch"
    assert "ignores this folder" in data["git"]
    assert git_run(infra / "scratch", "status", "--porcelain") == ""
    assert git_run(infra, "status", "--porcelain") == ""


def test_init_twice_or_over_a_scaffold_is_refused_without_touching_it(tmp_path: Path) -> None:
    Cli(tmp_path).run("init", "proj", check=True)
    (tmp_path / "proj" / "relpromote.yml").write_text("# mine\n")
    result = Cli(tmp_path).run("init", "proj")
    assert result.returncode == 2 and "a project is already here" in one_line_error(result)
    assert (tmp_path / "proj" / "relpromote.yml").read_text() == "# mine\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere; the /proc case below covers root")
def test_init_into_a_read_only_folder_is_one_line(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = Cli(tmp_path).run("init", str(locked / "proj"))
    assert result.returncode == 2 and "cannot create the project folder" in one_line_error(result)


@pytest.mark.parametrize("target", ["/proc/relpromote-proj", "{tmp}/a-file/proj"])
def test_init_into_a_path_that_cannot_be_created_is_one_line(tmp_path: Path, target: str) -> None:
    (tmp_path / "a-file").write_text("not a folder\n")
    result = Cli(tmp_path).run("init", target.format(tmp=tmp_path))
    assert result.returncode == 2, result.stderr
    assert "cannot create the project folder" in one_line_error(result)
