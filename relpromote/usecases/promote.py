"""Promote a release to an environment: gates, lock, artifact check, the playbook, automated tests, record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relpromote import events
from relpromote.adapters import git
from relpromote.adapters.runner import EventHandler, PlaybookRun, run_playbook
from relpromote.adapters.vault import vault_access
from relpromote.artifact import read_artifact
from relpromote.config import Person
from relpromote.errors import BadInput, RunFailed
from relpromote.identity import Identity
from relpromote.ledger import utc_now
from relpromote.policy import Verdict, committed_gate, promotion_verdict, valid_approval
from relpromote.project import Project
from relpromote.promotion import PromotionOutcome, host_outcomes
from relpromote.usecases.autotest import run_test_steps
from relpromote.usecases.locking import environment_lock

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


def plan_promotion(project: Project, actor: Person, request: PromoteRequest) -> Verdict:
    """Every gate the promotion must pass, evaluated now, without touching anything."""
    state = project.state()
    release = state.release(request.version)
    env = project.config.environment(request.environment)
    verdict = promotion_verdict(project.config, state, release, request.environment, actor, utc_now(), request.break_glass)
    commit, dirty = project_revision(project, request.environment)
    return Verdict((*verdict.gates, committed_gate(request.environment, env.protected, commit, dirty)))


def promote(
    project: Project,
    identity: Identity,
    actor: Person,
    request: PromoteRequest,
    on_event: EventHandler | None = None,
    on_plan: Callable[[Verdict], None] | None = None,
) -> PromotionOutcome:
    env = project.config.environment(request.environment)
    batch = validate_batch(request.batch)
    verdict = plan_promotion(project, actor, request)
    if on_plan is not None:
        on_plan(verdict)
    verdict.enforce(f"promotion of {request.version} to {request.environment}")
    state = project.state()
    release = state.release(request.version)
    artifact = project.store.verified_path(release.digest)
    contents = read_artifact(artifact)
    if contents.manifest.version != release.version:
        raise BadInput(f"artifact {release.digest[:12]} holds version {contents.manifest.version}, not {release.version}; restore the store")
    approval, _ = valid_approval(project.config, state, release, request.environment, actor, utc_now())
    commit, dirty = project_revision(project, request.environment)

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
    with environment_lock(project, request.environment, actor.name, purpose) as lock, vault_access(env.vault) as access:
        run = run_playbook(
            PlaybookRun(
                playbook=project.root / PROMOTE_PLAYBOOK,
                inventory=project.resolve(env.inventory),
                project_dir=project.root,
                runs_dir=project.root / ".relpromote" / "runs",
                extravars=extravars,
                envvars=access.envvars,
                vault_ids=access.vault_ids,
                limit=request.limit,
                check=request.check,
                label=f"promote-{request.environment}",
                keep_runs=project.config.runs.keep,
            ),
            on_event=on_event,
        )
        if not run.hosts:
            raise BadInput(
                f"no hosts matched '{env.hosts}'{f' limited to {request.limit!r}' if request.limit else ''} "
                f"in {env.inventory}; check the inventory or --limit"
            )
        evidence = run_test_steps(project, request.environment, release, access, on_event) if run.succeeded and not request.check else []
        tests_failed = [e for e in evidence if e["failed"] or e["errors"]]
        outcome = PromotionOutcome(
            version=release.version,
            digest=release.digest,
            environment=request.environment,
            check=request.check,
            succeeded=run.succeeded and not tests_failed,
            duration=run.duration,
            hosts=host_outcomes(run, "release_deploy"),
            run_id=run.ident,
            project_commit=commit,
            project_dirty=bool(dirty),
            extra={
                "requested_by": actor.name,
                "limit": request.limit,
                "batch": batch,
                "gates": verdict.as_data(),
                "approval": {"ticket": approval.ticket, "approver": approval.approver} if approval else None,
                "break_glass": request.break_glass,
                "evidence": evidence,
                "lock_id": lock.lock_id,
            },
        )
        if not request.check:
            project.ledger.append(events.PROMOTION_FINISHED, actor.name, identity, outcome.as_data())
    if not outcome.succeeded:
        if tests_failed:
            bad = tests_failed[0]
            raise RunFailed(
                f"{release.version} went live in {request.environment} but its {bad['kind']} tests failed "
                f"({bad['failed'] + bad['errors']} of {bad['tests']})",
                detail=outcome.as_data(),
            )
        failed = [h.host for h in outcome.hosts if not h.result.succeeded]
        raise RunFailed(
            f"promotion of {release.version} to {request.environment} failed on {', '.join(failed) or 'the run'}: "
            f"{next((h.result.message for h in outcome.hosts if h.result.message), run.status)}",
            detail=outcome.as_data(),
        )
    return outcome
