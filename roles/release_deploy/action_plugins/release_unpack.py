"""Controller side of release_unpack: look at the host, upload the artifact only when needed, unpack.

A fresh deploy used to spend four tasks here (stat the link, stat the digest, create the
directories, copy the artifact, which itself runs two modules), each a worker process per host on
the controller and a Python start-up on the host. This plugin does the same in one task:

1. one shell command over the open connection (no Python on the host): what the live link points
   to, whether `dest` already holds the digest (or holds something else), whether the restart
   hook's program (`hook`) is there and executable, and the application directories, created or
   set to their modes when needed (only reported in check mode);
2. a hook that cannot run fails the host here, before anything is uploaded or switched; when its
   program lies inside a release not yet on the host, the module checks it after unpacking and
   before the release appears (in check mode, this plugin reads the artifact on the controller);
3. only when the release is not on the host and not in check mode: the artifact is uploaded into a
   private directory under the remote tmp directory (`ansible_remote_tmp`), and the release_unpack
   module verifies its sha256 and unpacks it; the private directory is removed afterwards.
   With `server` (an artifact server, pull), nothing is uploaded: the module downloads
   `<server>/sha256/<digest>.tar.gz` with the host's Python into the staging directory (`leftovers`),
   checks its sha256 as it arrives and unpacks it only when it is the digest.

The module (library/release_unpack.py) documents the options; its rules are the only ones that
decide what gets unpacked.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import tarfile

import importlib.util
import os

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.action import ActionBase

MODULE = "ansible.legacy.release_unpack"
# What the module's work imports, each after those it imports; then the module file itself (unpack_host()).
UTILS = ("release_integrity", "release_hostcall", "release_download")


def _helper(name="_host_python.py"):
    path = os.path.normpath(os.path.join(os.path.dirname(os.path.realpath(__file__)), name))
    spec = importlib.util.spec_from_file_location("relpromote_" + os.path.basename(name)[:-3].lstrip("_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOST = _helper()
DOWNLOAD = _helper("../module_utils/release_download.py")
# What a version and a digest may be: a version names a directory under releases/, so nothing else gets near the host.
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
DIGEST = re.compile(r"^[0-9a-f]{64}$")
# The release's file manifest (module_utils/release_integrity.py), written at unpack.
MANIFEST = ".release/FILES.json"


def _local(path):
    """A path `find` and `mkdir` take as an operand, never as an option."""
    return path if path.startswith("/") else "./" + path


def hook_program(command, link):
    """(where, program) of the restart hook's argv[0]: `release` and a path inside the release (under
    `link`, or relative: the hook runs in the release directory), `host` and an absolute path, or
    `path` and a name looked up on PATH. Mirrors module_utils/release_hook.py's program_path."""
    program = shlex.split(command)[0]
    if link and program.startswith(link + "/"):
        return "release", posixpath.normpath(program[len(link) + 1 :])
    if "/" not in program:
        return "path", program
    if not program.startswith("/"):
        return "release", posixpath.normpath(program)
    return "host", program


def hook_test(where, program, dest):
    """POSIX sh printing `hook=ok|missing|notfile|noexec` for the hook's program."""
    quote = shlex.quote
    if where == "path":
        return f"h=missing; command -v {quote(program)} >/dev/null 2>&1 && h=ok; echo hook=$h"
    path = quote(f"{dest}/{program}" if where == "release" else program)
    return (
        f"if [ -f {path} ]; then if [ -x {path} ]; then h=ok; else h=noexec; fi; "
        f"elif [ -e {path} ]; then h=notfile; else h=missing; fi; echo hook=$h"
    )


def artifact_hook_status(artifact, program):
    """What the artifact holds at `program` (a path inside the release): ok, missing, notfile or noexec."""
    with tarfile.open(artifact, "r:*") as tar:
        members = {posixpath.normpath(member.name.lstrip("/")): member for member in tar}
    name = program
    for _ in range(16):  # links inside the release, followed a few times
        member = members.get(name)
        if member is None:
            return "missing"
        if not member.issym():
            break
        name = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
    else:
        return "missing"
    if not member.isfile():
        return "notfile"
    return "ok" if member.mode & 0o111 else "noexec"


