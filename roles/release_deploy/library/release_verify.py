#!/usr/bin/python
"""Say what a host runs, without changing anything: the `current` link, the live release's digest and
files against its manifest, and the version the running application answers.

Owns the host's half of drift detection (`relpromote verify ENV`): relpromote compares what this module
reports with what its ledger says the environment runs.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_verify
short_description: Report what a relpromote host runs - link, digest, files, and the application's version
description:
  - Reads where C(<base_dir>/current) points, the live release's C(.release/DIGEST), and checks its files
    against its manifest (C(.release/FILES.json), written by release_unpack from the verified artifact),
    hashing every file when O(full).
  - Asks the application's health endpoint once which version it answers.
  - Changes nothing; uses only the Python standard library on the host.
version_added: "1.2.0"
author: relpromote
options:
  base_dir:
    description: The application's base directory, holding C(releases/) and C(current).
    type: path
    required: true
  service_host:
    description: Address the application listens on, as seen from the host.
    type: str
    default: localhost
  service_port:
    description: Port the application listens on.
    type: int
    default: 8080
  health_path:
    description: Path of the health endpoint.
    type: str
    default: /health
  full:
    description: Hash every file of the live release (else only those changed since the manifest was written, by ctime).
    type: bool
    default: true
  files_digest:
    description:
      - The sha256 of the live release's manifest (C(.release/FILES.json)) as the controller computed it from the verified
        artifact; a manifest that is another one (rewritten on the host) is named in RV(integrity). Unset, the manifest
        on the host is trusted as it is.
    type: str
  version:
    description: The release O(files_digest) belongs to; it applies only when C(current) points to it. Unset, to the live release.
    type: str
notes:
  - Supports check mode (it changes nothing in any mode).
"""

EXAMPLES = r"""
- name: Report what this host runs
  release_verify:
    base_dir: /opt/app
    service_host: 10.0.0.5
    service_port: 8080
  register: verified
"""

RETURN = r"""
current:
  description: The version C(current) points to (the last component of its target), or an empty string without a link.
  returned: always
  type: str
digest:
  description: The live release's C(.release/DIGEST), or an empty string.
  returned: always
  type: str
integrity:
  description: What differs between the live release's files and its manifest, one line per path; empty when intact.
  returned: always
  type: list
  elements: str
hashed:
  description: How many files were read.
  returned: always
  type: int
app:
  description: The health endpoint's answer, C({url, status, version, error}); status null when nothing answered.
  returned: always
  type: dict
"""

# Imports follow the documentation, as in every Ansible module.
import os  # noqa: E402
import posixpath  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.release_health import ask, health_url  # noqa: E402
from ansible.module_utils.release_integrity import check as check_tree  # noqa: E402

def main():
    module = AnsibleModule(
        argument_spec=dict(
            base_dir=dict(type="path", required=True),
            service_host=dict(type="str", default="localhost"),
            service_port=dict(type="int", default=8080),
            health_path=dict(type="str", default="/health"),
            full=dict(type="bool", default=True),
            files_digest=dict(type="str"),
            version=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    base_dir = params["base_dir"].rstrip("/") or "/"
    link = os.path.join(base_dir, "current")
    result = dict(changed=False, current="", link_target="", digest="", integrity=[], hashed=0)
    if os.path.islink(link):
        target = os.readlink(link)
        result.update(current=posixpath.basename(posixpath.normpath(target)), link_target=target)
        release = os.path.join(base_dir, target) if not target.startswith("/") else target
        try:
            with open(os.path.join(release, ".release", "DIGEST")) as handle:
                result["digest"] = handle.read().strip()
        except OSError:
            pass
        if os.path.isdir(release):
            try:
                applies = params["version"] in (None, result["current"])
                result["integrity"], result["hashed"] = check_tree(release, full=params["full"], expected=params["files_digest"] if applies else None)
            except OSError as exc:
                result["integrity"] = [f"{target}: cannot be read ({exc})"]
        else:
            result["integrity"] = [f"{target}: the link points to no release directory"]
    elif os.path.lexists(link):
        result["integrity"] = [f"{link}: not a symbolic link"]
    result["app"] = ask(health_url(params["service_host"], params["service_port"], params["health_path"])).as_dict()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
