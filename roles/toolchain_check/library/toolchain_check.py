#!/usr/bin/python
"""Check a host against the team's pinned toolchain: the check `relpromote doctor` runs locally, on a dev host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: toolchain_check
short_description: Check a host against the team's pinned toolchain (toolchain.yml)
description:
  - Compares the host's OS family and version, the Python running this module, the ansible-core
    installed for it, the Ansible collections on the collection search path and the listed tools'
    versions with O(toolchain), the content of the project's C(toolchain.yml).
  - Fails, naming every mismatch with the change that fixes it, unless O(fail_on_mismatch) is false.
  - The checks are relpromote's own (C(relpromote/toolchain.py), shipped as module_utils), the very
    code C(relpromote doctor) runs on a developer's machine.
  - Changes nothing; supports check mode.
version_added: "1.0.0"
author: relpromote
options:
  toolchain:
    description: The toolchain file's mapping (os, python, ansible_core, collections, tools).
    type: dict
    required: true
  collection_paths:
    description: Where collections are looked for; default C(ANSIBLE_COLLECTIONS_PATH), else Ansible's default paths.
    type: list
    elements: str
  fail_on_mismatch:
    description: Fail the task when any check does not match.
    type: bool
    default: true
notes:
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Check this development host
  toolchain_check:
    toolchain: "{{ lookup('ansible.builtin.file', 'toolchain.yml') | from_yaml }}"
"""

RETURN = r"""
checks:
  description: Every check, as C({check, want, have, matches, fix}).
  returned: always
  type: list
  elements: dict
mismatches:
  description: How many checks did not match.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.relpromote_toolchain import ToolchainError, check_machine, parse_toolchain, probe


def main():
    module = AnsibleModule(
        argument_spec=dict(
            toolchain=dict(type="dict", required=True),
            collection_paths=dict(type="list", elements="str"),
            fail_on_mismatch=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    try:
        toolchain = parse_toolchain(module.params["toolchain"], "toolchain")
    except ToolchainError as exc:
        module.fail_json(msg=str(exc), checks=[], mismatches=0)
    checks = check_machine(toolchain, probe(toolchain, module.params["collection_paths"]))
    wrong = [check for check in checks if not check.matches]
    result = dict(changed=False, checks=[check.as_data() for check in checks], mismatches=len(wrong))
    if wrong and module.params["fail_on_mismatch"]:
        module.fail_json(msg=f"{len(wrong)} of {len(checks)} checks do not match the toolchain: "
                         + "; ".join(f"{check.name}: {check.fix}" for check in wrong), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
