"""An unpacked release's file manifest, on the host (release_unpack, release_switch, release_rollback, release_verify).

Owns what "the release on this host is the release that was verified" means after the artifact itself
is gone: release_unpack writes `.release/FILES.json` from the verified artifact's members as it
unpacks them (each file's sha256, size and mode, each directory, each link's target); every later
step checks the tree against it before it puts the release live, and names what differs.

Fast by construction: the manifest is written last, its modification time after every other change
of the tree, so a file whose status change time (ctime, which no user can set back) is older than the
manifest cannot have been written since; only the others, and every file when `full`, are hashed.
A check of an untouched release is one lstat per entry.

The manifest's own bytes are canonical (manifest_body) and the controller computes them, and their sha256
(files_digest), from the verified artifact alone (relpromote/release_files.py, the same definition): given that
digest (`expected`), check() refuses a manifest rewritten on the host, whatever tree it describes.

Shipped with every module that imports it (Ansible's module_utils); roles/release_rollback holds a
link to this file, so it is written once. Python standard library only.
"""

import hashlib
import json
import os
import posixpath
import stat
import time

MANIFEST = ".release/FILES.json"
FORMAT = 1
CHUNK = 1 << 20
# How many differing paths a one-line message names; the result's data names them all.
NAMED = 8
# check()'s problem when the manifest is not the one the controller computed from the verified artifact.
REWRITTEN = "%s: differs from the artifact's file list (rewritten on the host)" % MANIFEST


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path):
    """Make a rename or unlink in the folder `path` durable (the steps that switch, unpack and roll back share it)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def version_of(link_target):
    """The release a `current` link's target names (releases/1.2.0 -> 1.2.0); "" for none."""
    return posixpath.basename(posixpath.normpath(link_target)) if link_target else ""


def live_version(link):
    """The release the link `link` points to, or None when there is no link."""
    return version_of(os.readlink(link)) if os.path.islink(link) else None


def _walk(root):
    """(relative path, lstat) of every entry below `root`, the manifest itself excluded; links are not followed."""
    found = []
    stack = [""]
    while stack:
        relative = stack.pop()
        directory = os.path.join(root, relative) if relative else root
        for entry in os.scandir(directory):
            path = entry.name if not relative else relative + "/" + entry.name
            if path == MANIFEST:
                continue
            info = entry.stat(follow_symlinks=False)
            found.append((path, info))
            if stat.S_ISDIR(info.st_mode):
                stack.append(path)
    return found


def describe(root, known=None):
    """{path: entry} of the tree under `root` as the manifest records it. `known` maps paths of regular
    files to the sha256 computed while they were written, so that they are not read back."""
    entries = {}
    for path, info in _walk(root):
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISREG(info.st_mode):
            digest = (known or {}).get(path) or sha256_file(os.path.join(root, path))
            entries[path] = ["file", mode, info.st_size, digest]
        elif stat.S_ISDIR(info.st_mode):
            entries[path] = ["dir", mode]
        elif stat.S_ISLNK(info.st_mode):
            entries[path] = ["link", os.readlink(os.path.join(root, path))]
        else:
            entries[path] = ["other", mode]
    return entries


def manifest_body(digest, entries):
    """The manifest's bytes for the artifact `digest` and its `entries`: canonical JSON (keys sorted, no spaces, ASCII),
    so that the controller, which knows both from the verified artifact, can compute them too."""
    document = {"format": FORMAT, "digest": digest, "entries": entries}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def files_digest(digest, entries):
    """The sha256 of the manifest's canonical bytes: what the controller passes as `files_digest`."""
    return hashlib.sha256(manifest_body(digest, entries)).hexdigest()


def write_manifest(root, digest, known=None):
    """Record the tree under `root` (just unpacked from the artifact `digest`) in its manifest.

    Written last, and its modification time made later than the status change time of every entry
    (the clock's tick is coarse), so that check() can tell an untouched file by its ctime alone.
    """
    entries = describe(root, known)
    path = os.path.join(root, MANIFEST)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    newest = max([os.lstat(root).st_ctime_ns] + [os.lstat(os.path.join(root, name)).st_ctime_ns for name in entries])
    body = manifest_body(digest, entries)
    for _ in range(200):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            os.fchmod(descriptor, 0o644)  # before the data: the write is the last change the manifest sees
            os.write(descriptor, body)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if os.lstat(path).st_mtime_ns > newest:
            return entries
        time.sleep(0.002)
    return entries


