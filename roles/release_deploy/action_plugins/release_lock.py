"""Controller side of release_lock: take or give back the host's lease with the host's Python directly.

The lease's rules live once, in module_utils/release_lease.py. Run as a module, they would cost a module
execution per host (Ansible's wrapper unpacked and its module library imported on the host: about a second
per run on a busy controller, for a few milliseconds of work). This plugin pipes that same file, followed by
one call with the task's arguments, to the host's Python over the open connection, and reads back the
result it prints: one round trip, no wrapper. Without pipelining (a connection that cannot feed a
command's stdin), it runs the module (library/release_lock.py) as usual; the result is the same.
"""

from __future__ import annotations

import json
import os
import shlex

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.action import ActionBase

MODULE = "ansible.legacy.release_lock"
LEASE_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils", "release_lease.py")
DEFAULTS = {"state": "held", "run": {}, "token": "", "ttl": 1800, "wait": 20, "breakable": []}
RESULT_MARK = "release_lock result: "


def script(source, params, check_mode):
    """The Python program the host runs: the lease's rules, then one call printing its result as JSON."""
    call = "print(%r + json.dumps(lease_command(json.loads(%r), %r)))" % (RESULT_MARK, json.dumps(params), bool(check_mode))
    return source + "\n\n" + call + "\n"


def parameters(args):
    """The task's arguments with the module's defaults and types (what AnsibleModule would give the module)."""
    params = dict(DEFAULTS, **{key: value for key, value in args.items() if value is not None})
    unknown = sorted(set(params) - set(DEFAULTS) - {"path"})
    if unknown:
        raise ValueError("unsupported parameters: %s" % ", ".join(unknown))
    if not params.get("path"):
        raise ValueError("path is required")
    if params["state"] not in ("held", "released"):
        raise ValueError("state must be held or released, not %s" % json.dumps(params["state"]))
    if not isinstance(params["run"], dict):
        raise ValueError("run must be a dictionary")
    params["path"] = str(params["path"])
    params["token"] = str(params["token"] or "")
    params["ttl"], params["wait"] = int(params["ttl"]), int(params["wait"])
    breakable = params["breakable"]
    params["breakable"] = [str(item) for item in (breakable if isinstance(breakable, list) else [breakable])]
    return params


def interpreter(task_vars):
    """The host's Python: ansible_python_interpreter when the inventory names one, else python3."""
    configured = str((task_vars or {}).get("ansible_python_interpreter") or "")
    return configured if configured and not configured.startswith("auto") and "{{" not in configured else "python3"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        if not self._connection.is_pipelining_enabled():
            result.update(self._execute_module(module_name=MODULE, module_args=dict(self._task.args), task_vars=task_vars))
            return result
        try:
            params = parameters(dict(self._task.args))
            params["path"] = self._remote_expand_user(params["path"])
            with open(LEASE_SOURCE, encoding="utf-8") as handle:
                program = script(handle.read(), params, self._task.check_mode)
        except (ValueError, TypeError, OSError, AnsibleError) as exc:
            result.update(failed=True, msg="release_lock: %s" % exc)
            return result
        python = interpreter(task_vars)
        ran = self._low_level_execute_command("%s -" % shlex.quote(python), in_data=to_bytes(program), sudoable=True)
        output = next((line[len(RESULT_MARK):] for line in (ran.get("stdout") or "").splitlines() if line.startswith(RESULT_MARK)), None)
        if ran.get("rc") != 0 or output is None:
            said = (ran.get("stderr") or ran.get("stdout") or "").strip()[-500:]
            result.update(failed=True, rc=ran.get("rc"), msg="could not take or give back the host's lease with %s: %s" % (python, said or "no output"))
            return result
        result.update(json.loads(output))
        return result
