"""`relpromote hosts trust --env ENV`: fetch each host's SSH keys, show their fingerprints for a person to confirm,
pin them in the environment's known_hosts, and record who trusted which key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relpromote import events
from relpromote.adapters import known_hosts
from relpromote.config import Person
from relpromote.errors import BadInput, Refused
from relpromote.identity import Identity
from relpromote.inventory import host_variables
from relpromote.policy import require_role
from relpromote.project import Project
from relpromote.usecases.plan import inventory_hosts


def scan(project: Project, environment: str) -> dict[str, Any]:
    """What every host of ENV presents now against what its known_hosts pins: per host, the keys and whether each is
    new, unchanged or changed. Changes nothing."""
    env = project.config.environment(environment)
    inventory = project.resolve(env.inventory)
    path = known_hosts.known_hosts_file(inventory)
    pinned = known_hosts.known_lines(path)
    hosts = []
    for name in inventory_hosts(inventory, env.hosts):
        variables = host_variables(inventory, name)
        address = str(variables.get("ansible_host") or name)
        port = int(variables.get("ansible_port") or 22)
        pattern = known_hosts.host_pattern(address, port)
        presented = known_hosts.keyscan(address, port)
        before = known_hosts.fingerprints(known_hosts.keys_for(pinned, pattern))
        old = {key.fingerprint for key in before}
        state = "unreachable" if not presented else "unchanged" if {k.fingerprint for k in presented} == old else (
            "changed" if old else "new")
        hosts.append({"host": name, "address": address, "port": port, "pattern": pattern, "state": state,
                      "keys": [key.as_data() for key in presented], "pinned_before": [key.as_data() for key in before],
                      "lines": [key.line.replace(key.line.split()[0], pattern, 1) for key in presented]})
    if not hosts:
        raise BadInput(f"no hosts matched '{env.hosts}' in {env.inventory}; check the inventory")
    return {"environment": environment, "known_hosts": str(path.relative_to(project.root)), "hosts": hosts}


def trust(
    project: Project, identity: Identity, actor: Person, environment: str, confirm: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    """Scan, ask `confirm` (a person, shown every fingerprint), then pin the keys and record `hosts.trusted`."""
    project.config.environment(environment)  # an unknown name is bad input (exit 2)
    require_role(project.config, actor, "promote", environment)  # who may change this environment's hosts
    found = scan(project, environment)
    unreachable = [h["host"] for h in found["hosts"] if h["state"] == "unreachable"]
    if unreachable:
        raise BadInput(f"no SSH host key could be fetched from {', '.join(unreachable)} (ssh-keyscan); "
                       "check that the hosts are up and the inventory's ansible_host/ansible_port")
    changing = [h for h in found["hosts"] if h["state"] != "unchanged"]
    if not changing:
        return {**found, "trusted": [], "recorded": False}
    if not confirm(found):
        raise Refused("the host keys were not confirmed; nothing was written")
    path = project.root / found["known_hosts"]
    known_hosts.rewrite(path, {h["pattern"]: h["lines"] for h in changing})
    payload = {
        "environment": environment,
        "known_hosts": found["known_hosts"],
        "hosts": [{key: h[key] for key in ("host", "address", "port", "state", "keys", "pinned_before")} for h in changing],
    }
    project.ledger.append(events.HOSTS_TRUSTED, actor.name, identity, payload)
    return {**found, "trusted": [h["host"] for h in changing], "recorded": True}