PROBLEMS = {"missing": "is missing", "notfile": "is not a file", "noexec": "is not executable"}


def hook_failure(command, where, program, dest, version, status):
    """The task's failure for a hook that cannot run: one line, and the same as data."""
    if where == "path":
        problem = f"{program} is not found on the PATH"
    elif where == "release":
        problem = f"{program} {PROBLEMS.get(status, status)} in release {version or posixpath.basename(dest)} ({dest}/{program})"
    else:
        problem = f"{program} {PROBLEMS.get(status, status)}"
    return {
        "failed": True,
        "msg": f"the restart hook {json.dumps(command)} cannot run: {problem}",
        "error": {"step": "hook", "command": command, "rc": None, "output": [], "problem": problem},
    }


def inspect_command(dest, link, directories, check_mode, hook=None, leftovers=None, files_digest=None):
    """POSIX sh printing `link=`, `digest=`, `dest=` (yes/no), `hook=` when `hook` (a test from
    hook_test) is given, and one `directory=` line per directory created or set to its mode (would
    be, in check mode). With `files_digest`, a manifest whose sha256 is another makes the release suspect."""
    quote = shlex.quote
    digest_file = f"{dest}/.release/DIGEST"
    manifest = f"{dest}/{MANIFEST}"
    lines = [
        "umask 022",
        f"d=; [ -f {quote(digest_file)} ] && d=$(cat -- {quote(digest_file)})",
        f"e=no; {{ [ -e {quote(dest)} ] || [ -h {quote(dest)} ]; }} && e=yes",
        f"l=; [ -n {quote(link)} ] && l=$(readlink -- {quote(link or '.')} 2>/dev/null)",
        # suspect=yes when the tree may differ from its manifest: no manifest, or an entry changed after it was
        # written (ctime, which nobody sets back; the root: mtime, as renaming the release changes its ctime).
        # Only then does the module hash anything.
        f"s=no; if [ -d {quote(dest)} ] && [ ! -h {quote(dest)} ]; then if [ -f {quote(manifest)} ]; then "
        f"[ -n \"$({{ find {quote(_local(dest))} -maxdepth 0 -newer {quote(manifest)} -print; "
        f"find {quote(_local(dest))} -mindepth 1 -path {quote(_local(manifest))} -prune -o -cnewer {quote(manifest)} -print; }} 2>&1 | head -n 1)\" ] && s=yes; "
        "else s=yes; fi; fi",
    ]
    if files_digest:
        # The manifest the controller computed from the verified artifact: one rewritten on the host is the module's to judge.
        lines.append(
            f"if [ -d {quote(dest)} ] && [ ! -h {quote(dest)} ] && {{ [ -h {quote(manifest)} ] || "
            f"[ \"$(sha256sum < {quote(manifest)} 2>/dev/null | cut -c1-64)\" != {quote(files_digest)} ]; }}; then s=yes; fi"
        )
    lines += [
        'printf \'link=%s\\ndigest=%s\\ndest=%s\\nsuspect=%s\\n\' "$l" "$d" "$e" "$s"',
    ]
    if hook:
        lines.append(hook)
    if leftovers and not check_mode:
        # Uploads of an earlier run that never finished (its host became unreachable, it was killed): only one run at
        # a time changes a host, and this run has uploaded nothing yet, so whatever is there is left over.
        lines.append(
            f"for u in {quote(_local(leftovers))}/ansible-tmp-*; do [ -e \"$u\" ] || continue; "
            'rm -rf -- "$u" && echo "leftover=$u"; done'
        )
    for path, mode in directories:
        operand = quote(_local(path))
        # In check mode, only say what would be done.
        fix = f"echo directory={quote(path)}"
        if not check_mode:
            fix = f"{{ mkdir -p {operand} && chmod {mode} {operand} && {fix}; }}"
        lines.append(
            f"if [ -d {operand} ]; then [ -n \"$(find -H {operand} -prune -perm {mode})\" ] || {fix}; "
            f"elif [ -e {operand} ] || [ -h {operand} ]; then echo {quote(path)} exists and is not a directory >&2; exit 3; "
            f"else {fix}; fi || exit 4"
        )
    return "\n".join(lines)


