"""roles/release_deploy/library/release_verify.py, pinned exactly (issue 18's mutation score): what the module reports
about the live release (its link, digest, files against the manifest, the controller's files_digest when it applies)
and the application's health answer, run in this process as Ansible runs it, against real trees and a real server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.host_modules import App, load, load_util, make_release, run

VERIFY = load("roles/release_deploy/library/release_verify.py")
INTEGRITY = load_util("roles/release_deploy/module_utils/release_integrity.py")
DIGEST = "d" * 64
REWRITTEN = ".release/FILES.json: differs from the artifact's file list (rewritten on the host)"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    folder = tmp_path / "opt" / "app"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def app(base: Path) -> Iterator[App]:
    served = App(base)
    yield served
    served.close()


def verify(base: Path, app: App, check: bool = False, **args: object) -> dict[str, object]:
    outcome = run(VERIFY, {"base_dir": str(base), "service_host": app.host, "service_port": app.port, **args}, check)
    assert not outcome.failed, outcome.result
    return outcome.result


def answer(app: App, version: str | None, path: str = "/health") -> dict[str, object]:
    return {"url": f"http://{app.host}:{app.port}{path}", "status": 200, "version": version, "error": ""}


def files_digest(release: Path) -> str:
    entries, _ = INTEGRITY.read_manifest(str(release))
    return str(INTEGRITY.files_digest(DIGEST, entries))


def test_an_intact_live_release_is_reported_whole_with_every_file_hashed(base: Path, app: App) -> None:
    make_release(base, "1.0.0", DIGEST)
    (base / "current").symlink_to("releases/1.0.0/")
    result = verify(base, app)
    assert {key: result[key] for key in ("changed", "current", "link_target", "digest", "integrity", "hashed", "app")} == {
        "changed": False, "current": "1.0.0", "link_target": "releases/1.0.0/", "digest": DIGEST, "integrity": [],
        "hashed": 3, "app": answer(app, "1.0.0"),
    }
    assert app.asked == ["/health"]
    assert verify(base, app, full=False)["hashed"] == 0, "not full: untouched files are taken by their times"
    assert verify(base, app, check=True)["integrity"] == [], "check mode reads the same"


def test_a_changed_file_is_named(base: Path, app: App) -> None:
    release = make_release(base, "1.0.0", DIGEST)
    (base / "current").symlink_to(str(release))  # an absolute target
    (release / "bin" / "restart").write_text("#!/bin/sh\nexit 1\n")
    result = verify(base, app)
    assert (result["current"], result["link_target"], result["digest"]) == ("1.0.0", str(release), DIGEST)
    assert result["integrity"] == ["bin/restart: changed (size 17, not 165)"]


def test_the_controllers_files_digest_applies_to_the_release_it_belongs_to(base: Path, app: App) -> None:
    release = make_release(base, "1.0.0", DIGEST)
    (base / "current").symlink_to("releases/1.0.0")
    right = files_digest(release)
    assert verify(base, app, files_digest=right)["integrity"] == []
    assert verify(base, app, files_digest="0" * 64)["integrity"] == [REWRITTEN], "no version: the live release's"
    assert verify(base, app, files_digest="0" * 64, version="1.0.0")["integrity"] == [REWRITTEN]
    # The digest of another release: not this one's to judge, its files are checked against its manifest only.
    assert verify(base, app, files_digest="0" * 64, version="2.0.0")["integrity"] == []


def test_a_release_without_a_digest_file_reports_an_empty_digest(base: Path, app: App) -> None:
    make_release(base, "1.0.0")
    (base / "current").symlink_to("releases/1.0.0")
    result = verify(base, app)
    assert result["digest"] == "" and result["integrity"] == []


def test_a_link_to_nothing_a_file_in_its_place_or_no_link_are_named(base: Path, app: App) -> None:
    (base / "current").symlink_to("releases/9.9.9")
    result = verify(base, app)
    assert (result["current"], result["digest"], result["hashed"]) == ("9.9.9", "", 0)
    assert result["integrity"] == ["releases/9.9.9: the link points to no release directory"]
    (base / "current").unlink()
    assert (verify(base, app)["integrity"], verify(base, app)["current"]) == ([], "")
    (base / "current").write_text("")
    # base_dir as given, with slashes at its end: the path named is the link's own.
    result = run(VERIFY, {"base_dir": f"{base}//", "service_host": app.host, "service_port": app.port}).result
    assert result["integrity"] == [f"{base}/current: not a symbolic link"] and result["link_target"] == ""
    assert result["app"] == answer(app, None)


def test_the_health_endpoint_is_asked_where_it_is_told_and_by_default_on_localhost_8080(base: Path, app: App) -> None:
    assert verify(base, app, health_path="status")["app"] == answer(app, None, "/status")
    defaults = run(VERIFY, {"base_dir": str(base)}).result
    assert defaults["app"]["url"] == "http://localhost:8080/health"


def test_base_dir_is_required() -> None:
    outcome = run(VERIFY, {})
    assert outcome.failed and outcome.msg == "missing required arguments: base_dir"


def test_a_release_that_cannot_be_read_is_named_not_crashed(base: Path, app: App) -> None:
    # A folder nested deeper than a path may be long (PATH_MAX), added after the manifest: walking it fails even as root.
    release = make_release(base, "1.0.0", DIGEST)
    (base / "current").symlink_to("releases/1.0.0")
    descriptor = os.open(release, os.O_RDONLY)
    try:
        for _ in range(20):
            os.mkdir("d" * 250, dir_fd=descriptor)
            inner = os.open("d" * 250, os.O_RDONLY, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = inner
    finally:
        os.close(descriptor)
    result = verify(base, app)
    integrity = result["integrity"]
    assert isinstance(integrity, list) and len(integrity) == 1, integrity
    assert integrity[0].startswith("releases/1.0.0: cannot be read ([Errno 36] File name too long: "), integrity
    assert result["app"] == answer(app, "1.0.0")


def test_only_the_slashes_at_the_end_of_base_dir_are_dropped(tmp_path: Path, app: App) -> None:
    base = tmp_path / "SHOP-BOX"
    base.mkdir()
    (base / "current").write_text("")
    result = run(VERIFY, {"base_dir": f"{base}/", "service_host": app.host, "service_port": app.port}).result
    assert result["integrity"] == [f"{base}/current: not a symbolic link"]
