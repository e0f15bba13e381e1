"""Controller side of release_live: run the module, and publish what the host runs in the same task.

Instead of a set_stats task after the switch (a worker process per host), the module's outcome is
published as this task's own `ansible_stats` (what set_stats returns), per host, under
`release_deploy`: previous, current, switched and tampered - also when a step failed, because a
host that switched and then failed its restart or health check must be known as switched (it is
rolled back). Ansible keeps the stats of successful results only, so a failure of one of the
module's steps (RV failure: lease, switch, inputs, restart, health, prune) comes back as a
successful result that carries it, and the role's next tasks fail the host under the name of that
step (relpromote tells a release that failed its verification by that name). Any other failure of
the module stays a failure of this task. The module (library/release_live.py) does the work and
documents the options.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

MODULE = "ansible.legacy.release_live"
STEPS = ("lease", "switch", "inputs", "restart", "health", "prune")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        result.update(self._execute_module(module_name=MODULE, module_args=dict(self._task.args), task_vars=task_vars))
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
