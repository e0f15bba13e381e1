#!/usr/bin/python
"""One run at a time on a host: a lease on the host, taken before a promotion or rollback changes it.

Owns the file `<release_base_dir>/.relpromote-lock.json`. Two controllers, two clones of a project
(each with its own ledger and environment locks) or a plain ansible-playbook run of the playbooks
cannot change one host at the same time: the second is refused, naming the holder the host knows.
A lease expires (the host's own clock decides), so a killed controller blocks no host for ever.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_lock
short_description: Take, renew or release the host's lease for one promotion or rollback
description:
  - O(state=held) takes the lease in O(path) for the run O(run) (its C(id) is the lease's token),
    renews it when this run holds it already, and refuses (failed, RV(busy)) while another run
    holds a lease that has not expired, naming that run (RV(holder)).
  - A lease whose run is in O(breakable) (runs the caller's ledger knows are over) or whose
    expiry has passed is taken over; RV(broke) names the lease that was replaced.
  - Two runs that start together take hosts in parallel; so that one of them wins instead of
    each holding some hosts, a run waits up to O(wait) seconds for a lease held by a run that
    started after it (a younger run), and a younger run is refused at once.
  - Every read and write of the lease happens under an exclusive C(flock) of C(<path>.guard),
    held for milliseconds; the lease itself is written to a temporary file and renamed.
  - O(state=released) removes the lease when it is this run's (O(run) C(id), or O(token)); a
    lease of another run is left alone.
version_added: "1.0.0"
author: relpromote
options:
  path:
    description: The lease file, for example C(/opt/app/.relpromote-lock.json).
    type: path
    required: true
  state:
    description: C(held) to take or renew the lease, C(released) to give it back.
    type: str
    choices: [held, released]
    default: held
  run:
    description:
      - Who runs - C(id) (the token; empty makes one up), C(project), C(person), C(controller)
        (login@host), C(pid), C(purpose), C(started) (UTC, ISO 8601; decides which of two
        concurrent runs is the older).
    type: dict
    default: {}
  token:
    description: The token to release with O(state=released) when O(run) has no C(id).
    type: str
    default: ""
  ttl:
    description: Seconds the lease lasts from now; each O(state=held) renews it.
    type: int
    default: 1800
  wait:
    description: Seconds to wait for a lease held by a younger run to be given back.
    type: int
    default: 20
  breakable:
    description: Run ids whose leases may be taken over (their runs are known to be over).
    type: list
    elements: str
    default: []
notes:
  - Supports check mode (reports whether the lease could be taken, writes nothing).
"""

EXAMPLES = r"""
- name: Lock this host for the run
  release_lock:
    path: /opt/app/.relpromote-lock.json
    run: {id: 3f2a9c1e0b7d, person: oscar, controller: oscar@jump, pid: 4242, purpose: promotion of 1.4.0}
  register: host_lock

- name: Unlock this host
  release_lock:
    path: /opt/app/.relpromote-lock.json
    state: released
    token: "{{ host_lock.token }}"
"""

RETURN = r"""
token:
  description: The lease's token (the run's id, or one made up for a run without one).
  returned: always
  type: str
holder:
  description: The lease as the host holds it now (or, when refused, the other run's lease).
  returned: always
  type: dict
busy:
  description: True when another run holds the lease.
  returned: always
  type: bool
broke:
  description: The expired or breakable lease that was taken over, if any.
  returned: when one was
  type: dict
released:
  description: Whether this run's lease was removed (O(state=released)).
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_lease import ARGUMENT_SPEC, lease_command


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = lease_command(module.params, module.check_mode)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
