"""Controller side of release_live: run its work with the host's Python, and publish what the host runs in the same task.

The work (module_utils/release_live.py put_live: lease, switch, restart, health check, prune, witness) runs with the
host's Python directly, without the module wrapper (_host_python.py says why and how; without pipelining the module
library/release_live.py runs it instead, with the same result).

Instead of a set_stats task after the switch (a worker process per host), the outcome is published as this task's own
`ansible_stats` (what set_stats returns), per host, under `release_deploy`: previous, current, switched and tampered -
also when a step failed, because a host that switched and then failed its restart or health check must be known as
switched (it is rolled back). Ansible keeps the stats of successful results only, so a failure of one of the steps
(RV failure: lease, switch, inputs, restart, health, prune) comes back as a successful result that carries it; the role
fails the task on it (failed_when), and the block's rescue fails the host again under the name of that step (relpromote
tells a release that failed its verification by that name, and reads the published outcome from the failed task's
event). Any other failure stays a failure of this task.
"""

from __future__ import annotations

import importlib.util
import os

from ansible.plugins.action import ActionBase

MODULE = "ansible.legacy.release_live"
STEPS = ("lease", "switch", "inputs", "restart", "health", "prune")
# module_utils the work imports, each after those it imports.
UTILS = ("release_health", "release_hook", "release_integrity", "release_lease", "release_witness", "release_live")


def _helper():
    spec = importlib.util.spec_from_file_location("relpromote_host_python", os.path.join(os.path.dirname(os.path.realpath(__file__)), "_host_python.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOST = _helper()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        if self._connection.is_pipelining_enabled():
            try:
                sources = HOST.read_sources(HOST.utils_dir(__file__), UTILS)
                params = HOST.checked(HOST.argument_spec(sources[-1][1]), self._task.args)
            except (OSError, ValueError, SyntaxError) as exc:
                result.update(failed=True, msg="release_live: %s" % exc)
                return result
            done = HOST.run_on_host(self, HOST.program(sources, "release_live", "put_live", params, self._task.check_mode), task_vars)
        else:
            done = None
        result.update(done if done is not None else self._execute_module(module_name=MODULE, module_args=dict(self._task.args), task_vars=task_vars))
        if result.get("failed") and result.get("failure") in STEPS:
            # Judged by the role's next tasks, once published.
            result["failed"] = False
        if not result.get("failed") and "previous" in result:
            result["ansible_stats"] = {"data": {"release_deploy": outcome(result)}, "per_host": True, "aggregate": False}
        return result


def outcome(result):
    """What the host runs, as the role publishes it (relpromote.promotion.host_outcomes reads it)."""
    switched = bool(result.get("switched"))
    return {
        "previous": result.get("previous", ""),
        "current": result.get("current", "") if switched or not result.get("failure") else result.get("previous", ""),
        "switched": switched,
        "tampered": list(result.get("tampered") or []),
    }
