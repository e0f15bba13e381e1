"""ansible-runner, behind a typed seam.

Every run gets a fresh private data dir under the project's runs folder (ansible-runner lets a
stale `env/` override what we pass), `suppress_env_files=True`, no secret in envvars or extravars,
and the `artifacts/<id>/command` file — which holds the whole process environment — removed after
the run. Run folders are kept for inspection up to a retention count.

A run lives exactly as long as the command: ansible-playbook is started under
`relpromote.adapters.lifeline`, which ends every process of the run when relpromote asks (a
cancelled run), when relpromote dies (even by SIGKILL) or when ansible-playbook is killed. A cancel
callback is always given to ansible-runner, so it never installs its own signal handlers.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ansible_runner

from relpromote.adapters.control_path import RunTemp, ssh_envvars
from relpromote.adapters.execution_node import NodeRoute, run_through_node, stage_private_dir
from relpromote.adapters.known_hosts import host_key_problem, key_problem_of
from relpromote.adapters.lifeline import PR_SET_CHILD_SUBREAPER, end_run, prctl
from relpromote.deploy_tasks import STEP_TASKS, SWITCH_TASK
from relpromote.errors import BadInput

EventHandler = Callable[[Mapping[str, Any]], None]
# (environment, route): runs of that environment started while it is set go through its execution node
# (relpromote.usecases.node.through_node; docs/execution-node.md).
NODE_ROUTE: ContextVar[tuple[str, NodeRoute] | None] = ContextVar("relpromote_node_route", default=None)


@dataclass(frozen=True)
class PlaybookRun:
    playbook: Path
    inventory: Path
    project_dir: Path  # holds ansible.cfg; the run's working directory
    runs_dir: Path
    extravars: Mapping[str, Any] = field(default_factory=dict)  # never secrets: they land on a command line
    envvars: Mapping[str, str] = field(default_factory=dict)  # never secrets: ansible-runner records them
    limit: str | None = None
    check: bool = False
    vault_ids: tuple[str, ...] = ()
    extra_var_files: tuple[str, ...] = ()  # e.g. an encrypted vault file: decrypted by Ansible in memory
    label: str = "run"
    keep_runs: int = 20
    collection_playbook: str = ""  # an installed collection's playbook run instead of `playbook` (relpromote.release.promote)
    skip_tags: tuple[str, ...] = ()  # tasks left out of the play before it starts (--skip-tags): no task, no worker, no event


@dataclass(frozen=True)
class HostResult:
    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    message: str = ""
    failed_task: str = ""
    busy: bool = False  # the failing module said another run holds what it needs
    tasks: tuple[str, ...] = ()  # the tasks this host started, in order (what it may have done)
    error: Mapping[str, Any] = field(default_factory=dict)  # a failing module's `error` data (e.g. the restart hook's)

    @property
    def succeeded(self) -> bool:
        return not self.failed and not self.unreachable

    def as_data(self) -> dict[str, Any]:
        return {
            "host": self.host, "ok": self.ok, "changed": self.changed, "failed": self.failed,
            "unreachable": self.unreachable, "skipped": self.skipped, "message": self.message, "failed_task": self.failed_task,
        }


@dataclass(frozen=True)
class RunResult:
    ident: str
    rc: int
    status: str  # successful | failed | canceled | timeout
    duration: float
    hosts: dict[str, HostResult]
    custom_stats: dict[str, Any]
    private_data_dir: Path

    canceled: bool = False  # stopped on request (should_cancel): every process of the run has ended

    @property
    def succeeded(self) -> bool:
        return self.rc == 0 and self.status == "successful" and all(h.succeeded for h in self.hosts.values())

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())


def new_ident(label: str) -> str:
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}-{label}"


def run_playbook(
    run: PlaybookRun,
    on_event: EventHandler | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> RunResult:
    if not run.collection_playbook and not run.playbook.is_file():
        raise BadInput(f"{run.playbook}: no such playbook; restore it from `relpromote init` or check the project")
    if not run.inventory.exists():
        raise BadInput(f"{run.inventory}: no such inventory; create it or fix the environment's inventory in the config")
    # SSH control sockets only in a folder of this user's, checked before every run (control_path.py): exit 2 if not.
    ssh = ssh_envvars()
    ident = new_ident(run.label)
    private = run.runs_dir / ident
    # This login's alone while the run lasts, from the moment it exists: it holds the executable ansible-runner starts, so
    # in a folder shared with a group (`group:`) no other member may put or swap a file in it (given back at the end).
    private.mkdir(mode=0o700, parents=True)
    os.chmod(private, 0o700)
    local_temp = RunTemp("ansible")  # this user's, 0700; what a killed run left is removed by the next (control_path.py)
    cmdline = [f"--vault-id={vault_id}" for vault_id in run.vault_ids]
    cmdline += [f"--extra-vars=@{shlex.quote(path)}" for path in run.extra_var_files]
    if run.check:
        cmdline.append("--check")
    if run.skip_tags:
        cmdline.append(f"--skip-tags={shlex.quote(','.join(run.skip_tags))}")
    envvars = {
        "ANSIBLE_CONFIG": str(run.project_dir / "ansible.cfg"),
        "ANSIBLE_FORCE_COLOR": "0",
        **ssh,
        # Ansible's controller-side temp dir: a fresh one in the user's private folder instead of ~/.ansible/tmp, so a
        # scheduled job whose home is read-only (systemd's ProtectSystem=strict) still runs. Short, because Ansible
        # puts its ssh-agent's socket there (108-byte limit). An ANSIBLE_LOCAL_TEMP of the caller's wins.
        "ANSIBLE_LOCAL_TEMP": os.environ.get("ANSIBLE_LOCAL_TEMP") or str(local_temp.path),
        # ansible-runner finds ansible-playbook through PATH: the one installed beside us comes first.
        "PATH": f"{_ansible_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
        **run.envvars,
    }
    last_messages: dict[str, str] = {}
    failed_tasks: dict[str, str] = {}
    failed_steps: dict[str, str] = {}  # the step of release_live's failure (its result's `failure`), per host
    busy_hosts: set[str] = set()
    errors: dict[str, Mapping[str, Any]] = {}
    started_tasks: dict[str, list[str]] = {}
    per_host_stats: dict[str, dict[str, Any]] = {}
    final_stats: dict[str, Any] = {}
    early_output: list[str] = []

    def handle(event: Mapping[str, Any]) -> bool:
        data = event.get("event_data") or {}
        if not started_tasks and len(early_output) < 200 and event.get("stdout"):
            early_output.extend(str(event["stdout"]).splitlines())  # Ansible's own words, until a host starts a task
        if event.get("event") == "runner_on_start" and data.get("host"):
            started_tasks.setdefault(data["host"], []).append(str(data.get("task", "")).strip())
        if event.get("event") == "playbook_on_stats":
            final_stats.update(data)  # kept here so nothing re-reads the run's event files from disk
        # Also from a failed result: a task that publishes what the host runs and then fails by its failed_when (the role's
        # release_live, whose rescue names the failed step) still said it; Ansible keeps stats of successful results only.
        published = (data.get("res") or {}).get("ansible_stats") if event.get("event") in ("runner_on_ok", "runner_on_failed") else None
        if published and published.get("per_host") and data.get("host"):
            # ansible-runner's stats event carries only global set_stats data; per-host data is read here.
            per_host_stats.setdefault(data["host"], {}).update(published.get("data") or {})
        if event.get("event") in ("runner_on_failed", "runner_on_unreachable") and data.get("host"):
            result = data.get("res") or {}
            said = str(result.get("msg") or result.get("stderr") or "")
            last_messages[data["host"]] = (host_key_problem(said, run.extravars.get("relpromote_environment")) or said)[:500]
            if isinstance(result.get("error"), Mapping):
                errors[data["host"]] = result["error"]
            if not data.get("ignore_errors"):
                failed_tasks[data["host"]] = str(data.get("task", "")).strip()
                failed_steps[data["host"]] = str(result.get("failure") or "")
                if result.get("busy"):
                    busy_hosts.add(data["host"])
        if on_event is not None:
            on_event(event)
        return True

    lifeline = private / "lifeline.pid"
    binary = private / "ansible-playbook"
    binary.write_text(
        "#!/bin/sh\n"
        f"exec {shlex.quote(sys.executable)} -m relpromote.adapters.lifeline {os.getpid()} {shlex.quote(str(lifeline))} -- "
        f"{shlex.quote(str(Path(_ansible_bin_dir()) / 'ansible-playbook'))} \"$@\" {shlex.quote(run.collection_playbook or str(run.playbook))}\n"
    )
    binary.chmod(0o700)
    canceled = [False]

    def cancel() -> bool:
        # Called by ansible-runner about every 0.2 s. Ends the run through the lifeline and waits until it is over, so
        # that when run_playbook returns no process of the run is left.
        if canceled[0] or (should_cancel is not None and should_cancel()):
            canceled[0] = True
            _end_lifeline(lifeline)
            return True
        if lifeline.exists() and not _alive(_read_pid(lifeline)):
            # The lifeline itself was killed: its orphans were re-parented to us (a subreaper while the run lasts).
            end_run(os.getpid(), _read_bytes(lifeline.with_name(lifeline.name + ".cmdline")), reap_all=False)
        return False

    started = time.monotonic()
    routed = NODE_ROUTE.get()
    if routed is not None and run.extravars.get("relpromote_environment") == routed[0]:
        try:
            staged = stage_private_dir(private, run.project_dir, run.playbook, run.inventory, run.extravars)
            runner: Any = run_through_node(routed[1], private, ident, {**staged, "limit": run.limit, "cmdline": " ".join(cmdline) or None},
                                           str(run.playbook.resolve().relative_to(run.project_dir.resolve())), handle, should_cancel)
            canceled[0] = runner.status == "canceled"
        finally:
            local_temp.close()
            _scrub(private)
            _prune_runs(run.runs_dir, run.keep_runs)
        return _result(run, ident, runner, started, canceled[0], last_messages, failed_tasks, failed_steps, busy_hosts, errors, started_tasks,
                       per_host_stats, final_stats, early_output, private)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(run.project_dir),
            playbook=run.collection_playbook or str(run.playbook),
            inventory=str(run.inventory),
            extravars=dict(run.extravars),
            envvars=envvars,
            limit=run.limit,
            cmdline=" ".join(cmdline) or None,
            ident=ident,
            quiet=True,
            suppress_env_files=True,
            suppress_output_file=False,
            event_handler=handle,
            cancel_callback=cancel,
            binary=str(binary),
            settings={"pexpect_timeout": 0.2},
        )
    finally:
        prctl(PR_SET_CHILD_SUBREAPER, 0)
        local_temp.close()
        _scrub(private)
        _prune_runs(run.runs_dir, run.keep_runs)
    return _result(run, ident, runner, started, canceled[0], last_messages, failed_tasks, failed_steps, busy_hosts, errors, started_tasks,
                   per_host_stats, final_stats, early_output, private)


def _result(
    run: PlaybookRun, ident: str, runner: Any, started: float, was_canceled: bool, last_messages: dict[str, str],
    failed_tasks: dict[str, str], failed_steps: dict[str, str], busy_hosts: set[str], errors: dict[str, Mapping[str, Any]], started_tasks: dict[str, list[str]],
    per_host_stats: dict[str, dict[str, Any]], final_stats: dict[str, Any], early_output: list[str], private: Path,
) -> RunResult:
    canceled = [was_canceled]
    duration = time.monotonic() - started
    environment = run.extravars.get("relpromote_environment")
    for host, said in list(last_messages.items()):
        if LOST_BEFORE_SSH_SAID_WHY.search(said):
            last_messages[host] = (key_problem_of(run.inventory, host, environment) or said)[:500]
    stats = {key: final_stats.get(key) or {} for key in ("ok", "changed", "failures", "dark", "skipped", "processed", "rescued")}
    hosts: dict[str, HostResult] = {}
    names = set().union(*(set(stats.get(key, {})) for key in ("ok", "changed", "failures", "dark", "skipped", "processed")))
    for host in sorted(names | set(last_messages) | set(started_tasks)):
        failed = stats.get("failures", {}).get(host, 0)
        unreachable = stats.get("dark", {}).get(host, 0)
        failed_task = failed_tasks.get(host, "")
        step = failed_steps.get(host, "")
        if not failed and not unreachable and step and failed_task == SWITCH_TASK:
            # release_deploy's release_live failed a step and the block's rescue, which fails the host again under that
            # step's name, was cut short: once any_errors_fatal stopped the other hosts, a play with max_fail_percentage
            # (promote.yml) ends a rescue after its first task (ansible-core 2.19), and Ansible counts the host rescued.
            failed, failed_task = 1, STEP_TASKS.get(step, failed_task)
        hosts[host] = HostResult(
            host=host,
            ok=stats.get("ok", {}).get(host, 0),
            changed=stats.get("changed", {}).get(host, 0),
            failed=failed,
            unreachable=unreachable,
            skipped=stats.get("skipped", {}).get(host, 0),
            rescued=stats.get("rescued", {}).get(host, 0),
            message=last_messages.get(host, ""),
            failed_task=failed_task,
            busy=host in busy_hosts,
            tasks=tuple(started_tasks.get(host, ())),
            error=errors.get(host, {}),
        )
    custom = dict(final_stats.get("artifact_data") or {})
    for host, published in per_host_stats.items():
        for key, value in published.items():
            custom.setdefault(key, {})[host] = value
    # rc is None when ansible-playbook did not exit by itself (killed): a failure, never a crash.
    rc = runner.rc if isinstance(runner.rc, int) else -1
    status = "canceled" if canceled[0] else str(runner.status or "failed")
    if not hosts and not canceled[0] and rc != 0:
        # Ansible stopped before any host ran (vault password, inventory or group_vars YAML, a missing role): its reason.
        error = ansible_error(early_output)
        if error and run.collection_playbook and "could not be found" in error:
            error += " (content: in relpromote.yml names the collection; install it there: ansible-galaxy collection install -p PATH)"
        if error:
            raise BadInput(f"Ansible stopped before any host ran: {error}")
    return RunResult(ident, rc, status, duration, hosts, custom, private, canceled=canceled[0])


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Ansible's words for an ssh that ended while the module was being written to it: ssh refusing a host key exits at
# once, and under load Ansible may see only the broken pipe, never ssh's reason (asked of the host, key_problem_of).
LOST_BEFORE_SSH_SAID_WHY = re.compile(r"Data could not be sent to remote host|Broken pipe|Connection reset by peer")
ERROR_LINE = re.compile(r"^(?:\[ERROR\]:|ERROR!)\s*(.*)$")


def ansible_error(lines: list[str], limit: int = 400) -> str:
    """Ansible's first error, folded onto one line: its message and the lines right after it (e.g. `Origin: file:line`),
    never the source excerpt Ansible prints after a blank line, which could quote a secret from the offending file."""
    block: list[str] = []
    for raw in lines:
        line = ANSI.sub("", raw).strip()
        if not block:
            found = ERROR_LINE.match(line)
            if found:
                block.append(found.group(1))
            continue
        if not line:
            break
        block.append(line)
    text = " ".join(" ".join(block).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _end_lifeline(pid_file: Path, timeout: float = 30.0) -> None:
    """Ask the run's lifeline to end every process of the run, and wait until it has."""
    pid = _read_pid(pid_file)
    if not pid:
        return  # not started yet; ansible-runner kills what it started
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _ansible_bin_dir() -> str:
    beside = Path(sys.executable).parent
    if (beside / "ansible-playbook").exists():
        return str(beside)
    found = shutil.which("ansible-playbook")
    if found is None:
        raise BadInput("ansible-playbook is not installed; install relpromote with its dependencies (pip install relpromote)")
    return str(Path(found).parent)


def _scrub(private: Path) -> None:
    """Remove what ansible-runner writes that may hold the environment."""
    for command in private.glob("artifacts/*/command"):
        command.unlink()
    shutil.rmtree(private / "env", ignore_errors=True)


def _prune_runs(runs_dir: Path, keep: int) -> None:
    runs = sorted(p for p in runs_dir.iterdir() if p.is_dir())
    for old in runs[: max(0, len(runs) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
