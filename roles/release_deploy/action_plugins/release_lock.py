"""Controller side of release_lock: take or give back the host's lease with the host's Python directly.

The lease's rules live once, in module_utils/release_lease.py (lease_command). Run as a module, they would cost a
module execution per host for a few milliseconds of work; this plugin runs them with the host's Python directly, one
command over the open connection (_host_python.py says why and how). Without pipelining it runs the module
(library/release_lock.py) as usual; the result is the same.
"""

from __future__ import annotations

import importlib.util
import os

from ansible.plugins.action import ActionBase

MODULE = "ansible.legacy.release_lock"
UTILS = ("release_lease",)


def _helper():
    spec = importlib.util.spec_from_file_location("relpromote_host_python", os.path.join(os.path.dirname(os.path.realpath(__file__)), "_host_python.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOST = _helper()


def script(sources, params, check_mode):
    """The program the host runs for `params` (already checked)."""
    return HOST.program(sources, "release_lease", "lease_command", params, check_mode)


def parameters(args, sources):
    """The task's arguments as the module would get them, or ValueError."""
    return HOST.checked(HOST.argument_spec(sources[-1][1]), args)


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
            sources = HOST.read_sources(HOST.utils_dir(__file__), UTILS)
            params = parameters(self._task.args, sources)
        except (OSError, ValueError, SyntaxError) as exc:
            result.update(failed=True, msg="release_lock: %s" % exc)
            return result
        done = HOST.run_on_host(self, script(sources, params, self._task.check_mode), task_vars)
        result.update(done if done is not None else self._execute_module(module_name=MODULE, module_args=dict(self._task.args), task_vars=task_vars))
        return result
