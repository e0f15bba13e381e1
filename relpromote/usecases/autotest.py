"""Automated tests that run right after a release goes live; their JUnit results become evidence."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from relpromote.adapters.control_path import run_temp
from relpromote.adapters.runner import EventHandler, run_playbook
from relpromote.adapters.vault import VaultAccess
from relpromote.config import TestStep
from relpromote.evidence import junit_counts, junit_report
from relpromote.project import Project
from relpromote.release import Release
from relpromote.usecases.runs import environment_run


def run_test_steps(
    project: Project, environment: str, release: Release, access: VaultAccess, on_event: EventHandler | None
) -> list[dict[str, Any]]:
    env = project.config.environment(environment)
    evidence = []
    for step in env.tests:
        if step.playbook:
            report = _run_playbook_step(project, environment, release, step, access, on_event)
        else:
            report = _run_command_step(project, environment, release, step)
        evidence.append(_store(project, step.kind, report))
    return evidence


def _run_playbook_step(
    project: Project, environment: str, release: Release, step: TestStep, access: VaultAccess, on_event: EventHandler | None
) -> bytes:
    assert step.playbook is not None
    env = project.config.environment(environment)
    cases: list[tuple[str, str | None]] = []

    def collect(event: Mapping[str, Any]) -> None:
        name = event.get("event")
        data = event.get("event_data") or {}
        if name in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
            result = data.get("res") or {}
            failure = None if name == "runner_on_ok" else str(result.get("msg") or name)
            cases.append((f"{data.get('host')}: {str(data.get('task', '')).strip()}", failure))
        if on_event is not None:
            on_event(event)

    extravars = {"relpromote_environment": environment, "relpromote_hosts": env.hosts, "release_version": release.version}
    run = run_playbook(environment_run(project, environment, step.playbook, f"test-{step.kind}-{environment}", extravars, access), on_event=collect)
    if not run.succeeded and not any(failure for _, failure in cases):
        cases.append((f"{step.playbook} run", f"the test playbook ended {run.status} (rc {run.rc})"))
    return junit_report(step.kind, cases)


def _run_command_step(project: Project, environment: str, release: Release, step: TestStep) -> bytes:
    assert step.command is not None
    with run_temp("test") as folder:  # the operator's private folder; a killed run's is removed by the next
        output = Path(folder) / "junit.xml"
        env = {**os.environ, "RELEASE_VERSION": release.version, "RELEASE_DIGEST": release.digest,
               "RELPROMOTE_ENVIRONMENT": environment, "JUNIT_OUTPUT": str(output)}
        try:
            result = subprocess.run(shlex.split(step.command), cwd=project.root, env=env, capture_output=True, text=True, timeout=step.timeout)
            code, tail = result.returncode, (result.stderr or result.stdout).strip()[-300:]
        except subprocess.TimeoutExpired:
            code, tail = -1, f"timed out after {step.timeout}s"
        except OSError as exc:
            code, tail = -1, f"cannot run: {exc.strerror}"
        if output.exists():
            report = output.read_bytes()
            if code != 0 and junit_counts(report, step.command)["failed"] == 0:
                report = junit_report(step.kind, [(step.command, f"exit {code}: {tail}")])
            return report
        return junit_report(step.kind, [(step.command, None if code == 0 else f"exit {code}: {tail}")])


def _store(project: Project, kind: str, report: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(report).hexdigest()
    folder = project.store.root / "evidence"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{digest}.xml").write_bytes(report)
    return {"kind": kind, "file": f"evidence/{digest}.xml", "sha256": digest, "automatic": True, **junit_counts(report, kind)}