def octal(mode):
    """'0755', '755' or 0o755 as the octal string chmod and find take."""
    return f"{mode if isinstance(mode, int) else int(str(mode), 8):04o}"


def parse(stdout):
    found = {"link": "", "digest": "", "dest": "no", "suspect": "no", "hook": "", "directory": [], "leftover": []}
    for line in stdout.splitlines():
        key, _, value = line.partition("=")
        if key in ("directory", "leftover"):
            found[key].append(value)
        elif key in found:
            found[key] = value.strip() if key == "digest" else value
    return found


def version_of(target):
    return target.rstrip("/").rsplit("/", 1)[-1] if target else ""


class ActionModule(ActionBase):
    # The private upload directory is made only when the release is not on the host yet.
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = self._run(tmp, task_vars)
        if result.get("failed") and "previous" in result:
            # A host whose unpack failed says what it runs with the failed result itself (relpromote reads it from the
            # task's event; Ansible keeps the stats of successful results only): not switched, on the release its link
            # names. Not when the link was never read: nothing is claimed that is not known.
            result["ansible_stats"] = {"data": {"release_deploy": {
                "previous": result["previous"], "current": result["previous"], "switched": False,
                "tampered": list(result.get("tampered") or []),
            }}, "per_host": True, "aggregate": False}
        return result

    def _run(self, tmp, task_vars):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        for name in ("dest", "digest"):
            if not args.get(name):
                result.update(failed=True, msg=f"{name} is required")
                return result
        version = str(args.get("version") or "")
        if version and not VERSION.match(version) or not DIGEST.match(str(args["digest"]).strip()):
            result.update(failed=True, msg=(
                f"version must be a plain version name (letters, digits, '.', '_', '+', '-'; got {json.dumps(version)}) and "
                f"digest a sha256 in lowercase hex (got {json.dumps(str(args['digest']))})"))
            return result
        dest = self._expand(str(args["dest"]).rstrip("/"))
        digest = str(args["digest"]).strip().lower()
        link = self._expand(str(args["link"])) if args.get("link") else ""
        try:
            directories = [(self._expand(str(item["path"])), octal(item["mode"])) for item in args.get("directories") or []]
        except (KeyError, TypeError, ValueError):
            result.update(failed=True, msg="directories must be a list of {path, mode} with an octal mode")
            return result
        check_mode = bool(self._task.check_mode)
        hook = str(args.get("hook") or "").strip()
        where = program = None
        if hook:
            try:
                where, program = hook_program(hook, link)
            except (ValueError, IndexError) as exc:
                result.update(failed=True, msg=f"the restart hook {json.dumps(hook)} cannot be split into arguments: {exc or 'empty'}")
                return result

        test = hook_test(where, program, dest) if hook else None
        leftovers = self._expand(str(args["leftovers"])) if args.get("leftovers") else None
        files_digest = str(args.get("files_digest") or "").strip() or None
        looked = self._low_level_execute_command(
            inspect_command(dest, link, directories, check_mode, test, leftovers, files_digest), sudoable=True)
        if looked["rc"] != 0:
            detail = (looked.get("stderr") or looked.get("stdout") or "").strip()[-500:]
            result.update(failed=True, msg=f"could not look at {dest} or create the application directories: {detail}")
            return result
        found = parse(looked.get("stdout", ""))
        result.update(
            changed=bool(found["directory"]),
            dest=dest,
            digest=digest,
            present=found["digest"] == digest,
            uploaded=False,
            src_removed=False,
            directories=found["directory"],
            leftovers_removed=found["leftover"],
        )
        if link:
            result["previous"] = version_of(found["link"])
        if hook and where != "release" and found["hook"] != "ok":
            result.update(hook_failure(hook, where, program, dest, version, found["hook"] or "missing"))
            return result
        # A release on the host whose hook is missing or not executable differs from what was unpacked (the artifact's
        # hook was checked at unpack): the module checks its files against the manifest and unpacks it again from the
        # artifact; a hook the artifact itself lacks is named after that (executable_problem).
        hook_lost = bool(hook) and where == "release" and result["present"] and found["hook"] != "ok"
        # Given the controller's manifest (files_digest), a release that is not live yet is checked by the module, every file
        # hashed, before it goes live: the look's ctime shortcut trusts the manifest's time, which an insider can move.
        unchecked = bool(files_digest) and version_of(found["link"]) != posixpath.basename(dest)
        if result["present"] and found["suspect"] != "yes" and not hook_lost and not unchecked:
            return result

        module_args = {key: value for key, value in args.items() if key not in ("artifact", "directories", "src", "hook", "leftovers", "server")}
        module_args["dest"] = dest
        server = str(args.get("server") or "").strip()
        if server:
            # Pull: the module downloads the artifact itself when it needs it (not on the host, or to unpack it again).
            module_args.update(url=DOWNLOAD.artifact_url(server, digest), leftovers=leftovers or posixpath.dirname(dest))
        if hook and where == "release":
            if check_mode:
                # Nothing is uploaded in check mode: the artifact on the controller tells.
                try:
                    status = artifact_hook_status(self._find_needle("files", args.get("artifact")), program)
                except (AnsibleError, OSError, TypeError, tarfile.TarError, EOFError) as exc:
                    result.update(failed=True, msg=f"could not read artifact {args.get('artifact')} to look for the restart hook: {exc}")
                    return result
                if status != "ok":
                    result.update(hook_failure(hook, where, program, dest, version, status))
                    return result
            else:
                module_args["executable"] = program
        try:
            if found["dest"] == "no" and not check_mode and not server:
                module_args["src"] = self._upload(args.get("artifact"), digest)
                result.update(uploaded=True, changed=True)
            # An existing dest with another digest is refused by the module, uploaded or not. An existing
            # release is checked against its manifest; one that differs is unpacked again from the artifact.
            outcome = self._unpack(module_args, task_vars)
            if outcome.get("needs_artifact") and not check_mode and args.get("artifact") and not server:
                tampered = outcome.get("tampered")
                module_args["src"] = self._upload(args.get("artifact"), digest)
                result.update(uploaded=True, changed=True)
                outcome = self._unpack(module_args, task_vars)
                outcome.setdefault("tampered", tampered)
        except AnsibleConnectionFailure:
            raise
        except AnsibleError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        for key in ("directories", "uploaded", "previous", "needs_artifact", "leftovers_removed"):
            outcome.pop(key, None)
        status = outcome.pop("executable_problem", None)
        result.update(outcome, changed=bool(outcome.get("changed") or result["changed"]))
        if status:
            result.update(hook_failure(hook, where, program, dest, version, status))
        return result

    def _unpack(self, module_args, task_vars):
        """The module's result for `module_args`: its work run with the host's Python directly (_host_python.py: no
        module wrapper to unpack and compile on the host), or the module itself without pipelining."""
        done = None
        if self._connection.is_pipelining_enabled():
            utils = HOST.utils_dir(os.path.realpath(__file__))
            shipped = HOST.read_sources(utils, UTILS)
            with open(os.path.join(os.path.dirname(utils), "library", "release_unpack.py"), encoding="utf-8") as handle:
                shipped.append(("release_unpack", handle.read()))
            try:
                params = HOST.checked(HOST.argument_spec(shipped[-1][1]), module_args)
            except ValueError as exc:
                return {"failed": True, "msg": "release_unpack: %s" % exc}
            done = HOST.run_on_host(self, HOST.program(shipped, "release_unpack", "unpack_host", params, self._task.check_mode), task_vars)
        return done if done is not None else self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)

    def _expand(self, path):
        return self._remote_expand_user(path, sudoable=True) if path.startswith("~") else path

    def _upload(self, artifact, digest):
        """Put the artifact in a private directory under the remote tmp; return its path on the host."""
        if not artifact:
            raise AnsibleError("the release is not on the host and no artifact was given to upload")
        try:
            source = self._find_needle("files", artifact)
        except AnsibleError as exc:
            raise AnsibleError(f"artifact {artifact} is not on the controller, or cannot be read there") from exc
        tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
        remote = self._connection._shell.join_path(tmpdir, f"{digest}.tar.gz")
        self._transfer_file(source, remote)
        if self._is_become_unprivileged():
            self._fixup_perms2((tmpdir, remote))
        return remote
