"""Roll an environment back: by hand to its last accepted release, automatically after a failure, or to the
recorded release after a run left hosts in doubt (reconcile)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from relpromote import events
from relpromote.adapters.control_path import private_folder
from relpromote.adapters.runner import EventHandler, run_playbook
from relpromote.adapters.vault import VaultAccess, vault_access
from relpromote.config import Person
from relpromote.errors import BadInput, Busy, NeedsPerson, Refused, RelpromoteError
from relpromote.identity import Identity
from relpromote.manifest import typed_text
from relpromote.policy import require_role
from relpromote.project import Project
from relpromote.promotion import HostOutcome, host_outcomes, one_line
from relpromote.release import Release
from relpromote.rollback import RollbackGroup, RollbackReport, automatic_rollback_groups, rollback_target
from relpromote.usecases.locking import environment_lock, host_run, unlock_hosts
from relpromote.usecases.node import through_node
from relpromote.usecases.plan import inventory_hosts
from relpromote.usecases.release_files import files_vars
from relpromote.usecases.runs import environment_run

ROLLBACK_PLAYBOOK = "playbooks/rollback.yml"


def _run_group(
    project: Project, environment: str, group: RollbackGroup, access: VaultAccess, on_event: EventHandler | None, limit: bool,
    run_vars: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    env = project.config.environment(environment)
    extravars: dict[str, Any] = {"relpromote_environment": environment, "relpromote_hosts": env.hosts, "release_version": group.target,
                                 **(run_vars or {})}
    pull = env.artifacts.url if env.artifacts.transfer == "pull" else None
    if group.target:
        release = project.state().release(group.target)
        stored = project.store.path_for(release.digest)
        # The host verifies the sha256 before it unpacks. Pushed: rollback() checked the stored bytes once already.
        # Pulled: a host that no longer has the release downloads it from the artifact server, as a promotion does.
        extravars.update(release_digest=release.digest, release_artifact=str(stored) if not pull or stored.exists() else "",
                         **({"relpromote_artifact_server": pull} if pull else {}))
        # A target whose manifest was rewritten on a host is redeployed. Not strict: an automatic rollback must run.
        extravars.update(files_vars(project, release, strict=False))
    # Never given a cancel request: a rollback runs to its end, whatever signals come (the terminal is told so).
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
            "busy": bool(outcome and outcome.result.busy),
            "message": (outcome.result.message if outcome else "not reached by the rollback run") if not ok else "",
        })
    return report


def automatic_rollback(
    project: Project, environment: str, hosts: Sequence[HostOutcome], access: VaultAccess, on_event: EventHandler | None,
    recorded: str | None, run_vars: Mapping[str, Any] | None = None,
) -> RollbackReport:
    """Put every host that is, or may be, off the environment's recorded release back on it."""
    report: list[dict[str, Any]] = []
    for group in automatic_rollback_groups(hosts, recorded):
        report.extend(_run_group(project, environment, group, access, on_event, limit=True, run_vars=run_vars))
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
    require_role(project.config, actor, "rollback", environment)
    if not reason.strip():
        raise BadInput("--reason is empty; say why the environment is rolled back")
    typed_text("--reason", reason)  # shown to people at terminals (history, show)
    state = project.state()
    target = rollback_target(state, environment, version)
    if project.config.environment(environment).artifacts.transfer != "pull":
        project.store.verified_path(target.digest)  # a pruned host is redeployed from it: check it first
    return _converge(project, identity, actor, environment, target, reason, on_event, reconcile=False)


def reconcile(
    project: Project, identity: Identity, actor: Person, environment: str, on_event: EventHandler | None = None
) -> dict[str, Any]:
    """Bring every host of the environment to its recorded release (out of service when none is recorded), settling the
    runs in doubt: after a killed promotion or rollback, or hosts changed outside relpromote."""
    require_role(project.config, actor, "rollback", environment)
    state = project.state()
    env_state = state.environments[environment]
    target = state.release(env_state.current) if env_state.current else None
    if target is not None and project.config.environment(environment).artifacts.transfer != "pull":
        project.store.verified_path(target.digest)
    in_doubt = ", ".join(f"{run['run']} of {run['version']} by {run['by']}" for run in env_state.in_doubt.values())
    reason = f"reconcile: settle {in_doubt}" if in_doubt else "reconcile: every host on the recorded release"
    return _converge(project, identity, actor, environment, target, reason, on_event, reconcile=True)


