#!/usr/bin/python
"""Verify a release artifact's sha256 on the host and unpack it safely and atomically.

Owns the host-side half of the artifact contract: nothing is unpacked before the digest matches,
no member may write outside the release, and `releases/<version>` appears all at once (or not at all).
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_unpack
short_description: Verify and unpack a relpromote release artifact atomically
description:
  - Computes the sha256 of the uploaded artifact on the host and refuses to go on (removing the
    upload) when it is not O(digest).
  - Reads the tar.gz member by member and refuses absolute paths, C(..) components, hard links,
    device files, FIFOs, members below a symbolic link, and symbolic links that resolve outside
    the release.
  - Extracts into a hidden sibling C(.<version>.partial), writes C(.release/DIGEST), then renames
    it to O(dest) in one C(rename(2)), so O(dest) is either complete or absent.
  - Writes, last, C(.release/FILES.json), the release's file manifest - every file's sha256, size and
    mode, every directory and link, as unpacked from the verified artifact (module_utils/release_integrity.py).
  - Idempotent, O(dest) whose C(.release/DIGEST) already holds O(digest) and whose files are what its
    manifest says is left alone. One that differs (a file edited, added, removed, its mode changed, the
    manifest missing) is refused naming what differs (RV(tampered)); given O(src), it is unpacked again
    from the verified artifact and exchanged for the tampered copy in one C(renameat2(RENAME_EXCHANGE))
    (RV(repaired)), so C(current) never points to a missing directory. Only files changed after the
    manifest was written (by their ctime) are hashed.
  - Uses only the Python standard library on the host.
  - With the role's action plugin of the same name, the task first looks at the host with one
    shell command (no Python) - whether O(dest) already holds O(digest), what O(link) points to,
    and the application directories (O(directories)), created or set to their modes when needed.
    Only when O(dest) is not there yet does it upload O(artifact) from the controller (never in
    check mode) to a private directory under the remote tmp directory (C(ansible_remote_tmp)),
    and run this module with the upload as O(src); the private directory is removed afterwards.
version_added: "1.0.0"
author: relpromote
options:
  src:
    description:
      - Path of the uploaded artifact (C(.tar.gz)) on the host.
      - Needed only when O(dest) does not hold O(digest) yet; the action plugin sets it to its upload.
    type: path
  artifact:
    description:
      - Path of the artifact on the controller, read by the action plugin, which uploads it only
        when O(dest) does not hold O(digest) yet. The module itself does not use it.
    type: path
  link:
    description:
      - The live release's link, for example C(/opt/app/current). When set, RV(previous) says which
        version it points to; it is only read.
    type: path
  directories:
    description:
      - Directories the action plugin makes sure of before anything is uploaded, each
        C({path, mode}) with an octal mode string; missing ones are created (with missing parents,
        0755), others get their mode set. In check mode nothing is created or changed. The module
        itself does not use it.
    type: list
    elements: dict
    default: []
  dest:
    description:
      - Directory the release ends up in, for example C(/opt/app/releases/1.4.0).
      - Its parent directory must exist.
    type: path
    required: true
  digest:
    description: Expected sha256 of O(src), 64 lowercase hexadecimal digits.
    type: str
    required: true
  version:
    description:
      - When set, the artifact's C(.release/VERSION) must hold this version.
    type: str
  executable:
    description:
      - A path inside the release that must be an executable file, for example C(bin/restart)
        (the program of the restart hook). Checked after unpacking, before the release appears;
        when it is not, nothing is unpacked and the result's C(executable_problem) says why
        (C(missing), C(notfile), C(noexec)).
      - With the action plugin, set from its O(hook) option when the hook's program lies inside
        a release that is not on the host yet.
    type: str
  leftovers:
    description:
      - The directory uploads are staged in (the remote tmp). The action plugin removes what earlier runs left
        there (C(ansible-tmp-*), an upload cut off by an unreachable host or a killed run) before anything else,
        never in check mode. The module itself does not use it.
    type: path
  hook:
    description:
      - The restart hook's command line, read by the action plugin, which fails the task before
        anything is uploaded when its program is missing or not executable on the host (or in the
        release). The module itself does not use it.
    type: str
  server:
    description:
      - An artifact server (any static web server) serving the store's layout, for example
        C(https://artifacts.example.org/shop); the artifact of O(digest) is C(<server>/sha256/<digest>.tar.gz).
      - Read by the action plugin, which then uploads nothing and gives the module O(url) instead.
        Empty, the action plugin uploads O(artifact) (push).
    type: str
  url:
    description:
      - Where the host downloads the artifact itself (its own Python, urllib) when O(dest) is not there yet or
        must be unpacked again and O(src) is not on the host. The download is read once, as a stream - hashed as it
        arrives and unpacked with the same member checks into the hidden C(.<version>.partial) sibling - and that
        folder becomes O(dest) only when the whole artifact was read and its sha256 is O(digest); one that differs is
        refused (RV(actual)) and what it unpacked removed, nothing switched. Nothing is written to O(leftovers).
    type: str
  url_timeout:
    description: Seconds the download may wait for the server at a time (connect, each read).
    type: int
    default: 60
  ca_file:
    description:
      - A PEM file on the host holding the certificate authorities an C(https://) O(url)'s certificate is checked
        against (the role's C(release_artifact_ca_file)). Unset, the host's system CA store.
    type: path
  files_digest:
    description:
      - The sha256 of the release's manifest as the controller computed it from the verified artifact (relpromote sets it
        from the signed build record). An O(dest) already on the host whose C(.release/FILES.json) is not that manifest was
        rewritten on the host (its files may have been edited with it), so it is refused as tampered and unpacked again from
        the artifact like any other, and RV(tampered) names the manifest and every file that differed from the artifact.
      - Given, every file of an existing O(dest) is hashed (the ctime shortcut trusts the manifest's time, which whoever
        can write the release can move); the action plugin then runs the module for a release that is not live yet.
      - Unset, the manifest on the host is trusted as it is.
    type: str
  remove_src:
    description: Remove O(src) once it is unpacked, or once it has been refused.
    type: bool
    default: true
notes:
  - Supports check mode, the artifact is verified and read but nothing is written. (With the
    action plugin nothing is uploaded in check mode, so the result says what would be unpacked.)
  - File modes are normalised to 0755 (any execute bit set) or 0644; directories to 0755; owners
    are whoever runs the module.
"""

