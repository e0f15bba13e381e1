"""Roll an environment back: by hand to its last accepted release, or automatically after a failure."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from relpromote import events
from relpromote.adapters.runner import EventHandler, run_playbook
from relpromote.adapters.vault import VaultAccess, vault_access
from relpromote.config import Person
from relpromote.errors import BadInput, NeedsPerson
from relpromote.identity import Identity
from relpromote.policy import require_role
from relpromote.project import Project
from relpromote.promotion import HostOutcome, host_outcomes
from relpromote.rollback import RollbackGroup, RollbackReport, automatic_rollback_groups, rollback_target
from relpromote.usecases.locking import environment_lock
from relpromote.usecases.runs import environment_run

ROLLBACK_PLAYBOOK = "playbooks/rollback.yml"


def _run_group(
    project: Project, environment: str, group: RollbackGroup, access: VaultAccess, on_event: EventHandler | None, limit: bool
) -> list[dict[str, Any]]:
    env = project.config.environment(environment)
    extravars: dict[str, Any] = {"relpromote_environment": environment, "relpromote_hosts": env.hosts, "release_version": group.target}
    if group.target:
        release = project.state().release(group.target)
        # The host verifies the sha256 before it unpacks; rollback() checked the stored bytes once already.
        extravars.update(release_digest=release.digest, release_artifact=str(project.store.path_for(release.digest)))
    run = run_playbook(
        environment_run(project, environment, ROLLBACK_PLAYBOOK, f"rollback-{environment}", extravars, access,
                        limit=",".join(group.hosts) if limit else None),
        on_event=on_event,
    )
    outcomes = {h.host: h for h in host_outcomes(run, "release_rollback")}
    names = group.hosts if limit else tuple(sorted(outcomes))
    report = []
    for name in names:
        outcome = outcomes.get(name)
        ok = outcome is not None and outcome.result.succeeded and (outcome.current or "") == group.target
        report.append({
            "host": name,
            "target": group.target,
            "ok": ok,
            "now_runs": outcome.current if outcome else None,
            "switched": bool(outcome and outcome.switched),
            "message": (outcome.result.message if outcome else "not reached by the rollback run") if not ok else "",
        })
    return report


def automatic_rollback(
    project: Project, environment: str, hosts: Sequence[HostOutcome], access: VaultAccess, on_event: EventHandler | None
) -> RollbackReport:
    """Put every host that switched (or may have) back on what it ran before the promotion."""
    report: list[dict[str, Any]] = []
    recorded = project.state().environments[environment].current
    for group in automatic_rollback_groups(hosts, recorded):
        report.extend(_run_group(project, environment, group, access, on_event, limit=True))
    return RollbackReport(all(h["ok"] for h in report), tuple(report))


def rollback(
    project: Project,
    identity: Identity,
    actor: Person,
    environment: str,
    version: str | None,
    reason: str,
    on_event: EventHandler | None = None,
) -> dict[str, Any]:
    env = project.config.environment(environment)
    require_role(project.config, actor, "rollback", environment)
    if not reason.strip():
        raise BadInput("--reason is empty; say why the environment is rolled back")
    state = project.state()
    target = rollback_target(state, environment, version)
    from_version = state.environments[environment].current
    project.store.verified_path(target.digest)  # a pruned host is redeployed from it: check it first
    with environment_lock(project, environment, actor.name, f"rollback to {target.version}"), vault_access(env.vault) as access:
        started = time.monotonic()
        hosts = _run_group(project, environment, RollbackGroup(target.version, ()), access, on_event, limit=False)
        if not hosts:
            raise BadInput(f"no hosts matched '{env.hosts}' in {env.inventory}; check the inventory")
        report = RollbackReport(all(h["ok"] for h in hosts), tuple(hosts))
        payload = {
            "environment": environment,
            "version": target.version,
            "digest": target.digest,
            "from_version": from_version,
            "reason": reason,
            "automatic": False,
            "result": "succeeded" if report.succeeded else "failed",
            "duration_s": round(time.monotonic() - started, 3),
            **report.as_data(),
        }
        project.ledger.append(events.ROLLBACK_FINISHED, actor.name, identity, payload)
    if not report.succeeded:
        raise NeedsPerson(
            f"rollback of {environment} to {target.version} failed on {', '.join(report.need_a_person)}: "
            f"{next(h['message'] for h in hosts if not h['ok'])}; these hosts need a person",
            detail=payload,
        )
    return payload
