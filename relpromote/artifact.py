"""The release artifact: a reproducible, compressed tar of the source with the manifest inside.

Built safely (no absolute paths, no `..`, no links that leave the tree, no device files) and read
back with the same rules, so a tampered or hostile artifact is refused before anything unpacks it.
The same source and manifest always give the same bytes, hence the same sha256.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import stat
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from relpromote.errors import BadInput
from relpromote.manifest import Manifest, parse_manifest

META_DIR = ".release"
MANIFEST_MEMBER = f"{META_DIR}/manifest.yml"
RELEASE_MEMBER = f"{META_DIR}/release.json"
VERSION_MEMBER = f"{META_DIR}/VERSION"
EXCLUDED_TOP_LEVEL = {".git"}
FORMAT = 1


@dataclass(frozen=True)
class ArtifactContents:
    manifest: Manifest
    release: dict[str, Any]
    members: tuple[str, ...]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_artifact(
    source: Path,
    manifest: Manifest,
    release: dict[str, Any],
    out: IO[bytes],
    *,
    files: Sequence[str] | None = None,
    mtime: int = 0,
) -> None:
    """Write the artifact of `source` (or of just `files` in it) to `out`; refuses anything unsafe."""
    if (source / META_DIR).exists():
        raise BadInput(f"{source}: has a '{META_DIR}' entry, which relpromote reserves for the manifest; rename it")
    entries = _walk(source) if files is None else _with_parents(files)
    links = {relative: os.readlink(source / relative) for relative in entries if (source / relative).is_symlink()}
    for name in sorted(links):
        _check_link_target(name, links[name], str(source))
    for name in sorted(links):
        _check_link_chain(name, links, str(source))
    if not any(_is_content(source, relative) for relative in entries):
        where = "tracks no files here that git does not ignore" if files is not None else "holds no files"
        raise BadInput(f"{source}: {where}, so there is nothing to release; pass --source DIR with the application")
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=mtime, compresslevel=6, filename="") as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for relative in entries:
                member, handle = _member(source, relative, mtime)
                if handle is None:
                    tar.addfile(member)
                else:
                    with handle:
                        tar.addfile(member, handle)
            tar.addfile(_dir_info(META_DIR, mtime))
            manifest_text = yaml.safe_dump(manifest.as_data(), sort_keys=False).encode()
            _add_bytes(tar, MANIFEST_MEMBER, manifest_text, mtime)
            release_text = json.dumps({"format": FORMAT, **release}, sort_keys=True, indent=2).encode() + b"\n"
            _add_bytes(tar, RELEASE_MEMBER, release_text, mtime)
            _add_bytes(tar, VERSION_MEMBER, manifest.version.encode() + b"\n", mtime)


def read_artifact(path: Path) -> ArtifactContents:
    """Check every member of the artifact and return its manifest and release record."""
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            names = []
            links: dict[str, str] = {}
            manifest_text = release_text = None
            for member in tar:
                check_member(member, str(path))
                names.append(member.name)
                if member.issym():
                    links[posixpath.normpath(member.name)] = member.linkname
                if member.name == MANIFEST_MEMBER:
                    manifest_text = _read_member(tar, member)
                elif member.name == RELEASE_MEMBER:
                    release_text = _read_member(tar, member)
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise BadInput(f"{path}: not a readable release artifact ({exc}); rebuild it with `relpromote build`") from None
    for name in sorted(links):
        _check_link_chain(name, links, str(path))
    if manifest_text is None or release_text is None:
        raise BadInput(f"{path}: no {MANIFEST_MEMBER} inside; this is not a relpromote artifact")
    manifest = parse_manifest(manifest_text.decode(), f"{path}:{MANIFEST_MEMBER}")
    return ArtifactContents(manifest, json.loads(release_text), tuple(names))


def extract_artifact(path: Path, destination: Path) -> None:
    """Unpack after `read_artifact`'s checks; tarfile's 'data' filter is a second guard."""
    read_artifact(path)
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode="r:gz") as tar:
        tar.extractall(destination, filter="data")


def check_member(member: tarfile.TarInfo, source: str) -> None:
    name = member.name
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or name == "" or "\\" in name:
        raise BadInput(f"{source}: unsafe path {name!r} in the artifact (absolute or with '..'); refusing to unpack it")
    if member.issym():
        _check_link_target(name, member.linkname, source)
    elif member.islnk():
        raise BadInput(f"{source}: hard link {name!r} in the artifact; refusing to unpack it")
    elif not (member.isfile() or member.isdir()):
        raise BadInput(f"{source}: special file {name!r} in the artifact; refusing to unpack it")


def _check_link_target(name: str, target: str, source: str) -> None:
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise BadInput(f"{source}: link {name!r} points outside the release ({target!r}); make it relative and inside")


# More links followed than this while resolving one is a loop (the kernel gives up at 40 too).
MAX_LINK_HOPS = 40


def _check_link_chain(name: str, links: dict[str, str], source: str) -> None:
    """Resolve link `name` component by component as the kernel would, following the release's own links: refuse it
    when any step leaves the release (e.g. `b -> .` and `a -> b/b/../..`, which looks inside written out), or loops."""
    inside: list[str] = [part for part in posixpath.dirname(name).split("/") if part not in ("", ".")]
    todo = links[name].split("/")
    hops = 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not inside:
                raise BadInput(f"{source}: link {name!r} ({links[name]!r}) leaves the release through the links it passes; "
                               "make every link point inside without going through another link")
            inside.pop()
            continue
        candidate = "/".join([*inside, part])
        if candidate in links:
            hops += 1
            target = links[candidate]
            if hops > MAX_LINK_HOPS or target.startswith("/"):
                raise BadInput(f"{source}: link {name!r} ({links[name]!r}) does not resolve inside the release "
                               f"({'a loop of links' if hops > MAX_LINK_HOPS else f'through {candidate!r} -> {target!r}'})")
            todo = target.split("/") + todo
            continue
        inside.append(part)


def _is_content(source: Path, relative: str) -> bool:
    """A file or link: folders alone (even nested) release nothing."""
    return not (source / relative).is_dir() or (source / relative).is_symlink()


def _walk(source: Path) -> list[str]:
    found: list[str] = []

    def unreadable(error: OSError) -> None:
        raise BadInput(f"{source}: cannot read {error.filename} ({error.strerror}); fix its permissions or leave it out of the source")

    for directory, dirnames, filenames in os.walk(source, onerror=unreadable):
        relative_dir = os.path.relpath(directory, source)
        if relative_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in EXCLUDED_TOP_LEVEL]
        dirnames.sort()
        for name in dirnames + sorted(filenames):
            found.append(name if relative_dir == "." else f"{relative_dir}/{name}")
    return sorted(found)


def _with_parents(files: Sequence[str]) -> list[str]:
    entries = set(files)
    for name in files:
        parent = posixpath.dirname(name)
        while parent:
            entries.add(parent)
            parent = posixpath.dirname(parent)
    return sorted(entries)


def _member(source: Path, relative: str, mtime: int) -> tuple[tarfile.TarInfo, IO[bytes] | None]:
    full = source / relative
    info = os.lstat(full)
    if stat.S_ISLNK(info.st_mode):
        target = os.readlink(full)
        _check_link_target(relative, target, str(source))
        member = _base_info(relative, mtime)
        member.type = tarfile.SYMTYPE
        member.linkname = target
        member.mode = 0o777
        return member, None
    if stat.S_ISDIR(info.st_mode):
        return _dir_info(relative, mtime), None
    if stat.S_ISREG(info.st_mode):
        member = _base_info(relative, mtime)
        member.size = info.st_size
        member.mode = 0o755 if info.st_mode & stat.S_IXUSR else 0o644
        try:
            return member, full.open("rb")
        except OSError as exc:
            raise BadInput(f"{source}: cannot read {relative} ({exc.strerror}); fix its permissions or leave it out of the source") from None
    raise BadInput(f"{source}: {relative} is not a regular file, directory or link; remove it from the source")


def _base_info(name: str, mtime: int) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.mtime = mtime
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def _dir_info(name: str, mtime: int) -> tarfile.TarInfo:
    member = _base_info(name, mtime)
    member.type = tarfile.DIRTYPE
    member.mode = 0o755
    return member


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    member = _base_info(name, mtime)
    member.size = len(data)
    member.mode = 0o644
    tar.addfile(member, io.BytesIO(data))


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:
        raise BadInput(f"{member.name}: unreadable member of the artifact")
    return handle.read()
