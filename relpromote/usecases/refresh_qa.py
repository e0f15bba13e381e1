"""`refresh-qa`: production's data, masked, into QA — unattended, under QA's lock, recorded in the ledger.

Production is only read, by the read-only database role whose password sits in production's vault:
that vault file is handed to Ansible as an encrypted extra-vars file, decrypted in memory through
the vault client, and the role's password argument is only the expression `{{ <password_var> }}`.
"""

from __future__ import annotations

from typing import Any

from relpromote import events
from relpromote.adapters.runner import EventHandler, run_playbook
from relpromote.adapters.vault import vault_access
from relpromote.config import Person
from relpromote.errors import BadInput, Busy, RunFailed
from relpromote.identity import Identity
from relpromote.inventory import host_variables
from relpromote.policy import require_role
from relpromote.project import Project
from relpromote.refresh import RefreshConfig, RefreshSummary, summary_from_result
from relpromote.usecases.locking import environment_lock
from relpromote.usecases.runs import environment_run

REFRESH_PLAYBOOK = "playbooks/refresh_qa_data.yml"
PLAN_TASK = "Plan the copy and the masking"  # its failure: the masking rules do not fit production (nothing ran)


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
    project: Project, identity: Identity, actor: Person, dry_run: bool = False, on_event: EventHandler | None = None
) -> RefreshSummary:
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
    purpose = "dry run of a QA data refresh" if dry_run else "QA data refresh"
    with environment_lock(project, target_env, actor.name, purpose), \
            vault_access(source_env.vault, project.config.environment(target_env).vault) as access:
        run = run_playbook(
            environment_run(project, target_env, REFRESH_PLAYBOOK, "refresh-qa", extravars, access,
                            limit=refresh.target.host, extra_var_files=tuple(vault_files)),
            on_event=on_event,
        )
        published = run.custom_stats.get("qa_data_refresh")
        failed = [h for h in run.hosts.values() if not h.succeeded]
        if any(h.failed_task == PLAN_TASK for h in failed):
            raise BadInput(f"refresh.masking does not fit production: {failed[0].message}; fix the rules in {project.config_path}")
        if any(h.busy for h in failed):
            raise Busy(f"QA's database is busy: {failed[0].message}; try again when that refresh has finished")
        if run.succeeded and published:
            summary = summary_from_result(published)
        else:
            message = next((h.message for h in run.hosts.values() if h.message), run.status)
            summary = RefreshSummary(result="failed", source_database=refresh.database, qa_database=refresh.qa_database,
                                     duration_seconds=round(run.duration, 3), message=message[:500])
        if not dry_run:
            payload = {"environment": target_env, "source_environment": refresh.source.environment, "run_id": run.ident,
                       **summary.model_dump(mode="json")}
            project.ledger.append(events.REFRESH_FINISHED, actor.name, identity, payload)
    if summary.result == "failed":
        raise RunFailed(f"QA data refresh failed, QA is unchanged: {summary.message or run.status}",
                        detail={"summary": summary.model_dump(mode="json")})
    return summary
