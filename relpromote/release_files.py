"""The file list an artifact leaves on a host, known on the controller: what `.release/FILES.json` must say.

release_unpack writes each unpacked release's manifest on the host (roles/release_deploy/module_utils/
release_integrity.py), and every later step checks the tree against it. Someone who can write the release folder can
rewrite the manifest with the files, so the controller computes the manifest itself from the verified artifact - the
entries release_unpack makes of its members (files 0755 when any execute bit is set, else 0644; folders, the parents
it creates too, 0755; links keep their target; `.release/DIGEST` added; the manifest itself left out) in the same
canonical JSON (keys sorted, no spaces, ASCII) - and passes its sha256, the files digest, to the hosts.

RULES numbers this computation: a build records the files digest with it in its signed `release.built`, and a record of
other rules (or none, from before) is computed again from the verified artifact. Bump it whenever release_unpack or
the manifest's form changes what a host's manifest holds.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
from typing import IO, Any

from relpromote.errors import BadInput

RULES = 1
FORMAT = 1  # release_integrity.FORMAT: the manifest's own format number, inside it
MANIFEST = ".release/FILES.json"
DIGEST_MEMBER = ".release/DIGEST"
CHUNK = 1 << 20

Entries = dict[str, list[Any]]


class _Hashing:
    """A reader that hashes every byte that passes, for the artifact's sha256 in the same pass as its members."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha256.update(data)
        return data

    def rest(self) -> str:
        while self.read(CHUNK):
            pass
        return self.sha256.hexdigest()


def _name(member: tarfile.TarInfo) -> str:
    if member.name.startswith("/"):
        raise BadInput(f"artifact member {member.name!r} has an absolute path")
    parts = [part for part in member.name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise BadInput(f"artifact member {member.name!r} has a '..' component")
    return "/".join(parts)


def _parents(entries: Entries, name: str) -> None:
    parent = posixpath.dirname(name)
    while parent and parent not in entries:
        entries[parent] = ["dir", 0o755]
        parent = posixpath.dirname(parent)


def unpacked_entries(artifact: IO[bytes], digest: str) -> tuple[str, Entries]:
    """(sha256 of the bytes read, entries of the manifest release_unpack writes for them as the artifact `digest`).

    Reads `artifact` (a .tar.gz) once, to its end; the caller compares the sha256 with the ledger's digest before it
    trusts the entries. Members release_unpack refuses (hard links, devices) are refused here too."""
    reader = _Hashing(artifact)
    entries: Entries = {}
    try:
        with tarfile.open(fileobj=reader, mode="r|gz", bufsize=CHUNK) as tar:  # type: ignore[call-overload]
            for member in tar:
                name = _name(member)
                if not name:
                    continue
                _parents(entries, name)
                if member.isdir():
                    entries[name] = ["dir", 0o755]
                elif member.issym():
                    entries[name] = ["link", member.linkname]
                elif member.isfile():
                    data = tar.extractfile(member)
                    sha256 = hashlib.sha256()
                    size = 0
                    block = data.read(CHUNK) if data is not None else b""
                    while block:
                        sha256.update(block)
                        size += len(block)
                        block = data.read(CHUNK) if data is not None else b""
                    entries[name] = ["file", 0o755 if member.mode & 0o111 else 0o644, size, sha256.hexdigest()]
                else:
                    raise BadInput(f"artifact member {member.name!r} is neither a file, a directory nor a symbolic link")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BadInput(f"the artifact cannot be read as a release: {exc}") from None
    actual = reader.rest()
    record = (digest + "\n").encode("ascii")
    _parents(entries, DIGEST_MEMBER)
    entries[DIGEST_MEMBER] = ["file", 0o644, len(record), hashlib.sha256(record).hexdigest()]
    manifest_and_below = MANIFEST + "/"
    return actual, {name: entry for name, entry in entries.items() if name != MANIFEST and not name.startswith(manifest_and_below)}


def manifest_body(digest: str, entries: Entries) -> bytes:
    """The manifest's bytes, exactly as release_integrity.manifest_body writes them on the host."""
    document = {"format": FORMAT, "digest": digest, "entries": entries}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def files_digest(digest: str, entries: Entries) -> str:
    """The sha256 of the manifest: what the hosts are given as `files_digest`."""
    return hashlib.sha256(manifest_body(digest, entries)).hexdigest()


def verified_files_digest(artifact: IO[bytes], digest: str) -> str:
    """The files digest of the artifact read from `artifact`, refused unless its bytes hash to `digest` (the ledger's)."""
    actual, entries = unpacked_entries(artifact, digest)
    if actual != digest:
        raise BadInput(f"artifact sha256 is {actual[:12]}, the ledger says {digest[:12]}; restore it from a trusted copy")
    return files_digest(digest, entries)
