# -*- coding: utf-8 -*-
"""A module's work without Ansible's module library, for the action plugins that run it with the host's Python.

The modules release_unpack and release_rollback do their work in a function of an object with AnsibleModule's
`params`, `check_mode`, `exit_json` and `fail_json`: main() passes the real AnsibleModule; their action plugins
(action_plugins/_host_python.py) call `run(work, params, check_mode)` through this HostCall instead, with
parameters already checked on the controller, and get the result the module would have printed. Shipped with the
modules that import it; roles/release_rollback holds a link to this file. Standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class Done(BaseException):
    """The work ended (HostCall's exit_json or fail_json), as AnsibleModule's SystemExit does: its result."""

    def __init__(self, result):
        super(Done, self).__init__("done")
        self.result = result


class HostCall:
    """What the work needs of AnsibleModule."""

    def __init__(self, params, check_mode):
        self.params = dict(params)
        self.check_mode = bool(check_mode)

    def exit_json(self, **result):
        raise Done(result)

    def fail_json(self, **result):
        raise Done(dict(result, failed=True))


def run(work, params, check_mode):
    """`work(HostCall)`'s result; `failed` when it failed."""
    try:
        work(HostCall(params, check_mode))
    except Done as done:
        return done.result
    return {"failed": True, "msg": "the work ended without a result"}
