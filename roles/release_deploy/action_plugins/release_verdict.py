"""Fail a host with what a step of release_live reported: its message, and its `error` data.

release_live's action plugin returns a step's failure as a successful result, so that what the host
runs is published (Ansible keeps the stats of successful results only); the role then fails the host
in a task named after that step, with this action: on the controller only, no round trip. The one-line
`msg`, the `error` data ({step, command, rc, output, problem} for the restart hook) and `busy` are the step's,
so that relpromote records them as it would the step's own failure.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        step = self._task.args.get("result") or {}
        if not isinstance(step, dict):
            step = {}
        result.update(failed=True, msg=str(step.get("msg") or "the step failed"), failure=str(step.get("failure") or ""))
        if isinstance(step.get("error"), dict):
            result["error"] = step["error"]
        if step.get("busy"):
            # Another run holds the host: relpromote says so (exit 4), naming it.
            result.update(busy=True, holder=step.get("holder") or {})
        return result