EXAMPLES = r"""
- name: Upload release 1.4.0 unless it is on the host already, verify and unpack it
  release_unpack:
    artifact: /srv/artifacts/app-1.4.0.tar.gz
    dest: /opt/app/releases/1.4.0
    digest: 3f0c...e9
    version: 1.4.0
    link: /opt/app/current
    directories:
      - {path: /opt/app, mode: "0755"}
      - {path: /opt/app/releases, mode: "0755"}
      - {path: /opt/app/.incoming, mode: "0700"}
  vars:
    ansible_remote_tmp: /opt/app/.incoming

- name: Unpack an artifact that is on the host already
  release_unpack:
    src: /opt/app/.incoming/3f0c...e9.tar.gz
    dest: /opt/app/releases/1.4.0
    digest: 3f0c...e9
    version: 1.4.0
"""

RETURN = r"""
dest:
  description: The release directory.
  returned: always
  type: str
digest:
  description: The sha256 recorded in C(.release/DIGEST).
  returned: always
  type: str
members:
  description: Number of members unpacked (or that would be, in check mode).
  returned: when the artifact was read
  type: int
src_removed:
  description: Whether the upload was removed.
  returned: always
  type: bool
present:
  description: Whether O(dest) already held O(digest), so that nothing was uploaded or unpacked.
  returned: always
  type: bool
uploaded:
  description: Whether the action plugin uploaded the artifact.
  returned: always
  type: bool
previous:
  description: Version O(link) points to (the last component of its target), or an empty string.
  returned: when O(link) is set
  type: str
directories:
  description: Directories of O(directories) that were created or whose mode was set (or would be).
  returned: always
  type: list
  elements: str
leftovers_removed:
  description: Uploads of earlier runs removed from O(leftovers).
  returned: always, with the action plugin
  type: list
  elements: str
tampered:
  description: What differed between the release on the host and its manifest, one line per path, the path then what differs.
  returned: when O(dest) held O(digest) but its files differed from its manifest
  type: list
  elements: str
repaired:
  description: Whether a tampered O(dest) was unpacked again from the artifact.
  returned: when it was
  type: bool
needs_artifact:
  description: True when a tampered O(dest) was refused and O(src) is needed to unpack it again (the action plugin then uploads it).
  returned: when the module failed for that
  type: bool
downloaded:
  description: Whether the host downloaded the artifact from O(url).
  returned: when O(url) was given and the artifact was needed
  type: bool
actual:
  description: The sha256 of an artifact that was refused because it was not O(digest).
  returned: when the upload or download was refused for its digest
  type: str
hashed:
  description: How many files of an existing O(dest) were read to check them against its manifest.
  returned: when O(dest) was checked
  type: int
"""

