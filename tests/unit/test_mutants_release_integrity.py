"""roles/release_deploy/module_utils/release_integrity.py, pinned exactly (issue 18's mutation score): the manifest a
release is unpacked with, and each way a tree can differ from it, named."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from pathlib import Path

import pytest

from tests.unit.host_modules import load_util

INTEGRITY = load_util("roles/release_deploy/module_utils/release_integrity.py")
DIGEST = "d" * 64


def tree(root: Path) -> Path:
    """A release as unpacked: folders, files of two modes, a link, and its manifest written last."""
    (root / "bin").mkdir(parents=True)
    (root / "lib" / "deep").mkdir(parents=True)
    (root / ".release").mkdir()
    (root / "app.py").write_text("print('hi')\n")
    (root / "bin" / "restart").write_text("#!/bin/sh\n")
    (root / "bin" / "restart").chmod(0o755)
    (root / "lib" / "deep" / "x.txt").write_text("deep\n")
    (root / "lib" / "deep").chmod(0o750)
    (root / "latest").symlink_to("lib/deep")
    (root / ".release" / "DIGEST").write_text(DIGEST + "\n")
    INTEGRITY.write_manifest(str(root), DIGEST)
    return root


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_manifest_records_every_entry_by_kind_and_is_written_last(tmp_path: Path) -> None:
    root = tree(tmp_path / "r")
    path = root / ".release" / "FILES.json"
    document = json.loads(path.read_text())
    assert path.read_text() == json.dumps(document, sort_keys=True, separators=(",", ":"))
    assert document["format"] == 1 and document["digest"] == DIGEST
    assert document["entries"] == {
        ".release": ["dir", 0o755],
        ".release/DIGEST": ["file", 0o644, 65, sha(DIGEST.encode() + b"\n")],
        "app.py": ["file", 0o644, 12, sha(b"print('hi')\n")],
        "bin": ["dir", 0o755],
        "bin/restart": ["file", 0o755, 10, sha(b"#!/bin/sh\n")],
        "latest": ["link", "lib/deep"],
        "lib": ["dir", 0o755],
        "lib/deep": ["dir", 0o750],
        "lib/deep/x.txt": ["file", 0o644, 5, sha(b"deep\n")],
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    newest = max(os.lstat(p).st_ctime_ns for p in [root, *[q for q in root.rglob("*") if q not in (path, path.parent)]])
    assert path.stat().st_mtime_ns > newest, "the manifest's time is after every change of the tree"
    assert INTEGRITY.read_manifest(str(root)) == (document["entries"], path.stat().st_mtime_ns)
    assert INTEGRITY.manifest_digest(str(root)) == DIGEST
    assert INTEGRITY.check(str(root)) == ([], 0), "an untouched tree is checked by its times alone"
    assert INTEGRITY.check(str(root), full=True) == ([], 4), "full: every file hashed"


def test_a_manifest_folder_is_made_when_missing_and_known_digests_are_taken_as_given(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "a").write_text("a")
    entries = INTEGRITY.write_manifest(str(root), "x", known={"a": "given"})
    assert entries == {"a": ["file", 0o644, 1, "given"]}
    assert stat.S_IMODE((root / ".release").stat().st_mode) == 0o755
    assert json.loads((root / ".release" / "FILES.json").read_text())["entries"] == {"a": ["file", 0o644, 1, "given"]}
    assert INTEGRITY.describe(str(root), {"a": ""})["a"][3] == sha(b"a"), "an empty known digest is computed"


def test_a_file_larger_than_one_read_is_hashed_whole(tmp_path: Path) -> None:
    data = os.urandom(INTEGRITY.CHUNK + 17)
    (tmp_path / "big").write_bytes(data)
    assert INTEGRITY.sha256_file(str(tmp_path / "big")) == sha(data)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda r: (r / "app.py").write_text("print('HI')\n"), "app.py: changed (content)"),
        (lambda r: (r / "app.py").write_text("print('longer')\n"), "app.py: changed (size 16, not 12)"),
        (lambda r: (r / "app.py").chmod(0o600), "app.py: mode 0600, not 0644"),
        (lambda r: ((r / "app.py").unlink(), (r / "app.py").mkdir()), "app.py: no longer a file"),
        (lambda r: (r / "lib" / "deep").chmod(0o700), "lib/deep: mode 0700, not 0750"),
        (lambda r: ((r / "bin" / "restart").unlink(), (r / "bin").rmdir(), (r / "bin").write_text("")), "bin/restart: removed|bin: no longer a directory"),
        (lambda r: ((r / "latest").unlink(), (r / "latest").write_text("")), "latest: no longer a symbolic link"),
        (lambda r: ((r / "latest").unlink(), (r / "latest").symlink_to("bin")), "latest: points elsewhere"),
        (lambda r: (r / "lib" / "deep" / "new").write_text(""), "lib/deep/new: added"),
        (lambda r: (r / "lib" / "deep" / "x.txt").unlink(), "lib/deep/x.txt: removed"),
    ],
)
def test_each_difference_is_named(tmp_path: Path, change: object, problem: str) -> None:
    root = tree(tmp_path / "r")
    change(root)  # type: ignore[operator]
    problems, _ = INTEGRITY.check(str(root))
    assert problems == problem.split("|")


def test_the_problems_are_sorted_and_a_file_rewritten_with_the_same_size_is_hashed(tmp_path: Path) -> None:
    root = tree(tmp_path / "r")
    (root / "app.py").write_text("print('ho')\n")
    (root / "z").write_text("")
    (root / "bin" / "restart").unlink()
    problems, hashed = INTEGRITY.check(str(root))
    assert problems == ["app.py: changed (content)", "bin/restart: removed", "z: added"] and hashed == 1
    (root / "app.py").write_text("print('hi')\n")  # the same bytes again: newer ctime, hashed, no difference
    assert INTEGRITY.check(str(root)) == (["bin/restart: removed", "z: added"], 1)


def test_a_file_of_the_same_ctime_as_the_manifest_is_hashed(tmp_path: Path) -> None:
    root = tree(tmp_path / "r")
    manifest = root / ".release" / "FILES.json"
    written = manifest.stat().st_mtime_ns
    (root / "app.py").write_text("print('HI')\n")
    ctime = (root / "app.py").stat().st_ctime_ns
    os.utime(manifest, ns=(written, ctime))  # the manifest's time exactly the file's change time
    assert INTEGRITY.check(str(root))[0] == ["app.py: changed (content)"]


def test_a_manifest_missing_unreadable_or_of_another_format_checks_nothing(tmp_path: Path) -> None:
    root = tree(tmp_path / "r")
    manifest = root / ".release" / "FILES.json"
    missing = [".release/FILES.json: missing or unreadable, the release cannot be checked"]
    good = manifest.read_text()
    for body in ("not json", "[]", json.dumps({"format": 2, "entries": {}}), json.dumps({"format": 1, "entries": []}), json.dumps({"format": 1})):
        manifest.write_text(body)
        assert INTEGRITY.read_manifest(str(root)) == (None, None), body
        assert INTEGRITY.check(str(root)) == (missing, 0)
    manifest.write_text("[]")
    assert INTEGRITY.manifest_digest(str(root)) is None
    manifest.write_text("{")
    assert INTEGRITY.manifest_digest(str(root)) is None
    manifest.unlink()
    manifest.symlink_to("../app.py")
    assert INTEGRITY.read_manifest(str(root)) == (None, None), "a link is not the manifest"
    manifest.unlink()
    assert INTEGRITY.manifest_digest(str(root)) is None and INTEGRITY.check(str(root)) == (missing, 0)
    manifest.write_text(good.replace('"file"', '"socket"', 1))
    problems, _ = INTEGRITY.check(str(root))
    assert problems == [".release/DIGEST: unexpected kind socket"]


def test_other_kinds_of_entries_are_recorded_as_other(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    os.mkfifo(root / "pipe", 0o600)
    assert INTEGRITY.describe(str(root)) == {"pipe": ["other", 0o600]}


def test_the_summary_names_eight_and_counts_the_rest() -> None:
    problems = [f"f{i}: added" for i in range(10)]
    assert INTEGRITY.summary(problems) == ", ".join(problems[:8]) + " and 2 more"
    assert INTEGRITY.summary(problems[:8]) == ", ".join(problems[:8])
    assert INTEGRITY.summary(problems[:9]) == ", ".join(problems[:8]) + " and 1 more"
    assert INTEGRITY.tampered_paths(["a: b: c", "x: added"]) == ["a", "x"]


def test_fsync_dir_closes_what_it_opens(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    INTEGRITY.fsync_dir(str(tmp_path))
    assert len(os.listdir("/proc/self/fd")) == before


def test_the_release_a_current_link_names(tmp_path: Path) -> None:
    assert INTEGRITY.version_of("releases/1.2.0/") == "1.2.0" and INTEGRITY.version_of("/opt/app/releases/./2.0") == "2.0"
    assert INTEGRITY.version_of(None) == "" and INTEGRITY.version_of("") == ""
    link = tmp_path / "current"
    assert INTEGRITY.live_version(str(link)) is None
    link.symlink_to("releases/3.0.0")
    assert INTEGRITY.live_version(str(link)) == "3.0.0"


def test_the_controllers_files_digest_accepts_the_manifest_and_refuses_one_rewritten_to_hide_a_change(tmp_path: Path) -> None:
    from relpromote.release_files import files_digest as controllers_files_digest

    root = tree(tmp_path / "r")
    manifest = root / ".release" / "FILES.json"
    entries, _ = INTEGRITY.read_manifest(str(root))
    expected = INTEGRITY.files_digest(DIGEST, entries)
    assert expected == controllers_files_digest(DIGEST, entries) == sha(manifest.read_bytes()), "one definition on both sides"
    assert INTEGRITY.check(str(root), expected=expected) == ([], 0)
    assert INTEGRITY.check(str(root), full=True, expected=expected) == ([], 4)
    # A file changed and the manifest rewritten to describe it: the times and sizes agree, only the digest tells.
    (root / "app.py").write_text("print('HO')\n")
    INTEGRITY.write_manifest(str(root), DIGEST)
    assert INTEGRITY.check(str(root)) == ([], 0), "the rewritten manifest alone would hide the change"
    rewritten = ".release/FILES.json: differs from the artifact's file list (rewritten on the host)"
    assert rewritten == INTEGRITY.REWRITTEN
    assert INTEGRITY.check(str(root), expected=expected) == ([rewritten], 0)
    # The same entries under another artifact's digest are another manifest too.
    manifest.write_bytes(INTEGRITY.manifest_body("e" * 64, entries))
    assert INTEGRITY.check(str(root), expected=expected) == ([rewritten], 0)
    assert INTEGRITY.files_digest("e" * 64, entries) != expected and INTEGRITY.files_digest(DIGEST, {}) != expected


def test_differences_hash_every_file_even_one_the_times_would_pass(tmp_path: Path) -> None:
    root = tree(tmp_path / "r")
    entries, written = INTEGRITY.read_manifest(str(root))
    (root / "app.py").write_text("print('HO')\n")  # same size
    (root / "lib" / "deep" / "new").write_text("")
    manifest = root / ".release" / "FILES.json"
    os.utime(manifest, ns=(written, (root / "app.py").stat().st_ctime_ns + 1))  # the manifest now looks later than the change
    assert INTEGRITY.check(str(root))[0] == ["lib/deep/new: added"], "by its times, app.py looks untouched"
    assert INTEGRITY.differences(str(root), entries) == ["app.py: changed (content)", "lib/deep/new: added"]


def test_every_entry_beside_the_manifest_is_checked(tmp_path: Path) -> None:
    # The manifest is skipped in its folder, not the folder's other entries (in whatever order the folder lists them).
    root = tmp_path / "r"
    (root / ".release").mkdir(parents=True)
    for index in range(20):
        (root / ".release" / f"note-{index:02}").write_text(str(index))
    INTEGRITY.write_manifest(str(root), DIGEST)
    assert len(INTEGRITY.read_manifest(str(root))[0]) == 21
    assert INTEGRITY.check(str(root), full=True) == ([], 20)
    (root / ".release" / "note-07").write_text("77")
    (root / ".release" / "late").write_text("")
    assert INTEGRITY.check(str(root))[0] == [".release/late: added", ".release/note-07: changed (size 2, not 1)"]


def test_the_manifest_folder_is_0755_even_under_a_umask_of_0(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    before = os.umask(0)
    try:
        INTEGRITY.write_manifest(str(root), DIGEST)
    finally:
        os.umask(before)
    assert stat.S_IMODE((root / ".release").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / ".release" / "FILES.json").stat().st_mode) == 0o644


def test_a_manifest_written_again_is_replaced_whole_and_never_through_a_link(tmp_path: Path) -> None:
    root = tree(tmp_path / "r")
    for path in ("app.py", "bin/restart", "lib/deep/x.txt"):
        (root / path).unlink()
    entries = INTEGRITY.write_manifest(str(root), DIGEST)  # shorter than the manifest it replaces
    assert INTEGRITY.read_manifest(str(root))[0] == entries and "app.py" not in entries
    assert INTEGRITY.check(str(root)) == ([], 0)
    # A manifest that is a link (an artifact may hold one): never written through.
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    manifest = root / ".release" / "FILES.json"
    manifest.unlink()
    manifest.symlink_to(outside)
    with pytest.raises(OSError) as refused:
        INTEGRITY.write_manifest(str(root), DIGEST)
    assert refused.value.errno == 40, refused.value  # ELOOP: O_NOFOLLOW
    assert outside.read_text() == "keep\n"


def test_writing_a_manifest_waits_for_the_clock_only_a_few_milliseconds(tmp_path: Path) -> None:
    # A manifest written in the same clock tick as the tree's last change is written again until its time is later
    # (here about one write in three): a few milliseconds' pause each time, never a second.
    took = []
    for index in range(20):
        root = tmp_path / f"r{index}"
        root.mkdir()
        (root / "a").write_text("a")
        began = time.monotonic()
        INTEGRITY.write_manifest(str(root), DIGEST)
        took.append(time.monotonic() - began)
        manifest = root / ".release" / "FILES.json"
        assert manifest.stat().st_mtime_ns > (root / "a").stat().st_ctime_ns
    assert max(took) < 0.9, took
