"""roles/release_deploy/module_utils/release_hostcall.py, pinned exactly (issue 18's mutation score): a module's work run
without Ansible's module library gives the result the module would have printed."""

from __future__ import annotations

import contextlib
from typing import Any

from tests.unit.host_modules import load_util

HOSTCALL = load_util("roles/release_deploy/module_utils/release_hostcall.py")


def test_the_result_of_exit_json_and_fail_json_and_of_a_work_that_gives_none() -> None:
    seen: list[tuple[dict[str, Any], bool]] = []

    def done(module: Any) -> None:
        seen.append((module.params, module.check_mode))
        module.exit_json(changed=True, version="1.0.0")
        raise AssertionError("exit_json returned")

    params = {"dest": "/opt/app"}
    assert HOSTCALL.run(done, params, "yes") == {"changed": True, "version": "1.0.0"}
    assert seen == [({"dest": "/opt/app"}, True)] and seen[0][0] is not params, "the work gets a copy of the parameters"
    assert HOSTCALL.run(done, params, 0) == {"changed": True, "version": "1.0.0"} and seen[1][1] is False

    def refused(module: Any) -> None:
        with contextlib.suppress(Exception):  # a work catching its own errors must not swallow the result
            module.fail_json(msg="refused", changed=False)
        raise AssertionError("fail_json returned")

    assert HOSTCALL.run(refused, {}, False) == {"msg": "refused", "changed": False, "failed": True}
    assert HOSTCALL.run(lambda module: None, {}, False) == {"failed": True, "msg": "the work ended without a result"}
    done_error = HOSTCALL.Done({"a": 1})
    assert done_error.result == {"a": 1} and str(done_error) == "done"