# Imports follow the documentation, as in every Ansible module.
import ctypes  # noqa: E402
import errno  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import posixpath  # noqa: E402
import shutil  # noqa: E402
import tarfile  # noqa: E402

from ansible.module_utils import release_hostcall as hostcall  # noqa: E402
from ansible.module_utils.release_download import Download, shown  # noqa: E402
from ansible.module_utils.release_download import Refused as NotDownloaded  # noqa: E402
from ansible.module_utils.release_integrity import CHUNK, fsync_dir, live_version, manifest_digest, sha256_file, summary, write_manifest  # noqa: E402
from ansible.module_utils.release_integrity import REWRITTEN, differences  # noqa: E402
from ansible.module_utils.release_integrity import check as check_tree  # noqa: E402

DIGEST_MEMBER = ".release/DIGEST"
VERSION_MEMBER = ".release/VERSION"
AT_FDCWD = -100
RENAME_EXCHANGE = 2


class Refused(Exception):
    """The artifact is unsafe or inconsistent; the message says why."""


def read_digest(release_dir):
    try:
        with open(os.path.join(release_dir, DIGEST_MEMBER)) as handle:
            return handle.read().strip()
    except OSError:
        return None


def member_name(member):
    """The member's path relative to the release root, or '' for the root itself."""
    name = member.name
    if name.startswith("/"):
        raise Refused(f"member {name!r} has an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise Refused(f"member {name!r} has a '..' component")
    return "/".join(parts)


def check_link(name, target):
    if not target or target.startswith("/"):
        raise Refused(f"symbolic link {name!r} points to {target!r}, outside the release")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../"):
        raise Refused(f"symbolic link {name!r} points to {target!r}, outside the release")


def kind_of(member, name):
    if member.isfile():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        check_link(name, member.linkname)
        return "link"
    if member.islnk():
        raise Refused(f"member {name!r} is a hard link")
    if member.ischr() or member.isblk():
        raise Refused(f"member {name!r} is a device file")
    if member.isfifo():
        raise Refused(f"member {name!r} is a FIFO")
    raise Refused(f"member {name!r} has an unsupported type {member.type!r}")


def below_link(name, links):
    parent = posixpath.dirname(name)
    while parent:
        if parent in links:
            return parent
        parent = posixpath.dirname(parent)
    return None


def write_file(tar, member, path):
    """Write the member's data to `path`; its sha256 (computed on the way, for the release's manifest)."""
    source = tar.extractfile(member)
    if source is None:
        raise Refused(f"member {member.name!r} has no readable data")
    mode = 0o755 if member.mode & 0o111 else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, mode)
    digest = hashlib.sha256()
    with os.fdopen(descriptor, "wb") as target:
        for block in iter(lambda: source.read(CHUNK), b""):
            digest.update(block)
            target.write(block)
    os.chmod(path, mode)
    os.utime(path, (member.mtime, member.mtime))
    return digest.hexdigest()


def open_tar(src):
    """The tar.gz `src` read as a stream, front to back, once: a path, or a reader (a Download) that hashes what passes."""
    if hasattr(src, "read"):
        return tarfile.open(fileobj=src, mode="r|gz", bufsize=CHUNK)
    return tarfile.open(src, mode="r|gz", bufsize=CHUNK)


