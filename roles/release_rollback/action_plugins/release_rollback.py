"""Controller side of release_rollback: run the module, and publish what the host runs in the same task.

A rollback must cost one round trip per host and as few controller tasks as possible: instead of a
set_stats task after the module (a worker process per host), the module's result is published here
as the task's own `ansible_stats` (what set_stats returns), per host, under `release_rollback`:
previous, current, switched, redeployed (false: the redeploy path publishes again) and tampered.
Published only when the module succeeded (Ansible keeps stats of successful results only); the
role's rescue publishes a failed host's outcome. The module (library/release_rollback.py) does
the work and documents the options.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

MODULE = "ansible.legacy.release_rollback"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        result.update(self._execute_module(module_name=MODULE, module_args=dict(self._task.args), task_vars=task_vars))
        if not result.get("failed") and "previous" in result:
            result["ansible_stats"] = {
                "data": {"release_rollback": outcome(result)},
                "per_host": True,
                "aggregate": False,
            }
        return result


def outcome(result):
    """What the host runs, as the role publishes it (relpromote.promotion.host_outcomes reads it)."""
    return {
        "previous": result.get("previous", ""),
        "current": result.get("current", ""),
        "switched": bool(result.get("switched")),
        "redeployed": False,
        "tampered": list(result.get("tampered") or []),
    }
