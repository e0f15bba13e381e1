from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from relpromote.artifact import build_artifact, extract_artifact, read_artifact, sha256_file
from relpromote.errors import BadInput
from relpromote.manifest import parse_manifest

MANIFEST = parse_manifest(
    'version: "1.0.0"\nchanges: [{id: CH-1, type: fix, title: t, owner: o, why: w, how: h}]\n', "m.yml"
)


def build(source: Path, out: Path) -> str:
    with out.open("wb") as handle:
        build_artifact(source, MANIFEST, {"version": "1.0.0"}, handle)
    return sha256_file(out)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "lib").mkdir(parents=True)
    (src / "app.py").write_text("print('hi')\n")
    (src / "lib" / "data.txt").write_text("data\n")
    os.symlink("lib/data.txt", src / "link")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref\n")
    return src


def test_same_source_gives_same_bytes(source: Path, tmp_path: Path) -> None:
    first = build(source, tmp_path / "a.tar.gz")
    os.utime(source / "app.py", (1, 1))  # a touched file with the same content must not change the digest
    assert build(source, tmp_path / "b.tar.gz") == first


def test_different_content_gives_another_digest(source: Path, tmp_path: Path) -> None:
    first = build(source, tmp_path / "a.tar.gz")
    (source / "app.py").write_text("print('bye')\n")
    assert build(source, tmp_path / "b.tar.gz") != first


def test_manifest_is_inside_and_git_is_not(source: Path, tmp_path: Path) -> None:
    build(source, tmp_path / "a.tar.gz")
    contents = read_artifact(tmp_path / "a.tar.gz")
    assert contents.manifest == MANIFEST
    assert ".release/manifest.yml" in contents.members
    assert not any(name.startswith(".git") for name in contents.members)
    extract_artifact(tmp_path / "a.tar.gz", tmp_path / "out")
    assert (tmp_path / "out" / ".release" / "VERSION").read_text() == "1.0.0\n"
    assert os.readlink(tmp_path / "out" / "link") == "lib/data.txt"


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "lib/../../../x"])
def test_build_refuses_links_leaving_the_tree(source: Path, tmp_path: Path, target: str) -> None:
    os.symlink(target, source / "lib" / "evil")
    with pytest.raises(BadInput, match="points outside the release"):
        build(source, tmp_path / "a.tar.gz")


def test_build_refuses_special_files(source: Path, tmp_path: Path) -> None:
    os.mkfifo(source / "pipe")
    with pytest.raises(BadInput, match="not a regular file"):
        build(source, tmp_path / "a.tar.gz")


def hostile(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    path = tmp_path / "hostile.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        manifest = b'version: "1.0.0"\nchanges: [{id: CH-1, type: fix, title: t, owner: o, why: w, how: h}]\n'
        for name, payload in ((".release/manifest.yml", manifest), (".release/release.json", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


@pytest.mark.parametrize(
    ("name", "kind", "link", "message"),
    [
        ("/etc/cron.d/evil", tarfile.REGTYPE, "", "unsafe path"),
        ("../../evil", tarfile.REGTYPE, "", "unsafe path"),
        ("a/../../evil", tarfile.REGTYPE, "", "unsafe path"),
        ("escape", tarfile.SYMTYPE, "/etc", "points outside"),
        ("escape", tarfile.SYMTYPE, "../..", "points outside"),
        ("hard", tarfile.LNKTYPE, "/etc/passwd", "hard link"),
        ("dev", tarfile.CHRTYPE, "", "special file"),
    ],
)
def test_reading_refuses_hostile_members(tmp_path: Path, name: str, kind: bytes, link: str, message: str) -> None:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = link
    path = hostile(tmp_path, member, b"x" if kind == tarfile.REGTYPE else b"")
    with pytest.raises(BadInput, match=message):
        extract_artifact(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_garbage_is_not_an_artifact(tmp_path: Path) -> None:
    path = tmp_path / "x.tar.gz"
    path.write_bytes(b"not a tarball")
    with pytest.raises(BadInput, match="not a readable release artifact"):
        read_artifact(path)


def test_a_link_that_escapes_through_another_link_is_refused_at_build_and_at_read(tmp_path: Path) -> None:
    import io
    import tarfile

    from relpromote.artifact import build_artifact, read_artifact
    from relpromote.errors import BadInput
    from relpromote.manifest import parse_manifest

    source = tmp_path / "src"
    source.mkdir()
    (source / "app.py").write_text("x\n")
    (source / "b").symlink_to(".")
    (source / "a").symlink_to("b/b/../..")  # written out it stays inside; resolved through b it is ../..
    manifest = parse_manifest("version: 1.0.0\nchanges:\n  - {id: C-1, type: fix, title: t, owner: o, why: w, how: h}\n", "m")
    with pytest.raises(BadInput, match="leaves the release through the links it passes"):
        build_artifact(source, manifest, {}, io.BytesIO())
    (source / "a").unlink()
    (source / "a").symlink_to("b/b/app.py")  # through links, but inside: fine
    build_artifact(source, manifest, {}, io.BytesIO())

    crafted = tmp_path / "crafted.tar.gz"
    with tarfile.open(crafted, "w:gz") as tar:
        for name, target in (("b", "."), ("a", "b/b/../..")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    with pytest.raises(BadInput, match="leaves the release"):
        read_artifact(crafted)
