#!/usr/bin/python
"""Point the `current` link at a release atomically and record the switch in `.history`.

Owns the host's notion of "live": the link is replaced with rename(2), never removed first, so a
reader sees the old release or the new one and nothing in between.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_switch
short_description: Switch the current release link atomically and append it to the history
description:
  - Makes O(path) a symbolic link to O(target) by creating a temporary link beside it and renaming
    it over O(path) (C(rename(2))), so the link is never missing.
  - Changes nothing when O(path) already points to O(target).
  - After a switch, appends O(version) to O(history), one version per line, in the order the
    releases went live. When the link is already right but the last line of O(history) is not
    O(version) (a history that was lost or never kept), the line is appended too.
  - Refuses to switch to a release that is not completely unpacked (no C(.release/DIGEST)).
  - Refuses to switch to a release whose files differ from its manifest (C(.release/FILES.json), written
    by release_unpack from the verified artifact), naming what differs (RV(tampered)).
version_added: "1.0.0"
author: relpromote
options:
  path:
    description: The link, for example C(/opt/app/current).
    type: path
    required: true
  target:
    description:
      - What the link points to, relative to the directory of O(path), for example C(releases/1.4.0).
    type: str
    required: true
  version:
    description: The version written to O(history); defaults to the last component of O(target).
    type: str
  history:
    description: File the versions that went live are appended to; none when omitted.
    type: path
  files_digest:
    description:
      - The sha256 of the release's manifest (C(.release/FILES.json)) as the controller computed it from the verified
        artifact. The switch is refused (RV(tampered)) when the release's manifest is another one, rewritten on the host.
        Unset, the manifest on the host is trusted as it is.
    type: str
notes:
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Put 1.4.0 live
  release_switch:
    path: /opt/app/current
    target: releases/1.4.0
    history: /opt/app/.history
"""

RETURN = r"""
previous:
  description: Version the link pointed to before, or an empty string.
  returned: always
  type: str
current:
  description: Version the link points to now (in check mode, would point to).
  returned: always
  type: str
switched:
  description: Whether the link was (or, in check mode, would be) replaced.
  returned: always
  type: bool
history_appended:
  description: Whether a line was (or would be) appended to the history.
  returned: always
  type: bool
tampered:
  description: What differs between the release's files and its manifest (one line per path, the path then what differs), when the switch was refused for it.
  returned: when the release differs from its manifest
  type: list
  elements: str
"""

# Imports follow the documentation, as in every Ansible module. The switch itself lives in module_utils/release_live.py.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.release_live import Refused, last_line, switch, version_of  # noqa: E402, F401


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            target=dict(type="str", required=True),
            version=dict(type="str"),
            history=dict(type="path"),
            files_digest=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = switch(params["path"], params["target"], params["version"], params["history"], module.check_mode, params["files_digest"])
    except Refused as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
