"""Promote a release to an environment: check the artifact and the project, run the playbook, record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relpromote import events
from relpromote.adapters import git
from relpromote.adapters.runner import EventHandler, PlaybookRun, run_playbook
from relpromote.artifact import read_artifact
from relpromote.config import Person
from relpromote.errors import BadInput, Refused, RunFailed
from relpromote.identity import Identity
from relpromote.project import Project
from relpromote.promotion import PromotionOutcome, host_outcomes

PROMOTE_PLAYBOOK = "playbooks/promote.yml"
# The paths a promotion applies: what must be committed for a protected environment.
APPLIED_PATHS = ("playbooks", "roles", "ansible.cfg")


@dataclass(frozen=True)
class PromoteRequest:
    version: str
    environment: str
    check: bool = False
    limit: str | None = None
    batch: str | None = None


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


def promote(
    project: Project,
    identity: Identity,
    actor: Person,
    request: PromoteRequest,
    on_event: EventHandler | None = None,
) -> PromotionOutcome:
    env = project.config.environment(request.environment)
    batch = validate_batch(request.batch)
    state = project.state()
    release = state.release(request.version)
    commit, dirty = project_revision(project, request.environment)
    if env.protected and dirty:
        raise Refused(
            f"{request.environment} is protected and the project has uncommitted changes in {', '.join(dirty[:3])}; "
            "commit them so what is applied can be reproduced"
        )
    artifact = project.store.verified_path(release.digest)
    contents = read_artifact(artifact)
    if contents.manifest.version != release.version:
        raise BadInput(f"artifact {release.digest[:12]} holds version {contents.manifest.version}, not {release.version}; restore the store")

    extravars: dict[str, Any] = {
        "relpromote_environment": request.environment,
        "relpromote_hosts": env.hosts,
        "release_version": release.version,
        "release_digest": release.digest,
        "release_artifact": str(artifact),
    }
    if batch:
        extravars["relpromote_batch"] = batch
    run = run_playbook(
        PlaybookRun(
            playbook=project.root / PROMOTE_PLAYBOOK,
            inventory=project.resolve(env.inventory),
            project_dir=project.root,
            runs_dir=project.root / ".relpromote" / "runs",
            extravars=extravars,
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
    outcome = PromotionOutcome(
        version=release.version,
        digest=release.digest,
        environment=request.environment,
        check=request.check,
        succeeded=run.succeeded,
        duration=run.duration,
        hosts=host_outcomes(run, "release_deploy"),
        run_id=run.ident,
        project_commit=commit,
        project_dirty=bool(dirty),
        extra={"requested_by": actor.name, "limit": request.limit, "batch": batch},
    )
    if not request.check:
        project.ledger.append(events.PROMOTION_FINISHED, actor.name, identity, outcome.as_data())
    if not outcome.succeeded:
        failed = [h.host for h in outcome.hosts if not h.result.succeeded]
        raise RunFailed(
            f"promotion of {release.version} to {request.environment} failed on {', '.join(failed) or 'the run'}: "
            f"{next((h.result.message for h in outcome.hosts if h.result.message), run.status)}",
            detail=outcome.as_data(),
        )
    return outcome


