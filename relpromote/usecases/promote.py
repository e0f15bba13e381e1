"""Promote a release to an environment: gates, lock, artifact check, the playbook, automated tests, record."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from relpromote import events
from relpromote.adapters import git
from relpromote.adapters.artifact_server import check_served_copy
from relpromote.adapters.control_path import private_folder
from relpromote.adapters.runner import EventHandler, HostResult, run_playbook
from relpromote.adapters.vault import VaultAccess, vault_access
from relpromote.config import Person
from relpromote.errors import BadInput, Busy, NeedsPerson, Refused, RelpromoteError, RunFailed
from relpromote.identity import Identity
from relpromote.ledger import Entry, utc_now
from relpromote.lock import Lock
from relpromote.manifest import typed_text
from relpromote.policy import Verdict, committed_gate, promotion_verdict, valid_approval
from relpromote.project import Project
from relpromote.promotion import HostOutcome, PromotionOutcome, host_failures, host_outcomes, one_line
from relpromote.release import Release
from relpromote.rollback import RollbackReport, automatic_rollback_groups, verification_failed
from relpromote.state import ProjectState
from relpromote.usecases.announce import announced  # issue 13: automatic announcements around a promotion (never fail it)
from relpromote.usecases.autotest import run_test_steps
from relpromote.usecases.locking import environment_lock, host_run, unlock_hosts
from relpromote.usecases.node import through_node
from relpromote.usecases.plan import current_plan, inventory_hosts
from relpromote.usecases.release_files import files_vars
from relpromote.usecases.rollback import automatic_rollback
from relpromote.usecases.runs import environment_run
from relpromote.usecases.verdicts import state_of

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


MAX_BATCH = 100_000  # hosts per batch: more than any inventory; Ansible's serial stalls on counts far beyond it


def validate_batch(batch: str | None) -> str | None:
    if batch is None:
        return None
    text = batch.strip()
    number = text[:-1] if text.endswith("%") else text
    if (not number.isascii() or not number.isdigit() or len(number) > 6 or int(number) < 1
            or (text.endswith("%") and int(number) > 100) or int(number) > MAX_BATCH):
        raise BadInput(f"--batch {batch!r}: give a host count from 1 to {MAX_BATCH} (e.g. 2) or a percentage from 1% to 100%")
    return text


def plan_promotion(
    project: Project, state: ProjectState, actor: Person, request: PromoteRequest, commit: str | None, dirty: list[str],
    plan: dict[str, Any] | None = None,
) -> Verdict:
    """Every gate the promotion must pass, evaluated now (on `plan`, what the promotion applies, when the caller has just
    read it), without touching anything."""
    release = state.release(request.version)
    env = project.config.environment(request.environment)
    verdict = promotion_verdict(project.config, state, release, request.environment, actor, utc_now(), request.break_glass,
                                plan if plan is not None else current_plan(project, request.environment))
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
    if request.break_glass is not None:
        typed_text("--break-glass", request.break_glass)  # recorded, and shown at terminals (history, show)
    state = project.state()
    release = state.release(request.version)
    commit, dirty = project_revision(project, request.environment)
    # Read once for the gates and the approval (it digests the playbooks, roles and inventory); the start's re-check reads it again.
    applied = current_plan(project, request.environment)
    verdict = plan_promotion(project, state, actor, request, commit, dirty, applied)
    if on_plan is not None:
        on_plan(verdict)
    verdict.enforce(f"promotion of {request.version} to {request.environment}")
    # The digest the ledger recorded at build, where the artifact's members were checked: same bytes, same checks passed.
    pull = env.artifacts.url if env.artifacts.transfer == "pull" else None
    if pull:
        # The hosts download it and check that digest themselves; the served copy is read once here so that a missing or
        # wrongly published artifact stops the run before any host is touched (relpromote/adapters/artifact_server.py).
        check_served_copy(pull, release.digest)
    # Pushed from here, so checked first; pulled, only read here for a check's restart hook, when this machine's store has it.
    stored = project.store.path_for(release.digest)
    artifact = project.store.verified_path(release.digest) if not pull else stored if stored.exists() else ""
    approval, _ = valid_approval(project.config, state, release, request.environment, actor, utc_now(), applied)

    extravars: dict[str, Any] = {
        "relpromote_environment": request.environment,
        "relpromote_hosts": env.hosts,
        "release_version": release.version,
        "release_digest": release.digest,
        "release_artifact": str(artifact),
        **({"relpromote_artifact_server": pull} if pull else {}),
        # What each host's manifest of the release must be: one rewritten on a host is unpacked again (release_files.py).
        **files_vars(project, release),
    }
    if batch:
        extravars["relpromote_batch"] = batch
    purpose = f"{'check of ' if request.check else ''}promotion of {release.version}"
    context = {
        "requested_by": actor.name, "limit": request.limit, "batch": batch, "gates": verdict.as_data(),
        "approval": {"ticket": approval.ticket, "approver": approval.approver} if approval else None,
        "break_glass": request.break_glass,
    }
    with announced(project, identity, actor, request), \
            environment_lock(project, request.environment, actor.name, purpose) as lock, \
            vault_access(None if env.execution_node else env.vault) as access, \
            through_node(project, identity, actor, request.environment, lock.lock_id, release.version, release.digest,
                         request.limit, request.check, tests=True):  # the node holds the vault password (docs/execution-node.md)
        run = Run(project, identity, actor, request, release, lock, access, on_event, should_cancel, commit, dirty, context)
        outcome = run.go(extravars, purpose)
    return outcome


class Run:
    """One promotion under its lock: intent recorded, hosts changed, tests, automatic rollback, end recorded."""

    def __init__(
        self, project: Project, identity: Identity, actor: Person, request: PromoteRequest, release: Release, lock: Lock,
        access: VaultAccess, on_event: EventHandler | None, should_cancel: Callable[[], bool] | None, commit: str | None,
        dirty: list[str], context: dict[str, Any],
    ) -> None:
        self.project, self.identity, self.actor, self.request, self.release, self.lock = project, identity, actor, request, release, lock
        self.access, self.on_event, self.should_cancel, self.commit, self.dirty, self.context = (
            access, on_event, should_cancel, commit, dirty, context)
        self.environment = request.environment
        self.recorded_end = False
        self.hosts_touched = False  # a playbook that may change hosts was started
        self.leases_out = False  # host leases of this run may still be held

    def stop_asked(self) -> bool:
        return self.should_cancel is not None and self.should_cancel()

    def go(self, extravars: dict[str, Any], purpose: str) -> PromotionOutcome:
        project, request = self.project, self.request
        # Read under the lock: the recorded release and the runs in doubt this run must bring to a recorded state.
        env_state = project.state().environments[self.environment]
        self.recorded, self.doubted = env_state.current, dict(env_state.in_doubt)
        self.planned = inventory_hosts(project.resolve(project.config.environment(self.environment).inventory),
                                       project.config.environment(self.environment).hosts)
        self.host_run = host_run(project, self.lock, purpose)
        # What this machine must provide before any run (the private SSH folder): refused here, no run was attempted.
        private_folder()
        if not request.check:
            what = f"promotion of {self.release.version} to {self.environment}"

            def still_promotable(entries: list[Entry]) -> None:
                # The gates again, on the ledger as it is when the start is written: a rejection, a ledger problem or the
                # end of an approval recorded since they were shown wins, and nothing has been started.
                plan_promotion(project, state_of(project, entries), self.actor, request, self.commit, self.dirty).enforce(what)

            project.ledger.append(events.PROMOTION_STARTED, self.actor.name, self.identity, {
                "environment": self.environment, "version": self.release.version, "digest": self.release.digest,
                "lock_id": self.lock.lock_id, "hosts": self.planned, "recorded_release": self.recorded,
                "in_doubt_before": sorted(self.doubted), **self.context,
            }, still_promotable)
        try:
            return self._go(extravars)
        except BaseException as exc:
            if not request.check and not self.recorded_end:
                self._record_abort(exc)
            raise
        finally:
            if self.leases_out:
                # A failure to give the leases back must not hide how the run ended: they expire (release_lock_ttl).
                with contextlib.suppress(RelpromoteError):
                    unlock_hosts(project, self.environment, self.host_run, self.access, self.on_event)

    def _go(self, extravars: dict[str, Any]) -> PromotionOutcome:
        project, request = self.project, self.request
        tests = project.config.environment(self.environment).tests
        keep = bool(tests) and not request.check
        # The leases outlive the automated tests: as long as every step may take, and a quarter of an hour more.
        lease = {"relpromote_lock_min_ttl": sum(step.timeout for step in tests) + 900} if keep else {}
        self.hosts_touched = self.leases_out = not request.check
        try:
            run = run_playbook(
                environment_run(project, self.environment, PROMOTE_PLAYBOOK, f"promote-{self.environment}",
                                {**extravars, **self.host_run, **lease, "relpromote_lock_keep": keep}, self.access,
                                limit=request.limit, check=request.check),
                on_event=self.on_event,
                should_cancel=self.should_cancel,
            )
        except (BadInput, Refused):
            # The run's refusals (no playbook, no inventory, Ansible stopped before any host ran, the execution node
            # refused the request): no host was touched.
            self.hosts_touched = self.leases_out = False
            raise
        # A signal that came as the playbook ended still stops the promotion: the terminal was told so.
        interrupted = run.canceled or self.stop_asked()
        busy = [h for h in run.hosts.values() if h.busy]
        if not run.hosts and not interrupted:
            env = project.config.environment(self.environment)
            self.hosts_touched = self.leases_out = False
            raise BadInput(
                f"no hosts matched '{env.hosts}'{f' limited to {request.limit!r}' if request.limit else ''} "
                f"in {env.inventory}; check the inventory or --limit"
            )
        hosts = host_outcomes(run, "release_deploy")
        self.leases_out = not request.check and not (run.succeeded and not keep and not interrupted)
        live = run.succeeded and not interrupted
        evidence: list[dict[str, Any]] = []
        tests_interrupted = False
        if live and not request.check:
            evidence = run_test_steps(project, self.environment, self.release, self.access, self.on_event, self.should_cancel)
            tests_interrupted = interrupted = self.stop_asked()
        # Tests stopped by a signal say nothing about the release: it stays promotable.
        tests_failed = [] if interrupted else [e for e in evidence if e["failed"] or e["errors"]]
        succeeded = live and not interrupted and not tests_failed
        report = None
        if not succeeded and not request.check and automatic_rollback_groups(hosts, self.recorded):
            report = automatic_rollback(project, self.environment, hosts, self.access, self.on_event, self.recorded,
                                        {**self.host_run, "relpromote_lock_keep": True})
        result = _result(succeeded, interrupted, report, bool(busy))
        reason = None if succeeded else _reason(hosts, run.status, tests_failed, interrupted, report, busy, tests_interrupted)
        settles, unsettled = self._settled(hosts, report, succeeded, bool(busy) and report is None)
        outcome = PromotionOutcome(
            version=self.release.version,
            digest=self.release.digest,
            environment=self.environment,
            check=request.check,
            succeeded=succeeded,
            duration=run.duration,
            hosts=hosts,
            run_id=run.ident,
            project_commit=self.commit,
            project_dirty=bool(self.dirty),
            extra={
                "result": result,
                "reason": reason,  # one line: what failed, where (host, command, exit code, output); None when succeeded
                **self.context,
                "evidence": evidence,
                "lock_id": self.lock.lock_id,
                "rollback": report.as_data() if report else None,
                "verification_failed": bool(report) and not interrupted and verification_failed(hosts, bool(tests_failed)),
                "recorded_release": self.recorded,
                "settles": settles,
                "unsettled": unsettled,
            },
        )
        if not request.check:
            project.ledger.append(events.PROMOTION_FINISHED, self.actor.name, self.identity, outcome.as_data())
            self.recorded_end = True
        if busy and report is None:
            holder = busy[0]
            raise Busy(f"promotion of {self.release.version} to {self.environment} refused: {holder.host}: {one_line(holder.message)}; "
                       "nothing changed; wait for that run, then promote again", detail=outcome.as_data())
        if not succeeded:
            raise _failure(outcome, reason or run.status, report, self.recorded)
        return outcome

    def _settled(
        self, hosts: tuple[HostOutcome, ...], report: RollbackReport | None, succeeded: bool, refused: bool
    ) -> tuple[list[str], list[str]]:
        """The earlier runs in doubt this run settles (it reached every host and knows where it left each), and the hosts
        in doubt it could not establish (they never said what they run, and no rollback reached them)."""
        if self.request.limit or refused or not self.doubted:
            return [], []
        known = {h["host"] for h in (report.hosts if report else ())}
        known |= {h.host for h in hosts if h.published and (succeeded or (h.current or "") == (self.recorded or ""))}
        doubted = {host for run in self.doubted.values() for host in run.get("hosts") or []}
        return sorted(self.doubted), sorted(doubted - known)

    def _record_abort(self, exc: BaseException) -> None:
        """The run stopped on an error of its own after its start was recorded: say so, and which hosts it may have left
        anywhere (all the planned ones once a playbook was started)."""
        message = one_line(str(exc)) or type(exc).__name__
        payload = {
            "environment": self.environment, "version": self.release.version, "digest": self.release.digest, "check": False,
            "result": "failed", "reason": f"the run stopped: {message}", "hosts": [], "switched": [],
            "lock_id": self.lock.lock_id, "verification_failed": False, "recorded_release": self.recorded,
            "settles": [], "unsettled": self.planned if self.hosts_touched else [], **self.context,
        }
        # If the ledger itself failed, the start stays and the run stays in doubt: the truth.
        with contextlib.suppress(Exception):
            self.project.ledger.append(events.PROMOTION_FINISHED, self.actor.name, self.identity, payload)
            self.recorded_end = True


def _result(succeeded: bool, interrupted: bool, report: RollbackReport | None, busy: bool = False) -> str:
    if succeeded:
        return "succeeded"
    if report is not None and not report.succeeded:
        return "rollback_failed"
    if interrupted:
        return "interrupted"
    if busy and report is None:
        return "busy"
    return "rolled_back" if report is not None else "failed"


def _rollback_failures(report: RollbackReport) -> str:
    by_message: dict[str, list[str]] = {}
    for host in report.hosts:
        if not host["ok"]:
            by_message.setdefault(one_line(str(host.get("message") or "")) or "failed", []).append(host["host"])
    return "; ".join(f"{', '.join(names)}: {message}" for message, names in by_message.items())


def _reason(
    hosts: tuple[HostOutcome, ...], status: str, tests_failed: list[dict[str, Any]], interrupted: bool, report: RollbackReport | None,
    busy: Sequence[HostResult] = (), tests_interrupted: bool = False,
) -> str:
    """Why the promotion did not succeed, on one line: each failed host with what failed there (for a
    restart hook: the command, its exit code and the last lines of its output), and what the automatic
    rollback could not do."""
    if tests_interrupted:
        what = "the run was interrupted during its automated tests (they say nothing about the release, which may be promoted again)"
    elif interrupted:
        what = "the run was interrupted"
    elif busy:
        what = f"{busy[0].host}: {one_line(busy[0].message)}"
    elif tests_failed:
        bad = tests_failed[0]
        what = f"its {bad['kind']} tests failed ({bad['failed'] + bad['errors']} of {bad['tests']})"
    else:
        what = host_failures(hosts) or f"the Ansible run ended {status}"
    if report is not None and not report.succeeded:
        what += f"; the automatic rollback failed on {_rollback_failures(report)}"
    return what


def _failure(outcome: PromotionOutcome, reason: str, report: RollbackReport | None, recorded: str | None) -> RunFailed | NeedsPerson:
    where = f"{outcome.version} to {outcome.environment}"
    if outcome.check:
        return RunFailed(f"check of {where} failed: {reason}; nothing changed", detail=outcome.as_data())
    what = f"promotion of {where} failed: {reason}"
    if report is None:
        # Said only of what the hosts reported: each one that said what it runs is on the recorded release.
        silent = [h.host for h in outcome.hosts if not h.published]
        on_record = f"{recorded}, the recorded release" if recorded else "no release, as recorded"
        said = f"; every host runs {on_record}" if not silent else (f"; the others run {on_record}" if len(silent) < len(outcome.hosts) else "")
        unknown = f"; {', '.join(silent)} did not say what it runs" if silent else ""
        unsettled = outcome.extra.get("unsettled") or []
        doubt = (f"; still in doubt: {', '.join(unsettled)} (relpromote reconcile --env {outcome.environment})" if unsettled else "")
        return RunFailed(f"{what}; no host switched to it{said}{unknown}{doubt}", detail=outcome.as_data())
    if not report.succeeded:
        return NeedsPerson(f"{what}: these hosts need a person", detail=outcome.as_data())
    back = ", ".join(f"{h['host']}→{h['target'] or 'out of service'}" for h in report.hosts)
    return RunFailed(f"{what}; rolled back {back}", detail=outcome.as_data())
