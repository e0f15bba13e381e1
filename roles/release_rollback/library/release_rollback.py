#!/usr/bin/python
"""Put a host back on a release it still holds, in one execution.

Owns the fast path of a rollback: taking the host's lease, reading the `current` link, checking the
target's recorded digest and its files, switching the link with rename(2), recording the switch in
`.history`, restarting the application, waiting until it answers the target version, keeping the
ledger's witness and giving the lease back. Doing all of it in one execution is what makes a rollback
one round trip per host. Also owns taking a host out of service when there is no earlier release to
go back to. Its action plugin runs rollback_host() with the host's Python directly (no module
wrapper); main() is the same work as a module.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_rollback
short_description: Switch a relpromote host back to a release it still holds, restart and verify
description:
  - Reads where C(<base_dir>/current) points. When it already points to C(releases/<version>) and
    the application answers O(version) on its health endpoint, changes nothing.
  - When C(<base_dir>/releases/<version>/.release/DIGEST) holds O(digest), replaces C(current) by
    a link to C(releases/<version>) with one C(rename) system call (never missing in between), appends
    O(version) to C(<base_dir>/.history), runs the restart command and polls the health endpoint
    until it answers 200 with a JSON C(version) equal to O(version), or fails after
    O(health_timeout) seconds saying what answered last.
  - When C(current) already points to the target but the application does not answer it, restarts
    and polls without switching.
  - When C(releases/<version>) is not on the host (pruned), or its files differ from its manifest
    (C(.release/FILES.json), written by release_unpack from the verified artifact), changes nothing and
    returns RV(present=false) (and RV(tampered), naming what differs), so that the caller can redeploy
    it from its artifact.
  - Refuses a C(releases/<version>) whose recorded digest is not O(digest) - a different build
    under the same version.
  - With an empty O(version), takes the host out of service - removes C(current) (one C(unlink)
    system call) and stops the application whose pid is in C(<base_dir>/run/app.pid), only if
    that process's command line names O(base_dir).
  - Uses only the Python standard library on the host.
version_added: "1.0.0"
author: relpromote
options:
  base_dir:
    description: The application's base directory, holding C(releases/), C(current), C(run/) and C(.history).
    type: path
    required: true
  version:
    description:
      - The release to put back live, or the empty string to take the host out of service.
    type: str
    required: true
  digest:
    description: sha256 recorded for the target, 64 lowercase hexadecimal digits; required unless O(version) is empty.
    type: str
    default: ""
  service_host:
    description: Address the application listens on, as seen from the host.
    type: str
    required: true
  service_port:
    description: Port the application listens on.
    type: int
    required: true
  restart_command:
    description:
      - Command that restarts the application, split like a shell would but run without one.
      - Empty means C(<base_dir>/current/bin/restart).
      - Runs in the release directory, stdin from C(/dev/null), with C(RELEASE_BASE_DIR),
        C(RELEASE_DIR), C(RELEASE_VERSION), C(RELEASE_PREVIOUS_VERSION) (what C(current) pointed
        to before), C(RELEASE_ACTION) (C(rollback)), C(RELEASE_HEALTH_URL), C(APP_HOST) and
        C(APP_PORT) in its environment, as release_deploy's.
      - Checked before the link is switched; when its program is missing or not executable,
        nothing changes and the module fails saying so (RV(error)).
    type: str
    default: ""
  health_path:
    description: Path of the health endpoint.
    type: str
    default: /health
  health_timeout:
    description:
      - Seconds to wait for the health endpoint to answer O(version) after the restart.
      - When taking the host out of service, seconds the application is given to stop before it is killed.
    type: int
    default: 30
  lease:
    description:
      - The host's lease for this run (module_utils/release_lease.py, the file release_lock owns,
        C(<base_dir>/.relpromote-lock.json)), taken before anything is read or changed and given back
        once this host is done, in this same execution - C(run) (the run, as release_lock's O(run)), C(ttl),
        C(wait), C(breakable), and C(keep) (true - the caller gives it back itself, e.g. after its
        automated tests). While another run holds it, nothing changes and the module fails with RV(busy)
        naming that run (RV(holder)). When the target must be redeployed (RV(present=false)) the lease
        stays held for the redeploy (RV(token)).
      - Empty (the default) - no lease is taken. Never taken in check mode.
    type: dict
    default: {}
  witness:
    description:
      - The ledger head this run started from, kept in C(<base_dir>/.relpromote-witness.json) once this
        host runs the target (module_utils/release_witness.py). Empty - nothing is written. Never in check mode.
    type: dict
    default: {}
  files_digest:
    description:
      - The sha256 of the target's manifest (C(.release/FILES.json)) as the controller computed it from the verified
        artifact. A target whose manifest is another one (rewritten on the host) is treated as tampered - RV(present)
        false, nothing changed - and redeployed from its artifact. Given, every file of the target is hashed. Unset, the
        manifest on the host is trusted as it is.
    type: str
notes:
  - Supports check mode - reports what would be switched, restarted or stopped; it may ask the
    health endpoint which version answers, which changes nothing.
"""