def unpack(src, root, version, write, hashes=None):
    """Check every member (and, when `write`, extract it under `root`, putting each file's sha256 in
    `hashes`); return the member count. `src` is the artifact's path, or a reader of it (open_tar)."""
    seen = {}
    links = {}
    count = 0
    with open_tar(src) as tar:
        for member in tar:
            name = member_name(member)
            if name == "":
                if not member.isdir():
                    raise Refused(f"the artifact's root entry {member.name!r} is not a directory")
                continue
            kind = kind_of(member, name)
            if name == DIGEST_MEMBER:
                raise Refused(f"member {name!r} is reserved for the host's record of the digest")
            if name in seen and not (kind == "dir" and seen[name] == "dir"):
                raise Refused(f"member {name!r} appears twice")
            seen[name] = kind
            parent_link = below_link(name, links)
            if parent_link is not None:
                raise Refused(f"member {name!r} lies below the symbolic link {parent_link!r}")
            if kind == "link":
                prefix = name + "/"
                if any(other.startswith(prefix) for other in seen):
                    raise Refused(f"symbolic link {name!r} replaces a directory of the release")
                links[name] = member.linkname
            count += 1
            if not write:
                continue
            path = os.path.join(root, name)
            if kind == "dir":
                make_folders(root, path)
                os.chmod(path, 0o755)
            elif kind == "file":
                make_folders(root, os.path.dirname(path))
                digest = write_file(tar, member, path)
                if hashes is not None:
                    hashes[name] = digest
    if version is not None and seen.get(VERSION_MEMBER) != "file":
        raise Refused(f"the artifact has no {VERSION_MEMBER}; it was not built by relpromote")
    if write:
        # Links last: no file was ever written through one, and each must still resolve inside.
        real_root = os.path.realpath(root)
        for name, target in sorted(links.items()):
            path = os.path.join(root, name)
            make_folders(root, os.path.dirname(path))
            os.symlink(target, path)
        for name in sorted(links):
            resolved = os.path.realpath(os.path.join(root, name))
            if resolved != real_root and not resolved.startswith(real_root + os.sep):
                raise Refused(f"symbolic link {name!r} resolves to {resolved}, outside the release")
    return count


def check_version(root, version):
    with open(os.path.join(root, VERSION_MEMBER)) as handle:
        found = handle.read().strip()
    if found != version:
        raise Refused(f"the artifact's {VERSION_MEMBER} says {found!r}, not {version!r}")


def executable_problem(root, relative):
    """None when `relative` is an executable file inside the unpacked release `root`, else missing, notfile or noexec."""
    if not relative:
        return None
    path = os.path.join(root, relative)
    if not os.path.exists(path):
        return "missing"
    if not os.path.isfile(path):
        return "notfile"
    return None if os.access(path, os.X_OK) else "noexec"


def make_folders(root, path):
    """Every missing folder from `root` down to `path`, each 0755 whatever the umask (os.makedirs gives its
    mode to the last one only)."""
    missing = []
    while path != root and not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for folder in reversed(missing):
        os.mkdir(folder)
        os.chmod(folder, 0o755)


def write_digest(root, digest):
    make_folders(root, os.path.join(root, ".release"))
    path = os.path.join(root, DIGEST_MEMBER)
    with open(path, "w") as handle:
        handle.write(digest + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, 0o644)


