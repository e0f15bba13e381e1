"""Promote a release to an environment: gates, lock, artifact check, the playbook, automated tests, record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relpromote import events
from relpromote.adapters import git
from relpromote.adapters.runner import EventHandler, run_playbook
from relpromote.adapters.vault import vault_access
from relpromote.config import Person
from relpromote.errors import BadInput, NeedsPerson, RunFailed
from relpromote.identity import Identity
from relpromote.ledger import utc_now
from relpromote.policy import Verdict, committed_gate, promotion_verdict, valid_approval
from relpromote.project import Project
from relpromote.promotion import HostOutcome, PromotionOutcome, host_failures, host_outcomes, one_line
from relpromote.rollback import RollbackReport, may_have_switched, verification_failed
from relpromote.state import ProjectState
from relpromote.usecases.announce import announced  # issue 13: automatic announcements around a promotion (never fail it)
from relpromote.usecases.autotest import run_test_steps
from relpromote.usecases.locking import environment_lock
from relpromote.usecases.plan import current_plan
from relpromote.usecases.rollback import automatic_rollback
from relpromote.usecases.runs import environment_run

PROMOTE_PLAYBOOK = "playbooks/promote.yml"
# The paths a promotion applies besides the inventory: what must be committed for a protected environment.
APPLIED_PATHS = ("playbooks", "roles", "ansible.cfg")


@dataclass(frozen=True)
class PromoteRequest:
    version: str
    environment: str
    check: bool = False
    limit: str | None = None
    batch: str | None = None
    break_glass: str | None = None


def project_revision(project: Project, environment: str) -> tuple[str | None, list[str]]:
    """The project's commit and the uncommitted paths among those this environment's run applies."""
    commit = git.head_commit(project.root)
    if commit is None:
        return None, ["(the project is not a git repository with a commit)"]
    inventory = project.config.environment(environment).inventory
    return commit, git.dirty_paths(project.root, [inventory, *APPLIED_PATHS])


def validate_batch(batch: str | None) -> str | None:
    if batch is None:
        return None
    text = batch.strip()
    number = text[:-1] if text.endswith("%") else text
    if not number.isdigit() or int(number) < 1 or (text.endswith("%") and int(number) > 100):
        raise BadInput(f"--batch {batch!r}: give a host count (e.g. 2) or a percentage from 1% to 100%")
    return text


def plan_promotion(
    project: Project, state: ProjectState, actor: Person, request: PromoteRequest, commit: str | None, dirty: list[str]
) -> Verdict:
    """Every gate the promotion must pass, evaluated now, without touching anything."""
    release = state.release(request.version)
    env = project.config.environment(request.environment)
    verdict = promotion_verdict(project.config, state, release, request.environment, actor, utc_now(), request.break_glass,
                                current_plan(project, request.environment))
    return Verdict((*verdict.gates, committed_gate(request.environment, env.protected, commit, dirty)))


def promote(
    project: Project,
    identity: Identity,
    actor: Person,
    request: PromoteRequest,
    on_event: EventHandler | None = None,
    on_plan: Callable[[Verdict], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> PromotionOutcome:
    env = project.config.environment(request.environment)
    batch = validate_batch(request.batch)
    state = project.state()
    release = state.release(request.version)
    commit, dirty = project_revision(project, request.environment)
    verdict = plan_promotion(project, state, actor, request, commit, dirty)
    if on_plan is not None:
        on_plan(verdict)
    verdict.enforce(f"promotion of {request.version} to {request.environment}")
    # The digest the ledger recorded at build, where the artifact's members were checked: same bytes, same checks passed.
    artifact = project.store.verified_path(release.digest)
    approval, _ = valid_approval(project.config, state, release, request.environment, actor, utc_now(), current_plan(project, request.environment))

    extravars: dict[str, Any] = {
        "relpromote_environment": request.environment,
        "relpromote_hosts": env.hosts,
        "release_version": release.version,
        "release_digest": release.digest,
        "release_artifact": str(artifact),
    }
    if batch:
        extravars["relpromote_batch"] = batch
    purpose = f"{'check of ' if request.check else ''}promotion of {release.version}"
    with announced(project, identity, actor, request), \
            environment_lock(project, request.environment, actor.name, purpose) as lock, vault_access(env.vault) as access:
        run = run_playbook(
            environment_run(project, request.environment, PROMOTE_PLAYBOOK, f"promote-{request.environment}", extravars, access,
                            limit=request.limit, check=request.check),
            on_event=on_event,
            should_cancel=should_cancel,
        )
        interrupted = run.status == "canceled"
        if not run.hosts and not interrupted:
            raise BadInput(
                f"no hosts matched '{env.hosts}'{f' limited to {request.limit!r}' if request.limit else ''} "
                f"in {env.inventory}; check the inventory or --limit"
            )
        hosts = host_outcomes(run, "release_deploy")
        live = run.succeeded and not interrupted
        evidence = run_test_steps(project, request.environment, release, access, on_event) if live and not request.check else []
        tests_failed = [e for e in evidence if e["failed"] or e["errors"]]
        succeeded = live and not tests_failed
        report = None
        if not succeeded and not request.check and any(may_have_switched(h) for h in hosts):
            report = automatic_rollback(project, request.environment, hosts, access, on_event)
        result = _result(succeeded, interrupted, report)
        reason = None if succeeded else _reason(hosts, run.status, tests_failed, interrupted, report)
        outcome = PromotionOutcome(
            version=release.version,
            digest=release.digest,
            environment=request.environment,
            check=request.check,
            succeeded=succeeded,
            duration=run.duration,
            hosts=hosts,
            run_id=run.ident,
            project_commit=commit,
            project_dirty=bool(dirty),
            extra={
                "result": result,
                "reason": reason,  # one line: what failed, where (host, command, exit code, output); None when succeeded
                "requested_by": actor.name,
                "limit": request.limit,
                "batch": batch,
                "gates": verdict.as_data(),
                "approval": {"ticket": approval.ticket, "approver": approval.approver} if approval else None,
                "break_glass": request.break_glass,
                "evidence": evidence,
                "lock_id": lock.lock_id,
                "rollback": report.as_data() if report else None,
                "verification_failed": bool(report) and verification_failed(hosts, bool(tests_failed)),
            },
        )
        if not request.check:
            project.ledger.append(events.PROMOTION_FINISHED, actor.name, identity, outcome.as_data())
    if not succeeded:
        raise _failure(outcome, reason or run.status, report)
    return outcome


def _result(succeeded: bool, interrupted: bool, report: RollbackReport | None) -> str:
    if succeeded:
        return "succeeded"
    if report is not None and not report.succeeded:
        return "rollback_failed"
    if interrupted:
        return "interrupted"
    return "rolled_back" if report is not None else "failed"


def _rollback_failures(report: RollbackReport) -> str:
    by_message: dict[str, list[str]] = {}
    for host in report.hosts:
        if not host["ok"]:
            by_message.setdefault(one_line(str(host.get("message") or "")) or "failed", []).append(host["host"])
    return "; ".join(f"{', '.join(names)}: {message}" for message, names in by_message.items())


def _reason(
    hosts: tuple[HostOutcome, ...], status: str, tests_failed: list[dict[str, Any]], interrupted: bool, report: RollbackReport | None
) -> str:
    """Why the promotion did not succeed, on one line: each failed host with what failed there (for a
    restart hook: the command, its exit code and the last lines of its output), and what the automatic
    rollback could not do."""
    if interrupted:
        what = "the run was interrupted"
    elif tests_failed:
        bad = tests_failed[0]
        what = f"its {bad['kind']} tests failed ({bad['failed'] + bad['errors']} of {bad['tests']})"
    else:
        what = host_failures(hosts) or f"the Ansible run ended {status}"
    if report is not None and not report.succeeded:
        what += f"; the automatic rollback failed on {_rollback_failures(report)}"
    return what


def _failure(outcome: PromotionOutcome, reason: str, report: RollbackReport | None) -> RunFailed | NeedsPerson:
    where = f"{outcome.version} to {outcome.environment}"
    if outcome.check:
        return RunFailed(f"check of {where} failed: {reason}; nothing changed", detail=outcome.as_data())
    what = f"promotion of {where} failed: {reason}"
    if report is None:
        return RunFailed(f"{what}; no host had switched, nothing changed", detail=outcome.as_data())
    if not report.succeeded:
        return NeedsPerson(f"{what}: these hosts need a person", detail=outcome.as_data())
    back = ", ".join(f"{h['host']}→{h['target'] or 'out of service'}" for h in report.hosts)
    return RunFailed(f"{what}; rolled back {back}", detail=outcome.as_data())
