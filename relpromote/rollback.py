"""Rollbacks: which release an environment goes back to, and which hosts an automatic rollback moves.

Pure decisions; the rollback use case runs them with roles/release_rollback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from relpromote.deploy_tasks import HEALTH_TASK, SWITCH_TASK
from relpromote.errors import BadInput, Refused
from relpromote.promotion import HostOutcome
from relpromote.release import Release
from relpromote.state import ProjectState

# Tasks of roles/release_deploy whose failure means the release itself failed verification (not the
# infrastructure): such a release is marked and can never be promoted again.
VERIFICATION_TASKS = (HEALTH_TASK,)


def unusable(state: ProjectState, version: str) -> str | None:
    return state.unusable(version)


def rollback_target(state: ProjectState, environment: str, requested: str | None) -> Release:
    """The release to put back: the one named, or the last one live before the current one."""
    env = state.environments[environment]
    if env.current is None:
        raise BadInput(f"{environment} runs no recorded release; nothing to roll back")
    if requested is not None:
        release = state.release(requested)
        if requested == env.current and not env.drifted:  # hosts `verify` found off the record may go back to it
            raise BadInput(f"{environment} already runs {requested}; name an earlier release with --version")
        if requested not in env.live_history:
            raise Refused(f"{requested} was never live in {environment}; roll back only to a release that ran there")
        why = unusable(state, requested)
        if why:
            raise Refused(f"{requested} {why}; roll back to another release")
        return release
    for version in reversed(env.live_history):
        if version != env.current and version not in env.withdrawn and unusable(state, version) is None:
            return state.releases[version]
    raise BadInput(f"{environment} has no earlier accepted release to go back to; name one with --version")


@dataclass(frozen=True)
class RollbackGroup:
    """Hosts that go back to the same release ("" when they ran nothing before)."""

    target: str
    hosts: tuple[str, ...]


def may_have_switched(host: HostOutcome) -> bool:
    return host.switched or (not host.published and SWITCH_TASK in host.result.tasks)


def off_the_record(host: HostOutcome, environment_release: str | None) -> bool:
    """The host switched, may have, or said it runs something other than the environment's recorded release
    (e.g. a killed run left it on the target, and this run restarted it there without switching)."""
    return may_have_switched(host) or (host.published and (host.current or "") != (environment_release or ""))


def automatic_rollback_groups(hosts: Sequence[HostOutcome], environment_release: str | None) -> list[RollbackGroup]:
    """After a failure, every host that is, or may be, off the environment's recorded release goes back to it, whatever
    its link said before the run (out of service when nothing is recorded)."""
    names = sorted(host.host for host in hosts if off_the_record(host, environment_release))
    return [RollbackGroup(environment_release or "", tuple(names))] if names else []


def verification_failed(hosts: Sequence[HostOutcome], tests_failed: bool) -> bool:
    return tests_failed or any(h.result.failed_task in VERIFICATION_TASKS for h in hosts)


@dataclass(frozen=True)
class RollbackReport:
    succeeded: bool
    hosts: tuple[dict[str, Any], ...]

    @property
    def need_a_person(self) -> list[str]:
        return [h["host"] for h in self.hosts if not h["ok"]]

    def as_data(self) -> dict[str, Any]:
        return {"succeeded": self.succeeded, "hosts": list(self.hosts), "need_a_person": self.need_a_person}