def replace(fresh, dest):
    """Put directory `fresh` where directory `dest` is and `dest` where `fresh` was: one renameat2(2)
    RENAME_EXCHANGE where the kernel has it (no moment without `dest`), else two renames."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        exchange = libc.renameat2
    except (OSError, AttributeError):
        exchange = None
    if exchange is not None:
        if exchange(AT_FDCWD, os.fsencode(fresh), AT_FDCWD, os.fsencode(dest), RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(code, os.strerror(code), dest)
    aside = fresh + ".old"
    os.rename(dest, aside)
    os.rename(fresh, dest)
    os.rename(aside, fresh)


def remove(path):
    try:
        os.unlink(path)
        return True
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise


# The options (DOCUMENTATION above). A literal: AnsibleModule gets it in main(), and the action plugin reads it from this
# file to check the module's arguments on the controller the same way before it runs unpack_host() with the host's Python.
ARGUMENT_SPEC = {
    "src": {"type": "path"},
    "dest": {"type": "path", "required": True},
    "digest": {"type": "str", "required": True},
    "version": {"type": "str"},
    "remove_src": {"type": "bool", "default": True},
    "artifact": {"type": "path"},
    "link": {"type": "path"},
    "directories": {"type": "list", "elements": "dict", "default": []},
    "executable": {"type": "str"},
    "hook": {"type": "str"},
    "leftovers": {"type": "path"},
    "server": {"type": "str"},
    "url": {"type": "str"},
    "url_timeout": {"type": "int", "default": 60},
    "ca_file": {"type": "path"},
    "files_digest": {"type": "str"},
}


def unpack_host(params, check_mode):
    """The whole work for checked parameters (the action plugin's entry): the result, `failed` when it failed."""
    return hostcall.run(work, params, check_mode)


def main():
    # Imported here: the action plugin runs this file's work without Ansible's module library (unpack_host).
    from ansible.module_utils.basic import AnsibleModule

    work(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True))


def work(module):
    streams = []
    try:
        _work(module, streams)
    finally:
        for stream in streams:  # the connection of a download, however the work ended (exit_json raises)
            stream.close()


def open_download(module, result, streams):
    """The artifact at the url option, being read (not in check mode), added to `streams`. A server that cannot be reached
    or does not serve it fails the module, nothing unpacked."""
    try:
        stream = Download(module.params["url"], module.params["url_timeout"], module.params["ca_file"])
    except NotDownloaded as exc:
        module.fail_json(msg=str(exc), downloaded=False, **dict(result, changed=False))
    streams.append(stream)
    result["downloaded"] = True
    return stream


def verify_stream(stream, digest):
    """Read the rest of a download and raise NotDownloaded when the whole is not the artifact of `digest`."""
    refused = stream.refusal(digest)
    if refused is not None:
        raise refused


