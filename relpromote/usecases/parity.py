"""`parity ENV_A ENV_B`: gather facts from both environments' hosts with Ansible, compare, record.

The facts come from roles/parity_facts (playbooks/parity_facts.yml), one run per environment through
the project's one run description (usecases/runs.py). The salt of the configuration values' hashes
is random, new for each check, kept in a private file (control_path.RunTemp) for the length of the
check and never recorded: the hashes compare the two environments and mean nothing afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from relpromote import events
from relpromote.adapters.control_path import run_temp
from relpromote.adapters.runner import EventHandler, run_playbook
from relpromote.adapters.vault import vault_access
from relpromote.config import ParityConfig, Person
from relpromote.errors import BadInput, Refused
from relpromote.identity import Identity
from relpromote.parity import HostFacts, ParityReport, compare
from relpromote.policy import role_gate
from relpromote.project import Project
from relpromote.usecases.runs import environment_run

PARITY_PLAYBOOK = "playbooks/parity_facts.yml"


def check_credentials(project: Project, actor: Person, environment: str) -> None:
    """Facts of an environment whose credentials sit in a vault are gathered only by people trusted with them:
    those who may promote or roll back there."""
    if project.config.environment(environment).vault is None:
        return
    gates = [role_gate(project.config, actor, act, environment) for act in ("promote", "rollback")]
    if not any(gate.passed for gate in gates):
        raise Refused(f"parity refused: {environment}'s credentials are in its vault and {gates[0].reason}")


def gather(
    project: Project, environment: str, settings: ParityConfig, salt_file: Path,
    on_event: EventHandler | None = None, should_cancel: Callable[[], bool] | None = None,
) -> list[HostFacts]:
    """Every host of the environment's inventory, with the facts it reported or why it did not."""
    env = project.config.environment(environment)
    extravars = {
        "relpromote_environment": environment,
        "parity_facts_packages": list(settings.packages),
        "parity_facts_python_packages": list(settings.python_packages),
        "parity_facts_python_path": list(settings.python_path),
        "parity_facts_runtime": settings.runtime or "",
        "parity_facts_app_config": list(settings.app_config),
        "parity_facts_salt_file": str(salt_file),
    }
    with vault_access(env.vault) as access:
        run = run_playbook(environment_run(project, environment, PARITY_PLAYBOOK, f"parity-{environment}", extravars, access),
                           on_event=on_event, should_cancel=should_cancel)
    if run.canceled:
        raise BadInput(f"parity check stopped on request while gathering {environment}'s facts; nothing recorded")
    if not run.hosts:
        raise BadInput(f"no hosts in {env.inventory}; list {environment}'s hosts in its inventory")
    published = run.custom_stats.get("parity_facts") or {}
    hosts = []
    for name, result in sorted(run.hosts.items()):
        facts = published.get(name)
        if result.succeeded and isinstance(facts, dict):
            hosts.append(HostFacts.from_published(name, facts))
        else:
            why = "unreachable" if result.unreachable else "failed"
            hosts.append(HostFacts(name, (), {}, f"{why}: {result.message[:200] or run.status}"))
    return hosts


def check_parity(
    project: Project, identity: Identity, actor: Person, environment: str, reference: str,
    on_event: EventHandler | None = None, should_cancel: Callable[[], bool] | None = None,
) -> ParityReport:
    """How far `environment` is from mirroring `reference`; recorded in the ledger (parity.checked) either way."""
    config = project.config
    for name in (environment, reference):
        config.environment(name)
    if environment == reference:
        raise BadInput(f"parity compares two environments; got {environment} twice")
    for name in (environment, reference):
        check_credentials(project, actor, name)
    settings = config.parity
    with run_temp("parity") as folder:
        salt_file = folder / "salt"
        descriptor = os.open(salt_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
        mine = gather(project, environment, settings, salt_file, on_event, should_cancel)
        theirs = gather(project, reference, settings, salt_file, on_event, should_cancel)
    report = compare(environment, mine, reference, theirs, settings)
    project.ledger.append(events.PARITY_CHECKED, actor.name, identity, {**report.as_data(), "summary": report.summary()})
    return report
