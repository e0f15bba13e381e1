# -*- coding: utf-8 -*-
"""Putting an unpacked release live on the host: the switch of `current`, then the restart, the health
check and the pruning (release_switch, release_finish and release_live compose these).

Owns the host's notion of "live" - the link is replaced with rename(2), never removed first, so a
reader sees the old release or the new one and nothing in between; a release goes live only when it
is completely unpacked and its files are still those of its manifest (release_integrity) - and what
happens after the switch: the decision to restart, the health wait, and the rule for what a host
keeps, decided by the order releases went live (the history), never by modification times, and
never the release `current` points to.

Shipped with every module that imports it (Ansible's module_utils). Python standard library only.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import re
import select
import shutil
import sys
import uuid

from ansible.module_utils import release_health as health
from ansible.module_utils.release_health import PROBE_TIMEOUT, health_url
from ansible.module_utils.release_hook import HookError, environment, hook_command
from ansible.module_utils.release_hook import run as run_hook
from ansible.module_utils.release_integrity import check as check_tree
from ansible.module_utils.release_integrity import fsync_dir, live_version, version_of
from ansible.module_utils.release_integrity import summary
from ansible.module_utils.release_lease import Busy, hold, lease_path
from ansible.module_utils.release_witness import write_witness

__metaclass__ = type

# release_live's options (library/release_live.py documents them). A literal: the module gives it to AnsibleModule,
# and its action plugin reads it from this file to check a task's arguments on the controller the same way.
ARGUMENT_SPEC = {
    "base_dir": {"type": "path", "required": True},
    "version": {"type": "str", "required": True},
    "restart": {"type": "bool", "default": False},
    "keep": {"type": "int", "default": 5},
    "service_host": {"type": "str", "default": "localhost"},
    "service_port": {"type": "int", "default": 8080},
    "restart_command": {"type": "str", "default": ""},
    "health_path": {"type": "str", "default": "/health"},
    "health_timeout": {"type": "int", "default": 30},
    "lease": {"type": "dict", "default": {}},
    "witness": {"type": "dict", "default": {}},
    "tampered": {"type": "list", "elements": "str", "default": []},
    # Which steps this execution takes, in this order; fewer than all when the inventory's user tasks run between them
    # (roles/release_deploy/tasks/user_tasks_live.yml); none: only the lease and the link read. Without the switch,
    # `switched_earlier` is what the switch did.
    "steps": {"type": "list", "elements": "str", "choices": ["switch", "restart", "health"], "default": ["switch", "restart", "health"]},
    "switched_earlier": {"type": "dict", "default": {}},
    # The release's manifest digest as the controller computed it from the verified artifact (release_integrity.check).
    "files_digest": {"type": "str"},
}
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def last_line(path):
    try:
        with open(path) as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None


class Refused(Exception):
    """The link was not switched; `result` says what the host runs (unchanged) and why (`tampered`)."""

    def __init__(self, msg, result):
        super().__init__(msg)
        self.msg = msg
        self.result = result


def switch(path, target, version, history, check_mode, files_digest=None):
    """Point `path` at `target` (relative to its directory) and append `version` to `history` (when given): the result
    {changed, previous, current, switched, history_appended}, or Refused (nothing changed) when the release is not
    completely unpacked or its files differ from its manifest (or, given `files_digest`, the manifest is not the one the
    controller computed from the verified artifact). In check mode, only says what would be done."""
    path = path.rstrip("/")
    version = version or version_of(target)
    directory = os.path.dirname(path)

    previous_target = None
    if os.path.islink(path):
        previous_target = os.readlink(path)
    elif os.path.lexists(path):
        raise Refused("%s exists and is not a symbolic link; move it away by hand" % path, {})

    switched = previous_target != target
    history_appended = bool(history) and (switched or last_line(history) != version)
    result = dict(
        changed=switched or history_appended,
        previous=version_of(previous_target),
        current=version,
        switched=switched,
        history_appended=history_appended,
    )

    release_dir = os.path.join(directory, target)
    if switched and not os.path.isfile(os.path.join(release_dir, ".release", "DIGEST")):
        if check_mode:
            result["msg"] = "%s is not unpacked yet (check mode)" % release_dir
            return result
        result.update(changed=False, switched=False, history_appended=False)
        raise Refused("%s is not a completely unpacked release (no .release/DIGEST)" % release_dir, result)

    if switched:
        # The last look before the release goes live: its files must be what was unpacked from the verified artifact.
        problems, _ = check_tree(release_dir, expected=files_digest)
        if problems:
            result.update(changed=False, switched=False, history_appended=False, tampered=problems)
            raise Refused(
                "%s differs from what was unpacked from its verified artifact: %s; refusing to switch to it" % (release_dir, summary(problems)),
                result,
            )

    if check_mode:
        return result

    if switched:
        temporary = os.path.join(directory, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
        if os.path.lexists(temporary):
            os.unlink(temporary)
        os.symlink(target, temporary)
        try:
            os.rename(temporary, path)
        except OSError as exc:
            os.unlink(temporary)
            result.update(changed=False, switched=False, history_appended=False)
            raise Refused("could not replace %s: %s" % (path, exc), result)
        fsync_dir(directory)

    if history_appended:
        with open(history, "a") as handle:
            handle.write(version + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return result


class Failed(Exception):
    def __init__(self, failure, msg, error=None):
        super().__init__(msg)
        self.failure = failure
        self.msg = msg
        self.error = error


def controller_gone():
    """True once nobody reads our output: the controller was stopped, killed or cancelled.

    Our stdout is a pipe to sshd (or to the controller itself); when its reader is closed,
    poll() reports an error on our end.
    """
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        events = poller.poll(0)
    except (AttributeError, OSError, ValueError):
        return False
    return any(mask & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, mask in events)


def stop_if_abandoned():
    if controller_gone():
        sys.exit(1)


def ask(url, timeout=PROBE_TIMEOUT):
    """The answer of one GET as this module returns it: {url, status, version, msg}; status -1 when nothing answered."""
    return as_health(health.ask(url, timeout))


def as_health(answer):
    ok = "OK" if answer.status == 200 else "HTTP Error %s" % answer.status
    return {"url": answer.url, "status": -1 if answer.status is None else answer.status, "version": answer.version,
            "msg": answer.error or ok if answer.status is not None else answer.error}


def answers(answer, version):
    return answer["status"] == 200 and answer["version"] == version


def restart(command, env):
    try:
        return run_hook(command, env)
    except HookError as exc:
        raise Failed("restart", exc.msg, exc.error) from exc


def wait_until_healthy(url, version, timeout):
    """Ask `url` until it answers 200 with `version` or `timeout` seconds have passed; the last answer."""
    return as_health(health.wait_until(url, version, timeout, before_each=stop_if_abandoned))


def history_newest_first(path):
    try:
        with open(path) as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except OSError:
        return []
    return list(reversed(lines))


def plan_prune(base_dir, keep, live):
    """(kept, removed): what `current` points to and `live`, then the newest in .history, `keep` in all."""
    releases = os.path.join(base_dir, "releases")
    link = os.path.join(base_dir, "current")
    current = live_version(link)
    try:
        entries = sorted(os.listdir(releases))
    except OSError:
        entries = []
    unpacked = set()
    leftovers = []
    for entry in entries:
        path = os.path.join(releases, entry)
        if os.path.islink(path) or not os.path.isdir(path):
            continue
        if not entry.startswith("."):
            unpacked.add(entry)
        elif entry.endswith(".partial"):
            leftovers.append(entry)
    # Only releases still on disk count towards `keep`; the live ones are kept regardless.
    protected = [version for version in (live, current) if version]
    kept = []
    for version in protected + history_newest_first(os.path.join(base_dir, ".history")):
        if version not in kept and (version in protected or (version in unpacked and len(kept) < keep)):
            kept.append(version)
    return [version for version in kept if version in unpacked], sorted(unpacked - set(kept)) + leftovers


def check_inputs(params):
    """Raise Failed (step `inputs`) for settings that would make the steps after the switch fail: checked first."""
    if params["keep"] < 2:
        raise Failed("inputs", f"keep must be at least 2 (the live release and one to roll back to), not {params['keep']}")
    if params["health_timeout"] < 1:
        raise Failed("inputs", f"health_timeout must be at least 1, not {params['health_timeout']}")
    if not params["health_path"].startswith("/"):
        raise Failed("inputs", f"health_path must start with /, not {params['health_path']!r}")


def finish(params, check_mode, result, steps=("restart", "health")):
    """Restart when needed (`params["switched"]`, or the application does not answer the version), wait for the
    health check, prune; `result` follows each step. Raises Failed naming the step. Without "health" in `steps`, stops
    after the restart; without "restart", waits for the health check (the application was restarted or not before)."""
    base_dir = params["base_dir"].rstrip("/") or "/"
    version = params["version"]
    check_inputs(params)
    url = health_url(params["service_host"], params["service_port"], params["health_path"])

    # Restarted when the link changed, or when the application does not answer this version.
    if "restart" in steps and not params["switched"]:
        result["health"] = ask(url, PROBE_TIMEOUT)
        result["healthy"] = answers(result["health"], version)
    command = hook_command(params["restart_command"], base_dir)
    if "restart" in steps and not result["healthy"]:
        result["restarted"] = True
        if check_mode:
            result["msg"] = f"would restart the application and wait until {url} answers {version}"
        else:
            stop_if_abandoned()
            env = environment(base_dir, version, params["previous"], "deploy", params["service_host"], params["service_port"], url)
            result["restart_output"] = restart(command, env)
    if "health" not in steps:
        return
    if not result["healthy"] and not check_mode:
        result["health"] = last = wait_until_healthy(url, version, params["health_timeout"])
        result["healthy"] = answers(last, version)
        if not result["healthy"]:
            raise Failed(
                "health",
                f"{url} did not answer 200 with version {version} within {params['health_timeout']} s; "
                f"last answer: status {last['status']}, version {json.dumps(last['version'] if last['version'] is not None else '(none)')} "
                f"({last['msg'] or 'no message'}); the restart hook {json.dumps(command)} had exited with 0: "
                f"{' | '.join(result.get('restart_output', []))[-150:] or '(no output)'}",
            )

    # Old releases, by history order; never what `current` points to, never `version`.
    kept, removed = plan_prune(base_dir, params["keep"], version)
    result.update(kept=kept, removed=removed)
    if removed and not check_mode:
        stop_if_abandoned()
        try:
            for entry in removed:
                shutil.rmtree(os.path.join(base_dir, "releases", entry))
        except OSError as exc:
            raise Failed("prune", f"could not remove an old release: {exc}") from exc


def take_lease(lease, base_dir):
    """Renew (or take) this run's lease: its token. Raises Busy naming the holder when another run has the host."""
    run = lease.get("run") or {}
    token = str(lease.get("token") or run.get("id") or uuid.uuid4().hex[:12])
    if not os.path.isdir(base_dir):
        os.makedirs(base_dir, 0o755)
    hold(lease_path(base_dir), run, token, max(1, int(lease.get("ttl") or 1800)), int(lease.get("wait", 20)), list(lease.get("breakable") or []))
    return token


