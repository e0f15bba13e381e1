#!/usr/bin/python
"""One run at a time on a host: a lease on the host, taken before a promotion or rollback changes it.

Owns the file `<release_base_dir>/.relpromote-lock.json`. Two controllers, two clones of a project
(each with its own ledger and environment locks) or a plain ansible-playbook run of the playbooks
cannot change one host at the same time: the second is refused, naming the holder the host knows.
A lease expires (the host's own clock decides), so a killed controller blocks no host for ever.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_lock
short_description: Take, renew or release the host's lease for one promotion or rollback
description:
  - O(state=held) takes the lease in O(path) for the run O(run) (its C(id) is the lease's token),
    renews it when this run holds it already, and refuses (failed, RV(busy)) while another run
    holds a lease that has not expired, naming that run (RV(holder)).
  - A lease whose run is in O(breakable) (runs the caller's ledger knows are over) or whose
    expiry has passed is taken over; RV(broke) names the lease that was replaced.
  - Two runs that start together take hosts in parallel; so that one of them wins instead of
    each holding some hosts, a run waits up to O(wait) seconds for a lease held by a run that
    started after it (a younger run), and a younger run is refused at once.
  - Every read and write of the lease happens under an exclusive C(flock) of C(<path>.guard),
    held for milliseconds; the lease itself is written to a temporary file and renamed.
  - O(state=released) removes the lease when it is this run's (O(run) C(id), or O(token)); a
    lease of another run is left alone.
version_added: "1.0.0"
author: relpromote
options:
  path:
    description: The lease file, for example C(/opt/app/.relpromote-lock.json).
    type: path
    required: true
  state:
    description: C(held) to take or renew the lease, C(released) to give it back.
    type: str
    choices: [held, released]
    default: held
  run:
    description:
      - Who runs: C(id) (the token; empty makes one up), C(project), C(person), C(controller)
        (login@host), C(pid), C(purpose), C(started) (UTC, ISO 8601; decides which of two
        concurrent runs is the older).
    type: dict
    default: {}
  token:
    description: The token to release with O(state=released) when O(run) has no C(id).
    type: str
    default: ""
  ttl:
    description: Seconds the lease lasts from now; each O(state=held) renews it.
    type: int
    default: 1800
  wait:
    description: Seconds to wait for a lease held by a younger run to be given back.
    type: int
    default: 20
  breakable:
    description: Run ids whose leases may be taken over (their runs are known to be over).
    type: list
    elements: str
    default: []
notes:
  - Supports check mode (reports whether the lease could be taken, writes nothing).
"""

EXAMPLES = r"""
- name: Lock this host for the run
  release_lock:
    path: /opt/app/.relpromote-lock.json
    run: {id: 3f2a9c1e0b7d, person: oscar, controller: oscar@jump, pid: 4242, purpose: promotion of 1.4.0}
  register: host_lock

- name: Unlock this host
  release_lock:
    path: /opt/app/.relpromote-lock.json
    state: released
    token: "{{ host_lock.token }}"
"""

RETURN = r"""
token:
  description: The lease's token (the run's id, or one made up for a run without one).
  returned: always
  type: str
holder:
  description: The lease as the host holds it now (or, when refused, the other run's lease).
  returned: always
  type: dict
busy:
  description: True when another run holds the lease.
  returned: always
  type: bool
broke:
  description: The expired or breakable lease that was taken over, if any.
  returned: when one was
  type: dict
released:
  description: Whether this run's lease was removed (O(state=released)).
  returned: always
  type: bool
"""

import contextlib
import fcntl
import json
import os
import time
import uuid

from ansible.module_utils.basic import AnsibleModule

RUN_FIELDS = ("id", "project", "person", "controller", "pid", "purpose", "started")


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


def hold(module, path, run, token):
    params = module.params
    deadline = time.monotonic() + max(0, params["wait"])
    while True:
        with guarded(path):
            now = time.time()
            lease = read_lease(path)
            mine = {key: run.get(key) for key in RUN_FIELDS if key != "id"}
            mine.update(token=token)
            free = lease is None or float(lease.get("expires") or 0) <= now
            ours = lease is not None and lease.get("token") == token
            breakable = lease is not None and lease.get("token") in params["breakable"]
            if free or ours or breakable:
                taken = lease.get("taken_at") if ours else iso(now)
                new = dict(mine, taken_at=taken, expires=now + params["ttl"], expires_at=iso(now + params["ttl"]))
                result = {"token": token, "holder": new, "busy": False, "released": False, "changed": not ours}
                if lease is not None and not ours:
                    result["broke"] = lease
                if not module.check_mode:
                    write_lease(path, new)
                return result
        if not (older_than(mine, lease) and time.monotonic() < deadline):
            module.fail_json(msg="this host is locked by %s" % describe(lease), busy=True, holder=lease, token=token, released=False)
        time.sleep(0.2)


def release(module, path, token):
    with guarded(path):
        lease = read_lease(path)
        if lease is None or not token or lease.get("token") != token:
            return {"token": token, "holder": lease or {}, "busy": False, "released": False, "changed": False}
        if not module.check_mode:
            os.unlink(path)
        return {"token": token, "holder": {}, "busy": False, "released": True, "changed": False}


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["held", "released"], "default": "held"},
            "run": {"type": "dict", "default": {}},
            "token": {"type": "str", "default": "", "no_log": False},
            "ttl": {"type": "int", "default": 1800},
            "wait": {"type": "int", "default": 20},
            "breakable": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    run = module.params["run"] or {}
    token = str(run.get("id") or module.params["token"] or "")
    if module.params["ttl"] < 1:
        module.fail_json(msg="ttl must be at least 1 second, got %d" % module.params["ttl"], busy=False)
    folder = os.path.dirname(path)
    if module.params["state"] == "released":
        if not os.path.isdir(folder):
            module.exit_json(token=token, holder={}, busy=False, released=False, changed=False)
        module.exit_json(**release(module, path, token))
    if not os.path.isdir(folder) and not module.check_mode:
        os.makedirs(folder, 0o755)
    if not os.path.isdir(folder):
        module.exit_json(token=token or uuid.uuid4().hex[:12], holder={}, busy=False, released=False, changed=False)
    module.exit_json(**hold(module, path, run, token or uuid.uuid4().hex[:12]))


if __name__ == "__main__":
    main()
