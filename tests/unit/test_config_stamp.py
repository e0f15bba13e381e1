"""config_stamp: the config's sha256, the project's commit, and whether the config is byte for byte as committed there
(every ledger entry records it; the committed-config gate and `audit verify` judge decisions by it)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from relpromote.adapters.config_history import config_stamp

IDENTITY = ["-c", "user.name=t", "-c", "user.email=t@localhost"]


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *IDENTITY, *args], check=True, capture_output=True, text=True).stdout.strip()


def repository(folder: Path, *init: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    git(folder, "init", "-q", *init)
    return folder


def commit_config(top: Path, relative: str = "relpromote.yml", text: str = "project: p\n") -> Path:
    config = top / relative
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)
    git(top, "add", relative)
    git(top, "commit", "-qm", "config")
    return config


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_a_committed_config_is_stamped_with_its_commit(tmp_path: Path, object_format: str) -> None:
    top = repository(tmp_path / "repo", f"--object-format={object_format}")
    config = commit_config(top)
    stamp = config_stamp(config)
    assert stamp == {"sha256": hashlib.sha256(config.read_bytes()).hexdigest(), "commit": git(top, "rev-parse", "HEAD"),
                     "committed": True}


def test_an_edited_config_is_not_as_committed(tmp_path: Path) -> None:
    top = repository(tmp_path / "repo")
    config = commit_config(top)
    config.write_text("project: p\npeople: []\n")
    stamp = config_stamp(config)
    assert stamp["commit"] == git(top, "rev-parse", "HEAD")
    assert stamp["committed"] is False
    assert stamp["sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()


def test_the_same_length_edit_is_noticed(tmp_path: Path) -> None:
    top = repository(tmp_path / "repo")
    config = commit_config(top, text="project: a\n")
    config.write_text("project: b\n")
    assert config_stamp(config)["committed"] is False


def test_a_config_in_a_subfolder_of_the_repository(tmp_path: Path) -> None:
    top = repository(tmp_path / "infra")
    config = commit_config(top, "deploy/relpromote/relpromote.yml")
    assert config_stamp(config)["committed"] is True
    (top / "other.txt").write_text("x")
    git(top, "add", "other.txt")
    git(top, "commit", "-qm", "other")
    assert config_stamp(config) == {**config_stamp(config), "commit": git(top, "rev-parse", "HEAD"), "committed": True}


def test_a_config_git_does_not_track_has_the_commit_but_is_not_committed(tmp_path: Path) -> None:
    top = repository(tmp_path / "repo")
    commit_config(top, "README")
    config = top / "relpromote.yml"
    config.write_text("project: p\n")
    assert config_stamp(config) == {"sha256": hashlib.sha256(b"project: p\n").hexdigest(), "commit": git(top, "rev-parse", "HEAD"),
                                    "committed": False}


def test_a_repository_with_no_commit_and_a_folder_outside_git(tmp_path: Path) -> None:
    unborn = repository(tmp_path / "new") / "relpromote.yml"
    unborn.write_text("project: p\n")
    assert config_stamp(unborn)["commit"] is None and config_stamp(unborn)["committed"] is False
    outside = tmp_path / "plain"
    outside.mkdir()
    (outside / "relpromote.yml").write_text("project: p\n")
    if subprocess.run(["git", "-C", str(outside), "rev-parse"], capture_output=True).returncode == 0:
        pytest.skip("the temporary folder lies inside a git work tree")
    assert config_stamp(outside / "relpromote.yml") == {"sha256": hashlib.sha256(b"project: p\n").hexdigest(), "commit": None,
                                                        "committed": False}


def test_a_config_reached_through_a_link_is_judged_by_its_target(tmp_path: Path) -> None:
    top = repository(tmp_path / "repo")
    config = commit_config(top)
    link = tmp_path / "relpromote.yml"
    link.symlink_to(config)
    assert config_stamp(link)["committed"] is True
