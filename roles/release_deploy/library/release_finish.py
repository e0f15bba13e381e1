#!/usr/bin/python
"""Finish putting a release live: restart the application when needed, wait for it, prune.

Owns what happens after the switch, in one module execution (one Python start-up on the host
instead of a probe, a restart, a health check retried from the controller and a prune): the
decision to restart, the health wait, and the rule for what a host keeps - decided by the order
releases went live (the history), never by modification times, and never the release `current`
points to.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_finish
short_description: Restart the application of a relpromote release when needed, wait for its health check and prune
description:
  - When O(switched) is true, or the application does not answer O(version) on its health endpoint,
    runs the restart hook (no shell, no arguments added, in the release directory, stdin from
    C(/dev/null)) with C(RELEASE_BASE_DIR), C(RELEASE_DIR), C(RELEASE_VERSION),
    C(RELEASE_PREVIOUS_VERSION), C(RELEASE_ACTION) (C(deploy)), C(RELEASE_HEALTH_URL), C(APP_HOST)
    and C(APP_PORT) in its environment; a hook that cannot run or exits with anything but 0 fails
    (RV(failure) C(restart)) naming the command, its exit code and the last lines of its output
    (RV(error)).
  - After a restart, asks C(http://<service_host>:<service_port><health_path>) until it answers 200
    with a JSON body whose C(version) is O(version), for at most O(health_timeout) seconds, and
    fails (RV(failure) C(health)) saying what answered last when it does not.
  - Once the application answers O(version), keeps O(keep) releases under C(<base_dir>/releases) -
    always the one C(<base_dir>/current) points to and O(version), then the most recently
    switched-to ones according to C(<base_dir>/.history), read from its end - and removes every
    other release directory (including ones never recorded in the history) and leftovers of
    interrupted unpacks (C(.<version>.partial)). Never decides by modification time.
  - Stops, without restarting or removing anything more, once the controller that started it has
    gone away (its output is no longer read), so that an interrupted run does not go on behind the
    back of whoever now rolls the host back.
  - Uses only the Python standard library on the host.
version_added: "1.1.0"
author: relpromote
options:
  base_dir:
    description: The application's base directory, holding C(releases/), C(current) and C(.history).
    type: path
    required: true
  version:
    description: The version C(current) points to, which the application must answer.
    type: str
    required: true
  switched:
    description: Whether C(current) was just switched to O(version); the application is then restarted without asking it first.
    type: bool
    default: false
  previous:
    description: The version C(current) pointed to before the switch (C(RELEASE_PREVIOUS_VERSION) for the hook); empty on a first deploy.
    type: str
    default: ""
  keep:
    description: How many releases to keep, the live one included; at least 2.
    type: int
    default: 5
  service_host:
    description: Address the application listens on, as seen from the host itself.
    type: str
    default: localhost
  service_port:
    description: Port the application listens on.
    type: int
    default: 8080
  restart_command:
    description:
      - Command that restarts the application, split into arguments like a shell would but run
        without one; empty means C(<base_dir>/current/bin/restart). It must return once the
        application is started.
    type: str
    default: ""
  health_path:
    description: Path of the health endpoint, starting with C(/).
    type: str
    default: /health
  health_timeout:
    description: Seconds to wait for the health endpoint to answer O(version) after a restart; at least 1.
    type: int
    default: 30
notes:
  - Supports check mode, which asks the application which version it runs (a read-only GET, only
    when O(switched) is false), restarts nothing, waits for nothing, removes nothing, and reports
    what would be restarted and removed.
"""

EXAMPLES = r"""
- name: Restart the application if needed, wait until it answers 1.4.0, keep 5 releases
  release_finish:
    base_dir: /opt/app
    version: 1.4.0
    switched: true
    service_host: 10.0.0.5
    service_port: 8080
    keep: 5
"""

RETURN = r"""
restarted:
  description: Whether the restart hook ran (in check mode, would run).
  returned: always
  type: bool
restart_output:
  description: The last lines the restart hook printed (stdout and stderr together).
  returned: when the hook ran
  type: list
  elements: str
error:
  description:
    - Why the restart hook failed, C({step, command, rc, output, problem}) - C(step) C(hook) (it
      cannot run - RV(error.problem) says why) or C(restart) (it exited with RV(error.rc)),
      C(output) the last lines it printed.
  returned: when the restart hook could not run or failed
  type: dict
healthy:
  description: Whether the application answered 200 with O(version) (false in check mode after a would-be restart).
  returned: always
  type: bool
health:
  description: The last answer of the health endpoint, C({url, status, version, msg}); status -1 when nothing answered.
  returned: when the endpoint was asked
  type: dict
kept:
  description: Releases kept, live first, then newest first.
  returned: when pruning ran
  type: list
  elements: str
removed:
  description: Release directories (and leftovers) removed, or that would be in check mode.
  returned: when pruning ran
  type: list
  elements: str
failure:
  description:
    - Empty when the application answers O(version) and pruning is done; otherwise the step that
      failed, C(inputs), C(restart), C(health) (the application did not answer O(version) in time)
      or C(prune).
  returned: always
  type: str
"""

# Imports follow the documentation, as in every Ansible module. The steps live in module_utils/release_live.py.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.release_live import Failed, finish, health_url, plan_prune  # noqa: E402, F401


def main():
    module = AnsibleModule(
        argument_spec=dict(
            base_dir=dict(type="path", required=True),
            version=dict(type="str", required=True),
            switched=dict(type="bool", default=False),
            previous=dict(type="str", default=""),
            keep=dict(type="int", default=5),
            service_host=dict(type="str", default="localhost"),
            service_port=dict(type="int", default=8080),
            restart_command=dict(type="str", default=""),
            health_path=dict(type="str", default="/health"),
            health_timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    result = dict(changed=False, restarted=False, healthy=False, failure="")
    try:
        finish(module.params, module.check_mode, result)
    except Failed as exc:
        result.update(failure=exc.failure, changed=result["restarted"])
        if exc.error:
            result["error"] = exc.error
        module.fail_json(msg=exc.msg, **result)
    result["changed"] = bool(result["restarted"] or result.get("removed"))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