def _converge(
    project: Project, identity: Identity, actor: Person, environment: str, target: Release | None, reason: str,
    on_event: EventHandler | None, reconcile: bool,
) -> dict[str, Any]:
    """Every host of the environment on `target` (None: out of service), with intent and end recorded."""
    env = project.config.environment(environment)
    version = target.version if target else ""
    purpose = f"reconcile to {version or 'no release'}" if reconcile else f"rollback to {version}"
    with environment_lock(project, environment, actor.name, purpose) as lock, \
            vault_access(None if env.execution_node else env.vault) as access, \
            through_node(project, identity, actor, environment, lock.lock_id, version, target.digest if target else "", None, False):
        env_state = project.state().environments[environment]
        from_version, doubted = env_state.current, dict(env_state.in_doubt)
        planned = inventory_hosts(project.resolve(env.inventory), env.hosts)
        run = host_run(project, lock, purpose)
        private_folder()  # what this machine must provide before any run: refused here, no run was attempted
        common = {"environment": environment, "version": version, "digest": target.digest if target else "", "reason": reason,
                  "automatic": False, "reconcile": reconcile, "lock_id": lock.lock_id}
        project.ledger.append(events.ROLLBACK_STARTED, actor.name, identity, {
            **common, "from_version": None if reconcile else from_version, "hosts": planned, "in_doubt_before": sorted(doubted)})
        started = time.monotonic()
        recorded, report, hosts, payload = False, None, [], {}
        try:
            hosts = _run_group(project, environment, RollbackGroup(version, ()), access, on_event, limit=False, run_vars=run)
            report = RollbackReport(all(h["ok"] for h in hosts), tuple(hosts))
            reached = {h["host"] for h in hosts}
            doubted_hosts = {host for entry in doubted.values() for host in entry.get("hosts") or []}
            payload = {
                **common,
                "from_version": None if reconcile else from_version,
                "result": "succeeded" if report.succeeded and hosts else "failed",
                "duration_s": round(time.monotonic() - started, 3),
                **report.as_data(),
                "settles": sorted(doubted) if hosts else [],
                "unsettled": sorted(doubted_hosts - reached) if hosts else sorted(doubted_hosts),
            }
            project.ledger.append(events.ROLLBACK_FINISHED, actor.name, identity, payload)
            recorded = True
        except BaseException as exc:
            if not recorded:
                # The run's own refusals (BadInput: Ansible stopped before any host ran) touched no host.
                touched = [] if isinstance(exc, (BadInput, Refused)) else planned
                _record_abort(project, identity, actor, common, from_version if not reconcile else None, touched, exc)
            raise
        finally:
            if not (recorded and report is not None and report.succeeded):
                # A failure to give the leases back must not hide how the run ended: they expire (release_lock_ttl).
                with contextlib.suppress(RelpromoteError):
                    unlock_hosts(project, environment, run, access, on_event)
    what = "reconcile" if reconcile else "rollback"
    if not hosts:
        raise BadInput(f"no hosts matched '{env.hosts}' in {env.inventory}; check the inventory")
    if report is None or not report.succeeded:
        busy = next((h for h in hosts if h.get("busy")), None)
        if busy is not None:
            raise Busy(f"{what} of {environment} to {version or 'no release'} refused on {busy['host']}: {one_line(busy['message'])}; "
                       f"wait for that run, then run it again", detail=payload)
        raise NeedsPerson(
            f"{what} of {environment} to {version or 'no release'} failed on {', '.join(h['host'] for h in hosts if not h['ok'])}: "
            f"{one_line(next(h['message'] for h in hosts if not h['ok']))}; these hosts need a person",
            detail=payload,
        )
    return payload


def _record_abort(
    project: Project, identity: Identity, actor: Person, common: dict[str, Any], from_version: str | None, planned: list[str],
    exc: BaseException,
) -> None:
    payload = {**common, "from_version": from_version, "result": "failed", "reason": f"{common['reason']}; the run stopped: "
               f"{one_line(str(exc)) or type(exc).__name__}", "hosts": [], "need_a_person": [], "succeeded": False,
               "settles": [], "unsettled": planned}
    # If the ledger itself failed, the start stays and the run stays in doubt: the truth.
    with contextlib.suppress(Exception):
        project.ledger.append(events.ROLLBACK_FINISHED, actor.name, identity, payload)
