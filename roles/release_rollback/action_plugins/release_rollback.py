"""Controller side of release_rollback: run its work with the host's Python, and publish what the host runs in the same task.

The work (library/release_rollback.py rollback_host: the host's lease, the target's integrity, the switch, the
restart, the health check, the witness, the lease given back) runs with the host's Python directly, without the
module wrapper (roles/release_deploy/action_plugins/_host_python.py says why and how; without pipelining the module
runs as usual, with the same result): a rollback is one command per host.

Instead of a set_stats task after the module (a worker process per host), the outcome is published as this task's
own `ansible_stats` (what set_stats returns), per host, under `release_rollback`: previous, current, switched,
redeployed (false: the redeploy path publishes again) and tampered. Published only when the work succeeded (Ansible
keeps stats of successful results only); the role's rescue publishes a failed host's outcome.
"""

from __future__ import annotations

import importlib.util
import os

from ansible.plugins.action import ActionBase

MODULE = "ansible.legacy.release_rollback"
# module_utils the work imports, each after those it imports; then the module file itself, whose rollback_host() is called.
UTILS = ("release_health", "release_hook", "release_integrity", "release_lease", "release_witness", "release_hostcall")


def _helper():
    spec = importlib.util.spec_from_file_location("relpromote_host_python", os.path.join(os.path.dirname(os.path.realpath(__file__)), "_host_python.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOST = _helper()


def sources():
    """[(name, source)]: the module_utils, then the module file (as release_rollback)."""
    utils = HOST.utils_dir(__file__)
    found = HOST.read_sources(utils, UTILS)
    with open(os.path.join(os.path.dirname(utils), "library", "release_rollback.py"), encoding="utf-8") as handle:
        found.append(("release_rollback", handle.read()))
    return found


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        if self._connection.is_pipelining_enabled():
            try:
                shipped = sources()
                params = HOST.checked(HOST.argument_spec(shipped[-1][1]), self._task.args)
            except (OSError, ValueError, SyntaxError) as exc:
                result.update(failed=True, msg="release_rollback: %s" % exc)
                return result
            done = HOST.run_on_host(self, HOST.program(shipped, "release_rollback", "rollback_host", params, self._task.check_mode), task_vars)
        else:
            done = None
        result.update(done if done is not None else self._execute_module(module_name=MODULE, module_args=dict(self._task.args), task_vars=task_vars))
        if not result.get("failed") and "previous" in result:
            result["ansible_stats"] = {"data": {"release_rollback": outcome(result)}, "per_host": True, "aggregate": False}
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
