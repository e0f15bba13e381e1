#!/usr/bin/python
"""Remove old releases, keeping the live one and the most recent ones in `.history` order.

Owns the rule for what a host keeps: decided by the order releases went live (the history),
never by modification times, and never the release the `current` link points to.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_prune
short_description: Remove old releases of a relpromote release directory
description:
  - Keeps O(keep) releases under C(<base_dir>/releases) - always the one C(<base_dir>/current)
    points to (and O(live), when given), then the most recently switched-to ones according to
    C(<base_dir>/.history), read from its end.
  - Removes every other release directory, including ones never recorded in the history, and
    leftovers of interrupted unpacks (C(.<version>.partial)).
  - Never decides by modification time; never removes what C(current) points to.
version_added: "1.0.0"
author: relpromote
options:
  base_dir:
    description: The application's base directory, holding C(releases/), C(current) and C(.history).
    type: path
    required: true
  keep:
    description: How many releases to keep, the live one included.
    type: int
    default: 5
  live:
    description:
      - Version the caller is making live; kept and counted as the newest even if C(current) does
        not point to it yet (check mode).
    type: str
notes:
  - Supports check mode, which reports what would be removed.
"""

EXAMPLES = r"""
- name: Keep the live release and the one before it
  release_prune:
    base_dir: /opt/app
    keep: 2
    live: 1.4.0
"""

RETURN = r"""
kept:
  description: Releases kept, live first, then newest first.
  returned: always
  type: list
  elements: str
removed:
  description: Release directories (and leftovers) removed, or that would be in check mode.
  returned: always
  type: list
  elements: str
"""

# Imports follow the documentation, as in every Ansible module.
import os  # noqa: E402
import posixpath  # noqa: E402
import shutil  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def history_newest_first(path):
    try:
        with open(path) as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except OSError:
        return []
    return list(reversed(lines))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            base_dir=dict(type="path", required=True),
            keep=dict(type="int", default=5),
            live=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    base_dir = module.params["base_dir"]
    keep = module.params["keep"]
    live = module.params["live"]
    if keep < 1:
        module.fail_json(msg=f"keep must be at least 1, not {keep}")
    releases = os.path.join(base_dir, "releases")
    link = os.path.join(base_dir, "current")

    current = None
    if os.path.islink(link):
        current = posixpath.basename(posixpath.normpath(os.readlink(link)))

    try:
        entries = sorted(os.listdir(releases))
    except OSError:
        entries = []
    unpacked = set()
    leftovers = []
    for entry in entries:
        path = os.path.join(releases, entry)
        if os.path.islink(path) or not os.path.isdir(path):
            continue
        if not entry.startswith("."):
            unpacked.add(entry)
        elif entry.endswith(".partial"):
            leftovers.append(entry)

    # Only releases still on disk count towards `keep`; the live ones are kept regardless.
    protected = [version for version in (live, current) if version]
    kept = []
    for version in protected + history_newest_first(os.path.join(base_dir, ".history")):
        if version not in kept and (version in protected or (version in unpacked and len(kept) < keep)):
            kept.append(version)
    removed = sorted(unpacked - set(kept)) + leftovers

    if not module.check_mode:
        for entry in removed:
            shutil.rmtree(os.path.join(releases, entry))

    module.exit_json(
        changed=bool(removed),
        kept=[version for version in kept if version in unpacked],
        removed=removed,
    )


if __name__ == "__main__":
    main()