EXAMPLES = r"""
- name: Put 1.3.0 back live
  release_rollback:
    base_dir: /opt/app
    version: 1.3.0
    digest: 5d41402abc4b2a76b9719d911017c592ae1bf5e3a6e8a5d1a7c5d2a9f0b1c2d3
    service_host: 10.0.0.5
    service_port: 8080
  register: rollback

- name: Take a host whose first deployment failed out of service
  release_rollback:
    base_dir: /opt/app
    version: ""
    service_host: 10.0.0.5
    service_port: 8080
"""

RETURN = r"""
previous:
  description: Version C(current) pointed to before, or an empty string when there was no link.
  returned: always
  type: str
current:
  description:
    - Version C(current) points to now (in check mode, would point to); an empty string when the
      host is out of service.
    - Equals RV(previous) when RV(present) is false.
  returned: always
  type: str
switched:
  description: Whether C(current) was (or, in check mode, would be) replaced or removed.
  returned: always
  type: bool
present:
  description:
    - Whether the target release is on the host. False means nothing was changed and the target
      must be redeployed from its artifact. Always true when taking the host out of service.
  returned: always
  type: bool
tampered:
  description: What differs between the target's files and its manifest (one line per path, the path then what differs); the target must be unpacked again.
  returned: when the target differs from its manifest
  type: list
  elements: str
restarted:
  description: Whether the restart command ran (or would run, in check mode).
  returned: always
  type: bool
stopped:
  description: Whether the application was (or would be) stopped to take the host out of service.
  returned: always
  type: bool
restart_output:
  description: The last lines the restart hook printed (stdout and stderr together).
  returned: when the hook ran and succeeded
  type: list
  elements: str
token:
  description: The token of the lease this run holds (or held) on the host; empty without O(lease).
  returned: always
  type: str
busy:
  description: True when another run holds the host's lease (nothing was changed).
  returned: always
  type: bool
holder:
  description: The lease of the run that holds the host, when RV(busy).
  returned: when busy
  type: dict
lease_released:
  description: Whether this run's lease was given back at the end of this execution.
  returned: always
  type: bool
error:
  description:
    - Why the restart hook failed, C({step, command, rc, output, problem}) - C(step) C(hook) (it
      cannot run, nothing was switched) or C(restart) (it exited with C(rc)); C(output) holds the
      last lines it printed.
  returned: when the restart hook could not run or failed
  type: dict
"""

import contextlib
import json
import os
import posixpath
import re
import signal
import time
import uuid

from ansible.module_utils import release_hostcall as hostcall
from ansible.module_utils.release_health import PROBE_TIMEOUT, health_url, wait_until
from ansible.module_utils.release_health import ask as probe
from ansible.module_utils.release_hook import HookError, environment, hook_command
from ansible.module_utils.release_hook import check as check_hook
from ansible.module_utils.release_hook import run as run_hook
from ansible.module_utils.release_integrity import check as check_tree
from ansible.module_utils.release_integrity import fsync_dir, manifest_digest, summary, version_of
from ansible.module_utils.release_lease import Busy, hold, lease_path
from ansible.module_utils.release_lease import release as release_lease
from ansible.module_utils.release_witness import write_witness

# The options (DOCUMENTATION above). A literal: AnsibleModule gets it in main(), and the action plugin reads it from this
# file to check a task's arguments on the controller the same way before it runs rollback_host() with the host's Python.
ARGUMENT_SPEC = {
    "base_dir": {"type": "path", "required": True},
    "version": {"type": "str", "required": True},
    "digest": {"type": "str", "default": ""},
    "service_host": {"type": "str", "required": True},
    "service_port": {"type": "int", "required": True},
    "restart_command": {"type": "str", "default": ""},
    "health_path": {"type": "str", "default": "/health"},
    "health_timeout": {"type": "int", "default": 30},
    "lease": {"type": "dict", "default": {}},
    "witness": {"type": "dict", "default": {}},
    "files_digest": {"type": "str"},
}
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
DIGEST_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# How long a process that ignored SIGTERM (and then got SIGKILL) may take to disappear, and how often to look.
KILL_GRACE = 5.0
POLL_INTERVAL = 0.1


