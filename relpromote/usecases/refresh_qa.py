"""`refresh-qa`: production's data, masked, into QA — unattended, under QA's lock, recorded in the ledger.

Production is only read, by the read-only database role whose password sits in production's vault:
that vault file is handed to Ansible as an encrypted extra-vars file, decrypted in memory through
the vault client, and the role's password argument is only the expression `{{ <password_var> }}`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from relpromote import events
from relpromote.adapters.runner import EventHandler, run_playbook
from relpromote.adapters.secrets import MIN_SALT_LENGTH, check_source
from relpromote.adapters.vault import vault_access
from relpromote.config import Person
from relpromote.errors import BadInput, Busy, Refused, RunFailed
from relpromote.identity import Identity
from relpromote.inventory import host_variables
from relpromote.policy import require_role
from relpromote.project import Project
from relpromote.refresh import RefreshConfig, RefreshSummary, summary_from_result
from relpromote.usecases.locking import environment_lock
from relpromote.usecases.runs import environment_run

REFRESH_PLAYBOOK = "playbooks/refresh_qa_data.yml"
# The error kind of a refresh whose masking rules do not fit production (the plan refused them, or a rule breaks a CHECK
# constraint): nothing was copied.
MISFIT = "masking_misfit"
SWAP_TASK = "Swap the new database in as QA's"  # the one task after which QA has changed
SWAP_GRACE_SECONDS = 120.0  # a stop asked during the swap task waits for it (a rename: well under a second)


class _SwapWatch:
    """Follows the swap task through the run's events, so that a stop asked for lands before the swap or after it,
    never in the middle of it, and relpromote knows which."""

    def __init__(self, should_cancel: Callable[[], bool] | None, on_event: EventHandler | None) -> None:
        self.should_cancel = should_cancel
        self.on_event = on_event
        self.swap_started: float | None = None
        self.swapped: dict[str, Any] | None = None  # the swap task's summary once it has succeeded
        self.swap_seen = False  # the swap task started: unless it reported, QA may or may not have been swapped
        self.stop_asked = False

    def event(self, event: Mapping[str, Any]) -> None:
        data = event.get("event_data") or {}
        if str(data.get("task", "")).strip() == SWAP_TASK:
            kind = event.get("event")
            if kind == "runner_on_start":
                self.swap_started = time.monotonic()
                self.swap_seen = True
            elif kind == "runner_on_ok":
                self.swapped = dict((data.get("res") or {}).get("summary") or {})
                self.swap_started = None
            elif kind in ("runner_on_failed", "runner_on_unreachable"):
                self.swap_started = None
        if self.on_event is not None:
            self.on_event(event)

    def cancel(self) -> bool:
        if self.should_cancel is None or not (self.stop_asked or self.should_cancel()):
            return False
        self.stop_asked = True
        return self.swap_started is None or time.monotonic() - self.swap_started > SWAP_GRACE_SECONDS


def refresh_extravars(project: Project, refresh: RefreshConfig, dry_run: bool) -> dict[str, Any]:
    """The role's inputs: names, addresses and expressions only — never a secret's value."""
    source_inventory = project.resolve(project.config.environment(refresh.source.environment).inventory)
    address = refresh.source.address or host_variables(source_inventory, refresh.source.host).get("ansible_host", refresh.source.host)
    salt = refresh.salt
    extravars: dict[str, Any] = {
        "qa_data_refresh_hosts": refresh.target.host,
        "qa_data_refresh_database": refresh.database,
        "qa_data_refresh_target_database": refresh.qa_database,
        "qa_data_refresh_source_host": address,
        "qa_data_refresh_source_port": refresh.source.port,
        "qa_data_refresh_source_user": refresh.source.user,
        "qa_data_refresh_source_sslmode": refresh.source.sslmode,
        "qa_data_refresh_target_host": refresh.target.socket_dir,
        "qa_data_refresh_target_port": refresh.target.port,
        "qa_data_refresh_target_user": refresh.target.user,
        "qa_data_refresh_target_owner": refresh.target.owner or "",
        "qa_data_refresh_masking": {table: {c: r.model_dump(mode="json") for c, r in cols.items()} for table, cols in refresh.masking.items()},
        "qa_data_refresh_carry_over": list(refresh.carry_over),
        "qa_data_refresh_jobs": refresh.jobs,
        "qa_data_refresh_min_interval": refresh.min_interval,
        "qa_data_refresh_dry_run": dry_run,
        "qa_data_refresh_salt_file": salt.file or "",
        "qa_data_refresh_salt_command": salt.command or "",
    }
    if refresh.source.password_var:
        extravars["qa_data_refresh_source_password"] = "{{ " + refresh.source.password_var + " }}"
    if refresh.target.password_var:
        extravars["qa_data_refresh_target_password"] = "{{ " + refresh.target.password_var + " }}"
    return extravars


def refresh_qa(
    project: Project,
    identity: Identity,
    actor: Person,
    dry_run: bool = False,
    on_event: EventHandler | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> RefreshSummary:
    """Run the refresh under QA's lock. The ledger gets `refresh.started` before anything runs and `refresh.finished`
    after (a run without its finished entry was killed: in doubt). Asked to stop (should_cancel), the run ends with
    every process of it, before the swap (QA unchanged) or, if the swap had started, right after it."""
    refresh = project.config.refresh
    if refresh is None:
        raise BadInput(f"{project.config_path}: no refresh: section; describe the source, target, salt and masking (see README)")
    target_env = refresh.target.environment
    require_role(project.config, actor, "refresh", target_env)
    source_env = project.config.environment(refresh.source.environment)
    extravars = refresh_extravars(project, refresh, dry_run)
    vault_files = []
    if refresh.source.password_var:
        if source_env.vault is None:
            raise BadInput(f"refresh.source.password_var is set but environment {refresh.source.environment} has no vault; configure its vault")
        vault_file = project.resolve(source_env.inventory) / source_env.vault.file
        if not vault_file.is_file():
            raise BadInput(f"{vault_file}: no such vault file; create it with ansible-vault or fix vault.file")
        vault_files.append(str(vault_file))
    if refresh.salt.file is not None:
        check_source(refresh.salt, "refresh.salt", min_length=MIN_SALT_LENGTH)
    purpose = "dry run of a QA data refresh" if dry_run else "QA data refresh"
    watch = _SwapWatch(should_cancel, on_event)
    with environment_lock(project, target_env, actor.name, purpose) as lock, \
            vault_access(source_env.vault, project.config.environment(target_env).vault) as access:
        context = {"environment": target_env, "source_environment": refresh.source.environment, "lock_id": lock.lock_id}
        if not dry_run:
            project.ledger.append(events.REFRESH_STARTED, actor.name, identity,
                                  {**context, "source_database": refresh.database, "qa_database": refresh.qa_database})
        started = time.monotonic()
        try:
            run = run_playbook(
                environment_run(project, target_env, REFRESH_PLAYBOOK, "refresh-qa", extravars, access,
                                limit=refresh.target.host, extra_var_files=tuple(vault_files)),
                on_event=watch.event,
                should_cancel=watch.cancel,
            )
        except BaseException as exc:  # a bug or a second interruption: still recorded, the run already ended
            if not dry_run:
                failure = RefreshSummary(result="failed", source_database=refresh.database, qa_database=refresh.qa_database,
                                         duration_seconds=round(time.monotonic() - started, 3),
                                         message=f"relpromote failed during the run ({type(exc).__name__}); QA's state is in doubt")
                project.ledger.append(events.REFRESH_FINISHED, actor.name, identity, {**context, **failure.model_dump(mode="json")})
            raise
        published = run.custom_stats.get("qa_data_refresh")
        failed = [h for h in run.hosts.values() if not h.succeeded]
        busy = next((h for h in failed if h.busy), None)
        if watch.swapped:  # the swap is done: whatever came after it, QA has the new data
            summary = summary_from_result(watch.swapped)
        elif run.succeeded and published:
            summary = summary_from_result(published)
        else:
            if watch.swap_seen:
                detail = next((h.message for h in run.hosts.values() if h.message), "") or f"{run.status}, exit {run.rc}"
                message = (f"the run ended during the swap ({detail}); QA's database may or may not have been swapped: "
                           "check it before the next refresh")
            elif run.canceled or watch.stop_asked:
                message = ("stopped on request (SIGINT/SIGTERM) before the swap; every process of the run has ended "
                           "and QA's database is unchanged")
            else:
                message = next((h.message for h in run.hosts.values() if h.message), "") or \
                    f"ansible-playbook ended with {run.status} (exit {run.rc}) before the swap; QA's database is unchanged"
            summary = RefreshSummary(result="failed", source_database=refresh.database, qa_database=refresh.qa_database,
                                     duration_seconds=round(run.duration, 3), message=message[:500])
        if not dry_run:
            payload = {**context, "run_id": run.ident, **summary.model_dump(mode="json")}
            project.ledger.append(events.REFRESH_FINISHED, actor.name, identity, payload)
        refused = next((h for h in failed if h.error.get("kind") == "reader_refused"), None)
        if refused is not None:
            raise Refused(f"refresh.source.user {refresh.source.user} may not be the refresh's source: "
                          + "; ".join(refused.error.get("refused") or [refused.message]),
                          detail={"summary": summary.model_dump(mode="json")})
        if any(h.error.get("kind") == MISFIT for h in failed):
            raise BadInput(f"refresh.masking does not fit production: {failed[0].message}; fix the rules in {project.config_path}",
                           detail={"summary": summary.model_dump(mode="json")})
        if busy is not None and not watch.swapped:
            raise Busy(f"QA's database is busy: {busy.message}; try again when that refresh has finished",
                       detail={"summary": summary.model_dump(mode="json")})
    if summary.result == "failed":
        raise RunFailed(f"QA data refresh failed: {summary.message or run.status}",
                        detail={"summary": summary.model_dump(mode="json")})
    return summary


def check_reader(project: Project, identity: Identity, actor: Person) -> dict[str, Any]:
    """What production's reader role can do beyond reading, seen from QA's database host as the refresh connects:
    `refused` (it can write or more: never a source), `findings` (what to take away from it), `notes` (what PostgreSQL
    does not let anyone take away). Reads only; no lock, no ledger entry."""
    refresh = project.config.refresh
    if refresh is None:
        raise BadInput(f"{project.config_path}: no refresh: section; describe the source, target, salt and masking (see README)")
    require_role(project.config, actor, "refresh", refresh.target.environment)
    source_env = project.config.environment(refresh.source.environment)
    extravars = {**refresh_extravars(project, refresh, True), "qa_data_refresh_check_reader": True}
    vault_files: tuple[str, ...] = ()
    if refresh.source.password_var and source_env.vault is not None:
        vault_files = (str(project.resolve(source_env.inventory) / source_env.vault.file),)
    with vault_access(source_env.vault, project.config.environment(refresh.target.environment).vault) as access:
        run = run_playbook(environment_run(project, refresh.target.environment, REFRESH_PLAYBOOK, "refresh-qa-check-reader",
                                           extravars, access, limit=refresh.target.host, extra_var_files=vault_files))
    report = run.custom_stats.get("qa_data_refresh_reader")
    if not run.succeeded or not isinstance(report, dict):
        message = next((h.message for h in run.hosts.values() if h.message), "") or f"{run.status}, exit {run.rc}"
        raise RunFailed(f"could not check production's reader role: {message}")
    return {"user": refresh.source.user, "refused": list(report.get("refused") or []),
            "findings": list(report.get("findings") or []), "notes": list(report.get("notes") or [])}
