#!/usr/bin/python
"""Put an unpacked release live on a host in one module execution: switch, restart, health check, prune.

Composes module_utils/release_live.py (the switch of `current`, then what follows it) with the host's
lease (release_lease: renewed, so that a run holds the host from the first step to the last) and the
ledger's witness (release_witness). What used to be three module executions per host (switch, finish,
the lease) is one Python start-up on the host.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_live
short_description: Switch current to an unpacked release, restart when needed, wait for its health check, prune
description:
  - With O(lease), first renews (or takes) the host's lease for this run (C(<base_dir>/.relpromote-lock.json));
    while another run holds it, changes nothing and fails (RV(busy), RV(failure) C(lease)).
  - Switches C(<base_dir>/current) to C(releases/<version>) with one C(rename) and appends O(version) to
    C(<base_dir>/.history), as release_switch does; refuses a release that is not completely unpacked or
    whose files differ from its manifest (RV(failure) C(switch), RV(tampered)).
  - Then restarts the application when the link changed, when O(restart) is true or when the application
    does not answer O(version), waits for its health check and prunes, as release_finish does (RV(failure)
    C(restart), C(health), C(prune) or C(inputs)).
  - Once the application answers O(version), keeps O(witness) in C(<base_dir>/.relpromote-witness.json).
  - Never gives the lease back itself; the caller does once every host of the run is done (a host that
    finished first must stay held while another one's failure is rolled back).
version_added: "1.2.0"
author: relpromote
options:
  base_dir:
    description: The application's base directory, holding C(releases/), C(current) and C(.history).
    type: path
    required: true
  version:
    description: The unpacked release to put live (C(releases/<version>)); letters, digits, C(.), C(_), C(+), C(-).
    type: str
    required: true
  restart:
    description: Restart even when the link is already right (e.g. the release's files were just unpacked again).
    type: bool
    default: false
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
    description: The restart hook, as release_finish's O(restart_command); empty means C(<base_dir>/current/bin/restart).
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
  lease:
    description:
      - The host's lease for this run, as release_rollback's O(lease) (C(run), C(ttl), C(wait), C(breakable)),
        plus C(token) when the caller took it with a token of its own. Empty - none is taken.
    type: dict
    default: {}
  witness:
    description: The ledger head this run started from; kept once the application answers O(version). Empty - none.
    type: dict
    default: {}
  tampered:
    description: What the unpack found differing from the release's manifest (it unpacked the release again); returned as is.
    type: list
    elements: str
    default: []
  steps:
    description:
      - The steps this execution takes - C(switch) (with the lease), C(restart) (when needed), C(health) (the wait, the
        pruning, the witness). Fewer than all when the inventory's user tasks run between them (release_deploy's
        tasks/user_tasks_live.yml); in that order. None - the lease renewed and the link read, nothing changed.
    type: list
    elements: str
    choices: [switch, restart, health]
    default: [switch, restart, health]
  switched_earlier:
    description: Without C(switch) in O(steps), what the execution that switched returned, C({previous, switched}).
    type: dict
    default: {}
  files_digest:
    description:
      - The sha256 of the release's manifest (C(.release/FILES.json)) as the controller computed it from the verified
        artifact. The switch is refused (RV(tampered)) when the release's manifest is another one, rewritten on the host.
        Unset, the manifest on the host is trusted as it is.
    type: str
notes:
  - Supports check mode - says what would be switched, restarted and removed; takes no lease, writes no witness.
"""

EXAMPLES = r"""
- name: Switch the current link to the release
  release_live:
    base_dir: /opt/app
    version: 1.4.0
    service_host: 10.0.0.5
    keep: 5
"""

RETURN = r"""
previous:
  description: Version the link pointed to before, or an empty string.
  returned: unless another run holds the host
  type: str
current:
  description: Version the link points to now.
  returned: unless another run holds the host
  type: str
switched:
  description: Whether the link was (or, in check mode, would be) replaced.
  returned: unless another run holds the host
  type: bool
restarted:
  description: Whether the restart hook ran (in check mode, would run).
  returned: always
  type: bool
healthy:
  description: Whether the application answered 200 with O(version).
  returned: always
  type: bool
failure:
  description: Empty, or the step that failed - C(lease), C(switch), C(inputs), C(restart), C(health), C(prune).
  returned: always
  type: str
busy:
  description: True when another run holds the host's lease (nothing was changed).
  returned: always
  type: bool
token:
  description: The token of this run's lease on the host; empty without O(lease).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.release_live import ARGUMENT_SPEC, put_live  # noqa: E402


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = put_live(module.params, module.check_mode)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
