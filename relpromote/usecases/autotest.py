"""Automated tests that run right after a release goes live; their JUnit results become evidence."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
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
    project: Project, environment: str, release: Release, access: VaultAccess, on_event: EventHandler | None,
    should_cancel: Callable[[], bool] | None = None,
) -> list[dict[str, Any]]:
    """Each step's evidence; once `should_cancel` says so, the running step is stopped and no other starts
    (the caller then treats the tests as interrupted, not as failed)."""
    env = project.config.environment(environment)
    cancel = should_cancel or (lambda: False)
    evidence = []
    for step in env.tests:
        if cancel():
            break
        if step.playbook:
            report = _run_playbook_step(project, environment, release, step, access, on_event, cancel)
        else:
            report = _run_command_step(project, environment, release, step, cancel)
        if cancel():
            break  # a step stopped half-way proves nothing either way: no evidence
        evidence.append(_store(project, step.kind, report))
    return evidence


def _run_playbook_step(
    project: Project, environment: str, release: Release, step: TestStep, access: VaultAccess, on_event: EventHandler | None,
    should_cancel: Callable[[], bool],
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
    run = run_playbook(environment_run(project, environment, step.playbook, f"test-{step.kind}-{environment}", extravars, access),
                       on_event=collect, should_cancel=should_cancel)
    if not run.succeeded and not any(failure for _, failure in cases):
        cases.append((f"{step.playbook} run", f"the test playbook ended {run.status} (rc {run.rc})"))
    return junit_report(step.kind, cases)


def _run_command_step(project: Project, environment: str, release: Release, step: TestStep, should_cancel: Callable[[], bool]) -> bytes:
    assert step.command is not None
    with run_temp("test") as folder:  # the operator's private folder; a killed run's is removed by the next
        output = Path(folder) / "junit.xml"
        env = {**os.environ, "RELEASE_VERSION": release.version, "RELEASE_DIGEST": release.digest,
               "RELPROMOTE_ENVIRONMENT": environment, "JUNIT_OUTPUT": str(output)}
        try:
            code, tail = _run_until_done(shlex.split(step.command), project.root, env, step.timeout, should_cancel)
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


def _run_until_done(
    command: list[str], cwd: Path, env: dict[str, str], timeout: float, should_cancel: Callable[[], bool]
) -> tuple[int, str]:
    """Run a test command in its own process group (a terminal's Ctrl-C reaches relpromote, which decides), stopped with
    its children when `should_cancel` says so or when `timeout` passes; its exit code and the tail of its output."""
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        deadline = time.monotonic() + timeout
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if should_cancel() or time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.communicate()
                    if time.monotonic() > deadline:
                        raise
                    return -1, "stopped: the run was interrupted"
        return process.returncode, (stderr or stdout).strip()[-300:]


def _store(project: Project, kind: str, report: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(report).hexdigest()
    folder = project.store.root / "evidence"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{digest}.xml").write_bytes(report)
    return {"kind": kind, "file": f"evidence/{digest}.xml", "sha256": digest, "automatic": True, **junit_counts(report, kind)}
