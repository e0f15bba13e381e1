"""Controller side of release_unpack: look at the host, upload the artifact only when needed, unpack.

A fresh deploy used to spend four tasks here (stat the link, stat the digest, create the
directories, copy the artifact, which itself runs two modules), each a worker process per host on
the controller and a Python start-up on the host. This plugin does the same in one task:

1. one shell command over the open connection (no Python on the host): what the live link points
   to, whether `dest` already holds the digest (or holds something else), and the application
   directories, created or set to their modes when needed (only reported in check mode);
2. only when the release is not on the host and not in check mode: the artifact is uploaded into a
   private directory under the remote tmp directory (`ansible_remote_tmp`), and the release_unpack
   module verifies its sha256 and unpacks it; the private directory is removed afterwards.

The module (library/release_unpack.py) documents the options; its rules are the only ones that
decide what gets unpacked.
"""

from __future__ import annotations

import shlex

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.action import ActionBase

MODULE = "ansible.legacy.release_unpack"


def _local(path):
    """A path `find` and `mkdir` take as an operand, never as an option."""
    return path if path.startswith("/") else "./" + path


def inspect_command(dest, link, directories, check_mode):
    """POSIX sh printing `link=`, `digest=`, `dest=` (yes/no) and one `directory=` line per directory
    created or set to its mode (would be, in check mode)."""
    quote = shlex.quote
    digest_file = f"{dest}/.release/DIGEST"
    lines = [
        "umask 022",
        f"d=; [ -f {quote(digest_file)} ] && d=$(cat -- {quote(digest_file)})",
        f"e=no; {{ [ -e {quote(dest)} ] || [ -h {quote(dest)} ]; }} && e=yes",
        f"l=; [ -n {quote(link)} ] && l=$(readlink -- {quote(link or '.')} 2>/dev/null)",
        'printf \'link=%s\\ndigest=%s\\ndest=%s\\n\' "$l" "$d" "$e"',
    ]
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
    found = {"link": "", "digest": "", "dest": "no", "directory": []}
    for line in stdout.splitlines():
        key, _, value = line.partition("=")
        if key == "directory":
            found["directory"].append(value)
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
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        for name in ("dest", "digest"):
            if not args.get(name):
                result.update(failed=True, msg=f"{name} is required")
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

        looked = self._low_level_execute_command(inspect_command(dest, link, directories, check_mode), sudoable=True)
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
        )
        if link:
            result["previous"] = version_of(found["link"])
        if result["present"]:
            return result

        module_args = {key: value for key, value in args.items() if key not in ("artifact", "directories", "src")}
        module_args["dest"] = dest
        try:
            if found["dest"] == "no" and not check_mode:
                module_args["src"] = self._upload(args.get("artifact"), digest)
                result.update(uploaded=True, changed=True)
            # An existing dest with another digest is refused by the module, uploaded or not.
            outcome = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)
        except AnsibleConnectionFailure:
            raise
        except AnsibleError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        for key in ("directories", "uploaded", "previous"):
            outcome.pop(key, None)
        result.update(outcome, changed=bool(outcome.get("changed") or result["changed"]))
        return result

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