def _work(module, streams):
    src = module.params["src"]
    # The artifact read from the server (url) as it is unpacked, when it is not on the host: hashed on the way, and
    # nothing it unpacked becomes dest before its sha256 is the digest (below).
    stream = None
    dest = module.params["dest"].rstrip("/")
    digest = module.params["digest"].strip().lower()
    version = module.params["version"]
    remove_src = module.params["remove_src"] and not module.check_mode
    result = dict(changed=False, dest=dest, digest=digest, src_removed=False, present=False, uploaded=False, directories=[])
    if module.params["link"]:
        link = module.params["link"]
        result["previous"] = live_version(link) or ""

    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        module.fail_json(msg=f"digest {digest!r} is not a sha256 (64 hexadecimal digits)", **result)

    present = read_digest(dest)
    tampered = None
    if os.path.isdir(dest) and not os.path.islink(dest) and digest in (present, manifest_digest(dest)):
        # The release is on the host: it must still be what was unpacked from the verified artifact.
        # Given the controller's manifest, every file is hashed: a file edited before the manifest was touched again (ctime
        # older than its mtime) would pass the ctime shortcut. The action plugin runs this only for a release not live.
        files_digest = module.params["files_digest"]
        problems, result["hashed"] = check_tree(dest, full=bool(files_digest), expected=files_digest)
        if present == digest and not problems:
            result["present"] = True
            if remove_src and src:
                result["src_removed"] = result["changed"] = remove(src)
            module.exit_json(**result)
        tampered = result["tampered"] = problems or [f"{DIGEST_MEMBER}: changed"]
        if (not src or not os.path.exists(src)) and module.params["url"] and not module.check_mode:
            stream = open_download(module, result, streams)
        if stream is None and (not src or not os.path.exists(src)):
            said = f"release {dest} differs from what was unpacked from its verified artifact: {summary(tampered)}"
            if module.check_mode:
                result["changed"] = True
                module.exit_json(msg=f"{said}; would unpack it again from the artifact", **result)
            module.fail_json(msg=f"{said}; refusing to use it (unpack it again from its artifact)", needs_artifact=True, **result)
    elif os.path.lexists(dest):
        module.fail_json(
            msg=(
                f"{dest} already exists holding digest {present or '(none: no .release/DIGEST)'}, not {digest}: "
                "a release's content never changes, so this is a different artifact under the same version; "
                "move it away by hand if it is not live"
            ),
            **result,
        )

    result["changed"] = True
    if stream is None and (not src or not os.path.exists(src)) and module.params["url"] and not module.check_mode:
        stream = open_download(module, result, streams)
    if stream is None and (not src or not os.path.exists(src)):
        if module.check_mode:
            how = "download" if module.params["url"] else "upload"
            module.exit_json(msg=f"would {how} and unpack {dest} (nothing is transferred in check mode)", **result)
        module.fail_json(msg=f"artifact {src or '(no src given)'} is not on the host", **result)

    # An upload is hashed whole before it is read as a tar; a download, as it is unpacked (verify_stream below).
    actual = digest if stream is not None else sha256_file(src)
    if actual != digest:
        result["changed"] = False
        if not module.check_mode:
            result["src_removed"] = result["changed"] = remove(src)
        module.fail_json(
            msg=(
                f"artifact {src} has sha256 {actual}, expected {digest}; refusing to unpack it "
                f"(the upload was {'removed' if result['src_removed'] else 'kept'})"
            ),
            expected=digest,
            actual=actual,
            **result,
        )
    if stream is not None:
        src, remove_src = None, False  # nothing of the download is on the host but what it unpacks

    parent = os.path.dirname(dest)
    partial = os.path.join(parent, f".{os.path.basename(dest)}.partial")
    try:
        if module.check_mode:
            result["members"] = unpack(src, partial, version, write=False)
            module.exit_json(**result)
        if os.path.lexists(partial):
            shutil.rmtree(partial)
        os.mkdir(partial, 0o755)
        os.chmod(partial, 0o755)
        hashes = {}
        try:
            result["members"] = unpack(stream or src, partial, version, write=True, hashes=hashes)
        except (Refused, tarfile.TarError, EOFError, OSError):
            if stream is not None:
                verify_stream(stream, digest)  # a download that is not the artifact is refused for that, first
            raise
        if stream is not None:
            verify_stream(stream, digest)  # before anything below looks at what it unpacked
        if version is not None:
            check_version(partial, version)
        problem = executable_problem(partial, module.params["executable"])
        if problem:
            shutil.rmtree(partial, ignore_errors=True)
            if remove_src:
                result["src_removed"] = remove(src)
            result["changed"] = result["src_removed"]
            said = {"missing": "is missing", "notfile": "is not a file", "noexec": "is not executable"}[problem]
            module.fail_json(msg=f"{module.params['executable']} {said} in release {version or dest}", executable_problem=problem, **result)
        write_digest(partial, digest)
        entries = write_manifest(partial, digest, hashes)
        if tampered == [REWRITTEN]:
            # The manifest on the host said nothing true: what differed is named against the artifact's own.
            tampered = result["tampered"] = [REWRITTEN] + differences(dest, entries)
        if tampered is None:
            os.rename(partial, dest)
        else:
            # The fresh copy takes the tampered one's place in one exchange (current may point to it).
            replace(partial, dest)
            shutil.rmtree(partial, ignore_errors=True)
            result["repaired"] = True
        fsync_dir(parent)
    except NotDownloaded as exc:
        # The download broke off or is not the artifact: what it unpacked goes, dest stays as it was.
        shutil.rmtree(partial, ignore_errors=True)
        extra = dict(expected=digest, actual=exc.actual) if exc.actual else {}
        module.fail_json(msg=str(exc), **dict(result, changed=False, downloaded=False, **extra))
    except (Refused, tarfile.TarError, EOFError, OSError) as exc:
        if not module.check_mode:
            shutil.rmtree(partial, ignore_errors=True)
            if remove_src:
                result["src_removed"] = remove(src)
        kind = "refusing to unpack it" if isinstance(exc, Refused) else "could not unpack it"
        named = shown(stream.url) if stream is not None else src
        module.fail_json(msg=f"artifact {named}: {exc}; {kind}", **result)

    if remove_src:
        result["src_removed"] = remove(src)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