def put_live(params, check_mode):
    """release_live's whole work for its (checked) parameters: the result; with `failed` and `msg`, and `failure` naming
    the step (lease, inputs, switch, restart, health, prune), when a step failed. What the host runs is in the result
    whenever the link was read."""
    base_dir = os.path.expanduser(params["base_dir"]).rstrip("/") or "/"
    version = params["version"]
    result = dict(changed=False, restarted=False, healthy=False, failure="", busy=False, token="", tampered=params["tampered"])
    try:
        if not VERSION_PATTERN.match(version):
            raise Failed("inputs", "version %s is not a plain version name (letters, digits, '.', '_', '+', '-')" % json.dumps(version))
        check_inputs(params)
    except Failed as exc:
        return dict(result, failed=True, msg=exc.msg, failure=exc.failure)
    if params["lease"] and not check_mode:
        try:
            result["token"] = take_lease(params["lease"], base_dir)
        except Busy as exc:
            return dict(result, failed=True, msg=str(exc), failure="lease", busy=True, holder=exc.holder)
    order = params.get("steps")
    order = ["switch", "restart", "health"] if order is None else order
    if not order:
        # No step: the link as it is, so that what the host runs is known before the user tasks that precede the switch.
        previous = live_version(os.path.join(base_dir, "current")) or ""
        result.update(previous=previous, current=previous, switched=False)
        return result
    if "switch" not in order:
        # An earlier execution of this run switched (or found the link right): what it said is what the host runs.
        earlier = params.get("switched_earlier") or {}
        result.update(previous=str(earlier.get("previous") or ""), current=version, switched=bool(earlier.get("switched")))
    else:
        try:
            result.update(switch(os.path.join(base_dir, "current"), "releases/" + version, version, os.path.join(base_dir, ".history"), check_mode,
                                 params.get("files_digest")))
        except Refused as exc:
            result.update(exc.result, failure="switch", failed=True, msg=exc.msg)
            result["current"] = result.get("previous", "")
            return result
        if order == ["switch"]:
            return result
    steps = dict(params, base_dir=base_dir, switched=result["switched"] or params["restart"], previous=result["previous"])
    try:
        finish(steps, check_mode, result, order)
    except Failed as exc:
        result.update(failure=exc.failure, changed=result["changed"] or result["restarted"], failed=True, msg=exc.msg)
        if exc.error:
            result["error"] = exc.error
        return result
    if params["witness"] and not check_mode and "health" in order:
        write_witness(base_dir, params["witness"])
    result["changed"] = bool(result["changed"] or result["restarted"] or result.get("removed"))
    return result