class RollbackFailed(Exception):
    """The rollback could not be completed; the message says why and what state the host is in."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details


def read_link(module, link):
    """Where `current` points, or None when there is no link."""
    if os.path.islink(link):
        return os.readlink(link)
    if os.path.lexists(link):
        module.fail_json(msg="%s exists and is not a symbolic link; move it away by hand" % link)
    return None


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def switch_link(base_dir, link, version):
    """Point `current` at releases/<version>: a new link renamed over the old one, never a gap."""
    temporary = os.path.join(base_dir, ".current.%d.tmp" % os.getpid())
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(posixpath.join("releases", version), temporary)
    try:
        os.rename(temporary, link)
    except OSError:
        os.unlink(temporary)
        raise
    fsync_dir(base_dir)


def append_history(base_dir, version):
    with open(os.path.join(base_dir, ".history"), "a") as handle:
        handle.write(version + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def restart(params, previous, url):
    command = hook_command(params["restart_command"], params["base_dir"])
    env = environment(params["base_dir"], params["version"], previous, "rollback", params["service_host"], params["service_port"], url)
    try:
        return run_hook(command, env)
    except HookError as exc:
        raise RollbackFailed(exc.msg, error=exc.error)


def process_state(pid):
    """The one-letter state from /proc/<pid>/stat, or None when there is no such process."""
    stat = read_text("/proc/%d/stat" % pid)
    if stat is None:
        return None
    # The command name in parentheses may itself hold spaces or parentheses: the state follows the last ')'.
    return stat[stat.rfind(")") + 2 :][:1]


def is_gone(pid):
    # A zombie has exited; only its parent (often an init that reaps lazily) can remove it.
    return process_state(pid) in (None, "Z")


def runs_from(pid, base_dir):
    """Whether process `pid` is this host's application: one of its arguments lies in base_dir.

    Several hosts (and other applications) may share a machine, and a stale pid file may name an
    unrelated process by now: that one must not be killed.
    """
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            arguments = handle.read().split(b"\0")
    except OSError:
        return False
    base = base_dir.rstrip("/").encode()
    return any(argument == base or argument.startswith(base + b"/") for argument in arguments)


def wait_until_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while not is_gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True


def signal_process(pid, number):
    with contextlib.suppress(ProcessLookupError):  # it exited by itself in the meantime
        os.kill(pid, number)


def stop_application(pid, timeout):
    signal_process(pid, signal.SIGTERM)
    if wait_until_gone(pid, timeout):
        return
    signal_process(pid, signal.SIGKILL)
    if not wait_until_gone(pid, KILL_GRACE):
        raise RollbackFailed("process %d is still running after SIGTERM and SIGKILL" % pid)


def running_application(base_dir):
    """The pid of this host's application when it runs, else None."""
    text = read_text(os.path.join(base_dir, "run", "app.pid"))
    if not text or not text.isdigit():
        return None
    pid = int(text)
    return pid if not is_gone(pid) and runs_from(pid, base_dir) else None


def take_out_of_service(module, result):
    params = module.params
    base_dir = params["base_dir"]
    link = os.path.join(base_dir, "current")
    linked = os.path.islink(link)
    pid = running_application(base_dir)
    if module.check_mode:
        result.update(changed=linked or pid is not None, current="", switched=linked, stopped=pid is not None)
        return
    if linked:
        # unlink(2) is atomic: a reader finds the old link or no link. Done before the stop, so
        # that a restart hook run meanwhile finds no release to bring back.
        os.unlink(link)
        fsync_dir(base_dir)
        result.update(changed=True, current="", switched=True)
    if pid is not None:
        stop_application(pid, params["health_timeout"])
        with contextlib.suppress(FileNotFoundError):  # the application removed it on the way out
            os.unlink(os.path.join(base_dir, "run", "app.pid"))
        result.update(changed=True, stopped=True)


