"""`relpromote verify ENV`: read what every host runs, compare it with the ledger, record the result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relpromote import events
from relpromote.adapters.runner import EventHandler, run_playbook
from relpromote.adapters.vault import vault_access
from relpromote.config import Person
from relpromote.errors import BadInput, RunFailed
from relpromote.identity import Identity
from relpromote.project import Project
from relpromote.usecases.release_files import files_vars
from relpromote.usecases.runs import environment_run
from relpromote.verify import HostCheck, check_host, summary_line, unreachable

VERIFY_PLAYBOOK = "playbooks/verify.yml"


def verify(
    project: Project, identity: Identity, actor: Person, environment: str, on_event: EventHandler | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Every host's link, live release (digest and files) and application answer against the ledger's record.

    Changes nothing on the hosts; records `verify.finished` (signed) with what each host runs and how it differs.
    Returns that record; `drift` tells whether any host differs (the CLI exits 3 then).
    """
    env = project.config.environment(environment)
    state = project.state()
    record = state.environments[environment]
    extravars: dict[str, Any] = {"relpromote_environment": environment, "relpromote_hosts": env.hosts}
    if record.current is not None and record.current in state.releases:
        # The recorded release's manifest as computed from its verified artifact: one rewritten on a host is drift.
        extravars.update(release_version=record.current, **files_vars(project, state.releases[record.current]))
    with vault_access(env.vault) as access:
        run = run_playbook(environment_run(project, environment, VERIFY_PLAYBOOK, f"verify-{environment}", extravars, access),
                           on_event=on_event, should_cancel=should_cancel)
    if run.canceled:  # a check stopped half-way says nothing about the hosts: not recorded as a verification
        raise RunFailed(f"verify {environment} stopped on request before every host was read; nothing recorded")
    if not run.hosts:
        raise BadInput(f"no hosts matched '{env.hosts}' in {env.inventory}; check the inventory")
    facts: dict[str, Any] = run.custom_stats.get("release_verify") or {}
    checks: list[HostCheck] = []
    for host, result in sorted(run.hosts.items()):
        if host in facts:
            checks.append(check_host(host, facts[host], record.current, record.current_digest))
        else:
            checks.append(unreachable(host, result.message or ("unreachable" if result.unreachable else "failed")))
    drifted = [c.host for c in checks if not c.agrees]
    payload = {
        "environment": environment,
        "expected": {"version": record.current, "digest": record.current_digest},
        "result": "drift" if drifted else "agrees",
        "drift": bool(drifted),
        "drifted": drifted,
        "reason": summary_line(environment, checks) if drifted else None,
        "hosts": [c.as_data() for c in checks],
        "run_id": run.ident,
        "duration_s": round(run.duration, 3),
    }
    project.ledger.append(events.VERIFY_FINISHED, actor.name, identity, payload)
    return payload