def read_manifest(root):
    """(entries, mtime_ns) of the release's manifest, or (None, None) when it has none or it is unreadable."""
    path = os.path.join(root, MANIFEST)
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            return None, None
        with open(path) as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return None, None
    if not isinstance(document, dict) or document.get("format") != FORMAT or not isinstance(document.get("entries"), dict):
        return None, None
    return document["entries"], info.st_mtime_ns


def manifest_digest(root):
    """The artifact digest the manifest says the tree was unpacked from, or None."""
    try:
        with open(os.path.join(root, MANIFEST)) as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return None
    return document.get("digest") if isinstance(document, dict) else None


def check(root, full=False, expected=None):
    """What differs between the tree under `root` and its manifest: a sorted list of `path: what`
    (empty when the tree is intact). A release without a readable manifest gives one problem naming it.

    Files whose ctime is older than the manifest are taken as written at unpack, unless `full`:
    then every file is hashed. Returns (problems, hashed): hashed is how many files were read.
    `expected`, when given, is the controller's files_digest of the release (computed from the verified artifact): a
    manifest whose canonical form has another sha256 was rewritten on the host, and is named as a problem.
    """
    entries, written = read_manifest(root)
    if entries is None:
        return ["%s: missing or unreadable, the release cannot be checked" % MANIFEST], 0
    if expected and files_digest(manifest_digest(root), entries) != expected:
        # Nothing it says can be trusted: compared with what the artifact holds only once that is unpacked (differences).
        return [REWRITTEN], 0
    return _compare(root, entries, written, full)


def differences(root, entries):
    """What differs between the tree under `root` and `entries` (a manifest known to be right, e.g. just written from
    the verified artifact), every file hashed: the same sorted `path: what` lines as check()."""
    return _compare(root, entries, None, True)[0]


def _compare(root, entries, written, full):
    problems = []
    hashed = 0
    seen = set()
    for path, info in _walk(root):
        seen.add(path)
        expected = entries.get(path)
        if expected is None:
            problems.append("%s: added" % path)
            continue
        kind = expected[0]
        if kind == "file":
            if not stat.S_ISREG(info.st_mode):
                problems.append("%s: no longer a file" % path)
            elif stat.S_IMODE(info.st_mode) != expected[1]:
                problems.append("%s: mode %04o, not %04o" % (path, stat.S_IMODE(info.st_mode), expected[1]))
            elif info.st_size != expected[2]:
                problems.append("%s: changed (size %d, not %d)" % (path, info.st_size, expected[2]))
            elif full or info.st_ctime_ns >= written:
                hashed += 1
                if sha256_file(os.path.join(root, path)) != expected[3]:
                    problems.append("%s: changed (content)" % path)
        elif kind == "dir":
            if not stat.S_ISDIR(info.st_mode):
                problems.append("%s: no longer a directory" % path)
            elif stat.S_IMODE(info.st_mode) != expected[1]:
                problems.append("%s: mode %04o, not %04o" % (path, stat.S_IMODE(info.st_mode), expected[1]))
        elif kind == "link":
            if not stat.S_ISLNK(info.st_mode):
                problems.append("%s: no longer a symbolic link" % path)
            elif os.readlink(os.path.join(root, path)) != expected[1]:
                problems.append("%s: points elsewhere" % path)
        else:
            problems.append("%s: unexpected kind %s" % (path, kind))
    for path in entries:
        if path not in seen:
            problems.append("%s: removed" % path)
    return sorted(problems), hashed


def summary(problems):
    """One line naming the first differences: 'app.py: changed (content), x: added and 3 more'."""
    named = ", ".join(problems[:NAMED])
    more = len(problems) - NAMED
    return named + (" and %d more" % more if more > 0 else "")


def tampered_paths(problems):
    return [problem.split(": ", 1)[0] for problem in problems]