def roll_back(module, result):
    params = module.params
    base_dir = params["base_dir"]
    version = params["version"]
    link = os.path.join(base_dir, "current")
    release_dir = os.path.join(base_dir, "releases", version)
    url = health_url(params["service_host"], params["service_port"], params["health_path"])

    if not os.path.lexists(release_dir):
        result["present"] = False
        return

    recorded = read_text(os.path.join(release_dir, ".release", "DIGEST"))
    if recorded == params["digest"] or manifest_digest(release_dir) == params["digest"]:
        # Its files must still be what was unpacked from the verified artifact; when they are not, nothing
        # changes here and the caller unpacks it again from the artifact (as for a pruned release).
        # Given the controller's manifest, every file is hashed: the ctime shortcut trusts the manifest's time, which anyone
        # who can write the release can move forward (a file edited, then the manifest touched).
        problems, _ = check_tree(release_dir, full=bool(params.get("files_digest")), expected=params.get("files_digest"))
        if problems:
            result.update(present=False, tampered=problems)
            result["msg"] = "%s differs from what was unpacked from its verified artifact: %s; not switching to it" % (
                release_dir, summary(problems))
            return
    if recorded != params["digest"]:
        module.fail_json(
            msg=(
                "%s holds digest %s, not %s: a different build under the same version (or an "
                "incomplete unpack); not switching to it" % (release_dir, recorded or "(none: no .release/DIGEST)", params["digest"])
            ),
            **result,
        )

    # Resolved, so that an absolute link to the same directory also counts as already there.
    at_target = os.path.islink(link) and os.path.realpath(link) == os.path.realpath(release_dir)
    if at_target and probe(url, PROBE_TIMEOUT).is_version(version):
        return

    # A hook that cannot run fails the host before its link is touched (in check mode too).
    command = hook_command(params["restart_command"], base_dir)
    try:
        check_hook(command, base_dir, release_dir)
    except HookError as exc:
        raise RollbackFailed(exc.msg, error=exc.error)

    if module.check_mode:
        result.update(changed=True, current=version, switched=not at_target, restarted=True)
        return

    # The result follows each step as it happens, so that a failure reports the host's real state.
    if not at_target:
        switch_link(base_dir, link, version)
        result.update(changed=True, current=version, switched=True)
        append_history(base_dir, version)
    result.update(changed=True, restarted=True)
    result["restart_output"] = restart(params, result["previous"], url)
    answer = wait_until(url, version, params["health_timeout"])
    if not answer.is_version(version):
        raise RollbackFailed(
            "%s did not answer 200 with version %s within %d s after the restart; last answer: %s" % (url, version, params["health_timeout"], answer.describe())
        )


def rollback_host(params, check_mode):
    """The whole work for checked parameters (the action plugin's entry): the result, `failed` when it failed."""
    return hostcall.run(work, params, check_mode)


def as_bool(value):
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on", "y")


def main():
    # Imported here: the action plugin runs this file's work without Ansible's module library (rollback_host).
    from ansible.module_utils.basic import AnsibleModule

    work(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True))


def work(module):
    params = module.params
    params["base_dir"] = os.path.expanduser(params["base_dir"]).rstrip("/") or "/"
    version = params["version"]
    if version and not VERSION_PATTERN.match(version):
        module.fail_json(msg="version %s is not a plain version name (letters, digits, '.', '_', '+', '-')" % json.dumps(version))
    if version and not DIGEST_PATTERN.match(params["digest"]):
        module.fail_json(msg="digest %s is not a sha256 in lowercase hex (64 digits)" % json.dumps(params["digest"]))
    if params["health_timeout"] < 1:
        module.fail_json(msg="health_timeout must be at least 1 second, not %d" % params["health_timeout"])

    # The lease first: what this run reads of the host must not change under it.
    lease = take_lease(module) if params["lease"] and not module.check_mode else None
    previous = version_of(read_link(module, os.path.join(params["base_dir"], "current")))
    result = dict(
        changed=False,
        previous=previous,
        current=previous,
        switched=False,
        present=True,
        restarted=False,
        stopped=False,
        token=lease or "",
        busy=False,
        lease_released=False,
    )
    try:
        if version:
            roll_back(module, result)
        else:
            take_out_of_service(module, result)
    except RollbackFailed as exc:
        result.update(exc.details)
        module.fail_json(msg=str(exc), **result)
    except OSError as exc:
        module.fail_json(msg="rollback to %s failed: %s" % (json.dumps(version), exc), **result)
    # This host runs the target (or is out of service as asked): the run is done here, unless the target must be
    # redeployed from its artifact, which the caller does under the same lease.
    if result["present"] and not module.check_mode:
        try:
            if params["witness"]:
                write_witness(params["base_dir"], params["witness"])
            if lease and not as_bool(params["lease"].get("keep") or False):
                result["lease_released"] = release_lease(lease_path(params["base_dir"]), lease)["released"]
        except OSError as exc:
            module.fail_json(msg="%s runs %s, but its run's bookkeeping failed: %s" % (params["base_dir"], json.dumps(version), exc), **result)
    module.exit_json(**result)


def take_lease(module):
    """Hold the host's lease for this run (release_lock's rules): its token; fails naming the holder when another run has it."""
    params = module.params
    lease = params["lease"]
    run = lease.get("run") or {}
    token = str(run.get("id") or uuid.uuid4().hex[:12])
    ttl, wait = int(lease.get("ttl") or 1800), int(lease.get("wait", 20))
    if ttl < 1:
        module.fail_json(msg="lease ttl must be at least 1 second, got %d" % ttl, busy=False)
    if not os.path.isdir(params["base_dir"]):
        os.makedirs(params["base_dir"], 0o755)
    try:
        hold(lease_path(params["base_dir"]), run, token, ttl, wait, list(lease.get("breakable") or []))
    except Busy as exc:
        module.fail_json(msg=str(exc), busy=True, holder=exc.holder, token=token)
    return token


if __name__ == "__main__":
    main()
