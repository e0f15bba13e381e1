# -*- coding: utf-8 -*-
"""The host's lease for one promotion or rollback, on the host (release_lock, release_rollback).

Owns the file `<release_base_dir>/.relpromote-lock.json`: one run at a time on a host, whoever
starts it (two controllers, two clones of a project, a plain ansible-playbook run). Every read and
write happens under an exclusive flock of `<path>.guard`, held for milliseconds; the lease is
written to a temporary file and renamed. A lease expires (the host's own clock decides), so a
killed controller blocks no host for ever.

release_lock takes and gives back the lease as a step of its own; release_rollback takes it,
does its whole work and gives it back in the same execution (one round trip per host). Shipped
with every module that imports it (Ansible's module_utils); roles/release_rollback and
playbooks/ hold links to this file, so it is written once. Python standard library only.
"""

from __future__ import absolute_import, division, print_function

import contextlib
import fcntl
import json
import os
import time
import uuid

__metaclass__ = type

LEASE_FILE = ".relpromote-lock.json"
# release_lock's options (library/release_lock.py documents them). A literal: the module gives it to AnsibleModule, and
# its action plugin reads it from this file to check a task's arguments on the controller the same way.
ARGUMENT_SPEC = {
    "path": {"type": "path", "required": True},
    "state": {"type": "str", "choices": ["held", "released"], "default": "held"},
    "run": {"type": "dict", "default": {}},
    "token": {"type": "str", "default": "", "no_log": False},
    "ttl": {"type": "int", "default": 1800},
    "wait": {"type": "int", "default": 20},
    "breakable": {"type": "list", "elements": "str", "default": []},
}
RUN_FIELDS = ("id", "project", "person", "controller", "pid", "purpose", "started")


class Busy(Exception):
    """Another run holds the lease; `holder` is its lease as the host knows it."""

    def __init__(self, holder):
        super(Busy, self).__init__("this host is locked by %s" % describe(holder))
        self.holder = holder


def lease_path(base_dir):
    return os.path.join(base_dir, LEASE_FILE)


def read_lease(path):
    """The lease in `path`, or None when there is none; an unreadable lease counts as expired."""
    try:
        with open(path, encoding="utf-8") as handle:
            lease = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"token": "", "expires": 0, "unreadable": True}
    return lease if isinstance(lease, dict) else {"token": "", "expires": 0, "unreadable": True}


def write_lease(path, lease):
    temporary = "%s.%d.tmp" % (path, os.getpid())
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(lease, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


@contextlib.contextmanager
def guarded(path):
    """Exclusive use of the lease for one read-decide-write, across every process of this host."""
    fd = os.open(path + ".guard", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def describe(lease):
    """The holder on one line, as the host knows it."""
    if lease.get("unreadable"):
        return "an unreadable lease"
    who = lease.get("person") or "someone"
    parts = ["%s (%s)" % (who, lease.get("purpose") or "a run")]
    if lease.get("project"):
        parts.append("project %s" % lease["project"])
    parts.append("run %s" % (lease.get("token") or "?"))
    if lease.get("controller"):
        parts.append("pid %s on %s" % (lease.get("pid") or "?", lease["controller"]))
    parts.append("since %s, lease until %s" % (lease.get("taken_at") or "?", lease.get("expires_at") or "?"))
    return ", ".join(parts)


def older_than(mine, theirs):
    """Whether this run started before the holder's (a run with no start time counts as the youngest)."""
    if not mine.get("started"):
        return False
    if not theirs.get("started"):
        return True
    return (str(mine["started"]), str(mine.get("token"))) < (str(theirs["started"]), str(theirs.get("token")))


def hold(path, run, token, ttl, wait=20, breakable=(), check_mode=False):
    """Take or renew the lease in `path` for `run` (its token `token`): the result as release_lock returns it.

    A lease that is free, expired, this run's or in `breakable` is taken (RV broke names a replaced one). A lease
    of a younger run is waited for up to `wait` seconds; otherwise Busy is raised, naming the holder."""
    deadline = time.monotonic() + max(0, wait)
    while True:
        with guarded(path):
            now = time.time()
            lease = read_lease(path)
            mine = {key: run.get(key) for key in RUN_FIELDS if key != "id"}
            mine.update(token=token)
            free = lease is None or float(lease.get("expires") or 0) <= now
            ours = lease is not None and lease.get("token") == token
            if free or ours or (lease is not None and lease.get("token") in breakable):
                taken = lease.get("taken_at") if ours else iso(now)
                new = dict(mine, taken_at=taken, expires=now + ttl, expires_at=iso(now + ttl))
                result = {"token": token, "holder": new, "busy": False, "released": False, "changed": not ours}
                if lease is not None and not ours:
                    result["broke"] = lease
                if not check_mode:
                    write_lease(path, new)
                return result
        if not (older_than(mine, lease) and time.monotonic() < deadline):
            raise Busy(lease)
        time.sleep(0.2)


def release(path, token, check_mode=False):
    """Give the lease back when it is this run's (`token`); a lease of another run is left alone."""
    with guarded(path):
        lease = read_lease(path)
        if lease is None or not token or lease.get("token") != token:
            return {"token": token, "holder": lease or {}, "busy": False, "released": False, "changed": False}
        if not check_mode:
            os.unlink(path)
        return {"token": token, "holder": {}, "busy": False, "released": True, "changed": False}


def lease_command(params, check_mode=False):
    """release_lock's whole work for its parameters (path, state, run, token, ttl, wait, breakable): its result, with
    `failed` and `msg` when refused. The module (library/release_lock.py) and its action plugin, which runs this file
    with the host's Python directly (no module wrapper: a fraction of a module's cost), both call it."""
    path = os.path.expanduser(params["path"])
    run = params.get("run") or {}
    token = str(run.get("id") or params.get("token") or "")
    ttl = int(params.get("ttl", 1800))
    if ttl < 1:
        return {"failed": True, "msg": "ttl must be at least 1 second, got %d" % ttl, "busy": False}
    folder = os.path.dirname(path)
    if params.get("state", "held") == "released":
        if not os.path.isdir(folder):
            return {"token": token, "holder": {}, "busy": False, "released": False, "changed": False}
        return release(path, token, check_mode)
    if not os.path.isdir(folder) and not check_mode:
        os.makedirs(folder, 0o755)
    token = token or uuid.uuid4().hex[:12]
    if not os.path.isdir(folder):
        return {"token": token, "holder": {}, "busy": False, "released": False, "changed": False}
    try:
        return hold(path, run, token, ttl, int(params.get("wait", 20)), list(params.get("breakable") or []), check_mode)
    except Busy as exc:
        return {"failed": True, "msg": str(exc), "busy": True, "holder": exc.holder, "token": token, "released": False}
