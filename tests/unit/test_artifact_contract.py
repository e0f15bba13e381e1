"""relpromote/artifact.py, the artifact's byte-level contract and each refusal's reason.

test_artifact.py shows the round trip and the hostile members; these pin what makes the same
source give the same bytes (owners, times, modes, the gzip header, the records' formatting), which
members an artifact holds, and the exact reason of each refusal, source path included.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import tarfile
from pathlib import Path

import pytest

from relpromote.artifact import build_artifact, check_member, extract_artifact, read_artifact
from relpromote.errors import BadInput
from relpromote.manifest import parse_manifest

MANIFEST_TEXT = 'version: "1.0.0"\nchanges: [{id: CH-1, type: fix, title: t, owner: o, why: w, how: h}]\n'
MANIFEST = parse_manifest(MANIFEST_TEXT, "m.yml")


def build(source: Path, out: Path, files: list[str] | None = None, release: dict[str, object] | None = None) -> Path:
    with out.open("wb") as handle:
        build_artifact(source, MANIFEST, {"version": "1.0.0", **(release or {})}, handle, files=files)
    return out


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "lib" / "deep").mkdir(parents=True)
    (src / "app.py").write_text("print('hi')\n")
    (src / "run").write_text("#!/bin/sh\n")
    (src / "run").chmod(0o744)  # the owner may run it: 0755 in the artifact
    (src / "lib" / "data.txt").write_text("data\n")
    (src / "lib" / "data.txt").chmod(0o670)  # group-writable, others none, no owner x: 0644
    (src / "lib" / "grouprun").write_text("x")
    (src / "lib" / "grouprun").chmod(0o650)  # only the group may run it: not executable for the owner, 0644
    (src / "lib" / "deep" / "up").symlink_to("../data.txt")  # a link one level up, still inside
    (src / "link").symlink_to("lib/data.txt")
    return src


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path, "r:gz") as tar:
        return {member.name: member for member in tar}


def member_text(path: Path, name: str) -> str:
    with tarfile.open(path, "r:gz") as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read().decode()


def test_the_members_are_the_sources_files_named_from_its_root(source: Path, tmp_path: Path) -> None:
    (source / ".git").mkdir()
    (source / ".git" / "HEAD").write_text("ref\n")
    (source / "lib" / ".git").mkdir()  # only the top-level .git is left out
    artifact = build(source, tmp_path / "a.tar.gz")
    assert read_artifact(artifact).members == (
        "app.py", "lib", "lib/.git", "lib/data.txt", "lib/deep", "lib/deep/up", "lib/grouprun", "link", "run",
        ".release", ".release/manifest.yml", ".release/release.json", ".release/VERSION",
    )


def test_owners_times_and_modes_do_not_depend_on_the_machine(source: Path, tmp_path: Path) -> None:
    os.chown(source / "app.py", 1234, 5678)
    found = members(build(source, tmp_path / "a.tar.gz"))
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in found.values()} == {(0, 0, "", "", 0)}
    modes = {name: stat.S_IMODE(m.mode) for name, m in found.items()}
    assert modes == {
        "app.py": 0o644, "run": 0o755, "lib/data.txt": 0o644, "lib/grouprun": 0o644, "lib": 0o755, "lib/deep": 0o755,
        "lib/deep/up": 0o777, "link": 0o777, ".release": 0o755, ".release/manifest.yml": 0o644, ".release/release.json": 0o644,
        ".release/VERSION": 0o644,
    }
    assert found["lib/deep/up"].linkname == "../data.txt" and found["lib"].isdir() and found["app.py"].isfile()


def test_the_gzip_header_carries_no_time_and_no_file_name(source: Path, tmp_path: Path) -> None:
    header = build(source, tmp_path / "a.tar.gz").read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] == 0, "no FNAME (or other) flag: the output file's name is not recorded"
    assert header[4:8] == b"\0\0\0\0", "mtime 0: the build time is not recorded"


def test_the_release_records_have_a_fixed_format(source: Path, tmp_path: Path) -> None:
    artifact = build(source, tmp_path / "a.tar.gz", release={"source": {"commit": "abc"}, "built_by": "alice"})
    record = member_text(artifact, ".release/release.json")
    assert record == json.dumps({"format": 1, "version": "1.0.0", "source": {"commit": "abc"}, "built_by": "alice"}, sort_keys=True, indent=2) + "\n"
    assert record.startswith('{\n  "built_by": "alice",\n  "format": 1,')
    assert read_artifact(artifact).release == {"format": 1, "version": "1.0.0", "source": {"commit": "abc"}, "built_by": "alice"}
    manifest = member_text(artifact, ".release/manifest.yml")
    assert manifest.startswith("version: 1.0.0\n") or manifest.startswith("version: '1.0.0'\n"), "the manifest keeps its own order"
    assert member_text(artifact, ".release/VERSION") == "1.0.0\n"


def test_a_git_file_list_releases_exactly_those_files_and_their_folders(source: Path, tmp_path: Path) -> None:
    artifact = build(source, tmp_path / "a.tar.gz", files=["lib/deep/up", "app.py"])
    assert read_artifact(artifact).members[:5] == ("app.py", "lib", "lib/deep", "lib/deep/up", ".release")


def test_a_source_with_nothing_to_release_says_why(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "a" / "b").mkdir(parents=True)
    with pytest.raises(BadInput, match=re.escape(f"{empty}: holds no files, so there is nothing to release; pass --source DIR")):
        build(empty, tmp_path / "a.tar.gz")
    with pytest.raises(BadInput, match=re.escape(f"{empty}: tracks no files here that git does not ignore, so there is nothing")):
        build(empty, tmp_path / "a.tar.gz", files=["a/b"])


def test_regular_files_alone_and_a_link_to_a_folder_are_content(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "only.txt").write_text("x")
    assert read_artifact(build(plain, tmp_path / "a.tar.gz")).members[0] == "only.txt"
    linked = tmp_path / "linked"
    (linked / "dir").mkdir(parents=True)
    (linked / "to-dir").symlink_to("dir")
    assert "to-dir" in read_artifact(build(linked, tmp_path / "b.tar.gz")).members


def test_refusals_name_the_source_and_the_reason(source: Path, tmp_path: Path) -> None:
    (source / ".release").mkdir()
    with pytest.raises(BadInput, match=re.escape(f"{source}: has a '.release' entry, which relpromote reserves for the manifest; rename it")):
        build(source, tmp_path / "a.tar.gz")
    (source / ".release").rmdir()
    (source / "lib" / "out").symlink_to("../../elsewhere")
    with pytest.raises(BadInput, match=re.escape(f"{source}: link 'lib/out' points outside the release ('../../elsewhere')")):
        build(source, tmp_path / "a.tar.gz")
    (source / "lib" / "out").unlink()
    (source / "up").symlink_to("..")
    with pytest.raises(BadInput, match=re.escape(f"{source}: link 'up' points outside the release ('..')")):
        build(source, tmp_path / "a.tar.gz")
    (source / "up").unlink()
    os.mkfifo(source / "lib" / "pipe")
    with pytest.raises(BadInput, match=re.escape(f"{source}: lib/pipe is not a regular file, directory or link; remove it from the source")):
        build(source, tmp_path / "a.tar.gz")


def test_a_source_that_cannot_be_walked_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(BadInput, match=re.escape(f"{missing}: cannot read {missing} (No such file or directory); fix its permissions")):
        build(missing, tmp_path / "a.tar.gz")


def hand_made(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in entries:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def record(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def test_an_artifact_without_either_record_is_not_a_relpromote_artifact(tmp_path: Path) -> None:
    only_manifest = hand_made(tmp_path / "m.tar.gz", [record(".release/manifest.yml", MANIFEST_TEXT.encode())])
    only_release = hand_made(tmp_path / "r.tar.gz", [record(".release/release.json", b"{}")])
    for path in (only_manifest, only_release):
        with pytest.raises(BadInput, match=re.escape(f"{path}: no .release/manifest.yml inside; this is not a relpromote artifact")):
            read_artifact(path)


def test_a_bad_manifest_inside_is_named_by_its_place(tmp_path: Path) -> None:
    path = hand_made(tmp_path / "a.tar.gz", [record(".release/manifest.yml", b"version: [\n"), record(".release/release.json", b"{}")])
    with pytest.raises(BadInput, match=re.escape(f"{path}:.release/manifest.yml")):
        read_artifact(path)


def test_a_record_that_is_not_a_file_is_unreadable(tmp_path: Path) -> None:
    folder = tarfile.TarInfo(".release/manifest.yml")
    folder.type = tarfile.DIRTYPE
    path = hand_made(tmp_path / "a.tar.gz", [(folder, b""), record(".release/release.json", b"{}")])
    with pytest.raises(BadInput, match=re.escape(".release/manifest.yml: unreadable member of the artifact")):
        read_artifact(path)


@pytest.mark.parametrize(("name", "why"), [("", "unsafe path ''"), ("a\\..\\..\\x", "unsafe path"), ("/x", "unsafe path '/x'")])
def test_member_names_that_are_empty_or_use_backslashes_are_unsafe(name: str, why: str) -> None:
    with pytest.raises(BadInput, match=re.escape(f"art.tar.gz: {why}")):
        check_member(tarfile.TarInfo(name), "art.tar.gz")


def test_reading_names_the_artifact_in_each_refusal(tmp_path: Path) -> None:
    link = tarfile.TarInfo("up")
    link.type, link.linkname = tarfile.SYMTYPE, ".."
    path = hand_made(tmp_path / "a.tar.gz", [record(".release/manifest.yml", MANIFEST_TEXT.encode()), (link, b"")])
    with pytest.raises(BadInput, match=re.escape(f"{path}: link 'up' points outside the release ('..')")):
        read_artifact(path)
    bad = hand_made(tmp_path / "b.tar.gz", [record("../x", b"x")])
    with pytest.raises(BadInput, match=re.escape(f"{bad}: unsafe path '../x' in the artifact")):
        read_artifact(bad)


def test_extraction_drops_setuid_and_group_write_bits_and_makes_its_folders(tmp_path: Path) -> None:
    path = hand_made(tmp_path / "a.tar.gz", [
        record(".release/manifest.yml", MANIFEST_TEXT.encode()), record(".release/release.json", b"{}"),
        record("bin/tool", b"#!/bin/sh\n", 0o4775),
    ])
    target = tmp_path / "deep" / "er" / "out"
    extract_artifact(path, target)
    mode = stat.S_IMODE((target / "bin" / "tool").stat().st_mode)
    assert not mode & (stat.S_ISUID | stat.S_IWGRP | stat.S_IWOTH), oct(mode)
    extract_artifact(path, target.parent / "again")
    (target.parent / "exists").mkdir()
    extract_artifact(path, target.parent / "exists")
    assert (target.parent / "exists" / "bin" / "tool").exists()

