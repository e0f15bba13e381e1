"""roles/release_deploy/library/release_switch.py: the switch of `current`, atomic, and only to a complete release."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.host_modules import Outcome, load, load_util, run

SWITCH = load("roles/release_deploy/library/release_switch.py")
INTEGRITY = load_util("roles/release_deploy/module_utils/release_integrity.py")


@pytest.fixture
def base(tmp_path: Path) -> Path:
    for version in ("1.0.0", "2.0.0"):
        (tmp_path / "releases" / version / ".release").mkdir(parents=True)
        (tmp_path / "releases" / version / ".release" / "DIGEST").write_text(version[0] * 64 + "\n")
        INTEGRITY.write_manifest(str(tmp_path / "releases" / version), version[0] * 64)
    return tmp_path


def switch(base: Path, target: str, check: bool = False, **args: object) -> Outcome:
    return run(SWITCH, {"path": str(base / "current"), "target": target, "history": str(base / ".history"), **args}, check=check)


def test_a_first_switch_creates_the_link_and_the_history(base: Path) -> None:
    outcome = switch(base, "releases/1.0.0")
    assert not outcome.failed and outcome["switched"] and outcome["changed"] and outcome["previous"] == "" and outcome["current"] == "1.0.0"
    assert os.readlink(base / "current") == "releases/1.0.0" and (base / ".history").read_text() == "1.0.0\n"


def test_a_switch_replaces_the_link_by_rename_and_leaves_no_temporary(base: Path) -> None:
    switch(base, "releases/1.0.0")
    before = os.lstat(base / "current").st_ino
    stale = base / f".current.{os.getpid()}.tmp"
    stale.symlink_to("releases/nothing")  # left by a crashed run with our pid
    outcome = switch(base, "releases/2.0.0")
    assert outcome["switched"] and outcome["previous"] == "1.0.0" and outcome["current"] == "2.0.0"
    assert os.readlink(base / "current") == "releases/2.0.0" and os.lstat(base / "current").st_ino != before
    assert sorted(p.name for p in base.iterdir()) == [".history", "current", "releases"]
    assert (base / ".history").read_text() == "1.0.0\n2.0.0\n"


def test_an_incomplete_release_is_never_switched_to(base: Path) -> None:
    switch(base, "releases/1.0.0")
    (base / "releases" / "3.0.0").mkdir()  # unpacked without its DIGEST: interrupted, or not by release_unpack
    outcome = switch(base, "releases/3.0.0")
    assert outcome.failed and "is not a completely unpacked release (no .release/DIGEST)" in outcome.msg
    assert (outcome["switched"], outcome["changed"], outcome["history_appended"]) == (False, False, False)
    assert os.readlink(base / "current") == "releases/1.0.0" and (base / ".history").read_text() == "1.0.0\n"
    checked = switch(base, "releases/3.0.0", check=True)
    assert not checked.failed and "is not unpacked yet (check mode)" in checked.msg
    assert checked["switched"] is True and checked["previous"] == "1.0.0" and checked["current"] == "3.0.0"


def test_something_that_is_not_a_link_is_never_replaced(base: Path) -> None:
    (base / "current").mkdir()
    outcome = switch(base, "releases/1.0.0")
    assert outcome.failed and "exists and is not a symbolic link; move it away by hand" in outcome.msg
    assert (base / "current").is_dir() and not (base / ".history").exists()


def test_an_unchanged_link_changes_nothing_unless_the_history_lost_it(base: Path) -> None:
    switch(base, "releases/1.0.0")
    same = switch(base, "releases/1.0.0")
    assert not same["changed"] and not same["switched"] and not same["history_appended"]
    (base / ".history").write_text("0.9.0\n")
    healed = switch(base, "releases/1.0.0")
    assert healed["changed"] and not healed["switched"] and healed["history_appended"]
    assert (base / ".history").read_text() == "0.9.0\n1.0.0\n"


def test_check_mode_changes_nothing(base: Path) -> None:
    switch(base, "releases/1.0.0")
    outcome = switch(base, "releases/2.0.0", check=True)
    assert outcome["switched"] and outcome["changed"] and outcome["history_appended"]
    assert os.readlink(base / "current") == "releases/1.0.0" and (base / ".history").read_text() == "1.0.0\n"


def test_without_a_history_only_the_link_changes(base: Path) -> None:
    outcome = run(SWITCH, {"path": str(base / "current") + "/", "target": "releases/2.0.0", "version": "2.0.0-b"})
    assert outcome["switched"] and not outcome["history_appended"] and outcome["current"] == "2.0.0-b"
    assert os.readlink(base / "current") == "releases/2.0.0" and not (base / ".history").exists()


def test_history_helpers() -> None:
    assert SWITCH.version_of("releases/1.0.0/") == "1.0.0" and SWITCH.version_of(None) == ""
    assert SWITCH.last_line("/nonexistent") is None


def test_a_release_whose_files_changed_is_not_switched_to(base: Path) -> None:
    assert not switch(base, "releases/1.0.0").failed
    (base / "releases" / "2.0.0" / "app.py").write_text("print('added by hand')\n")
    outcome = switch(base, "releases/2.0.0")
    assert outcome.failed and "app.py: added" in outcome.msg and "refusing to switch to it" in outcome.msg
    assert outcome["tampered"] == ["app.py: added"]
    assert (outcome["changed"], outcome["switched"], outcome["history_appended"]) == (False, False, False)
    assert os.readlink(base / "current") == "releases/1.0.0"
    assert (base / ".history").read_text() == "1.0.0\n"


def test_a_release_without_a_manifest_is_not_switched_to(base: Path) -> None:
    (base / "releases" / "2.0.0" / ".release" / "FILES.json").unlink()
    outcome = switch(base, "releases/2.0.0", check=True)
    assert outcome.failed and ".release/FILES.json: missing" in outcome.msg and not (base / "current").exists()


def test_an_empty_history_gets_its_first_line(base: Path) -> None:
    switch(base, "releases/1.0.0")
    (base / ".history").write_text("\n\n")
    healed = switch(base, "releases/1.0.0")
    assert healed["history_appended"] and (base / ".history").read_text() == "\n\n1.0.0\n"


def test_the_link_and_its_target_are_required(base: Path) -> None:
    for args in ({"target": "releases/1.0.0"}, {"path": str(base / "current")}):
        outcome = run(SWITCH, args)
        assert outcome.failed and "missing required arguments" in outcome.msg
    assert not (base / "current").exists()


def test_paths_expand_the_home_folder(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(base))
    outcome = run(SWITCH, {"path": "~/current", "target": "releases/1.0.0", "history": "~/.history"})
    assert not outcome.failed, outcome.msg
    assert os.readlink(base / "current") == "releases/1.0.0" and (base / ".history").read_text() == "1.0.0\n"
