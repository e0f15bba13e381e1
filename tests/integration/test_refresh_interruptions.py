"""A refresh never outlives `relpromote refresh-qa`: every way of stopping it leaves QA's database as it was.

One production database big enough that its masked copy takes seconds; one QA database per way of stopping the
run (SIGINT, SIGTERM and SIGKILL of relpromote; SIGKILL of ansible-playbook, of its worker, of the shell it wraps
the module in and of the module).
Each run is stopped while rows stream into the new database; then, for 60 seconds, QA's database must stay the
same database (same OID, same contents), and no process of the run may be left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from relpromote.testing.postgres import PostgresCluster, clusters
from tests.helpers import BIN, RELPROMOTE, Cli
from tests.integration.conftest import commit_project
from tests.integration.test_promote import ledger_payloads
from tests.integration.test_qa_refresh_engine import READER, READER_PASSWORD, fingerprint, seed_production, seed_qa
from tests.integration.test_refresh_qa import refresh_project

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
WATCH_SECONDS = 60


@dataclass
class Stopped:
    how: str
    qa_database: str
    project: Cli
    before: tuple[int, dict[str, object]]  # QA database's OID and contents
    result: subprocess.CompletedProcess[str] | None  # None: relpromote itself was killed
    at: float


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def _descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        for child in _children(frontier.pop()):
            found.append(child)
            frontier.append(child)
    return found


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def _environ(pid: int) -> bytes:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/environ").read_bytes()
    return b""


def run_processes(project: Cli, ports: tuple[int, ...] = ()) -> list[int]:
    """Processes of a refresh of this project: Ansible's (they run in the project or name it on their command line or in
    their environment: ANSIBLE_CONFIG) and the module's psql (its application name, to this module's servers: another
    module's refresh may run on the other pytest worker meanwhile)."""
    servers = {f"PGPORT={port}".encode() for port in ports}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        with contextlib.suppress(OSError):
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
        cwd = ""
        with contextlib.suppress(OSError):
            cwd = os.readlink(entry / "cwd")
        environ = _environ(pid)
        if (str(project.cwd) in _cmdline(pid) or cwd.startswith(str(project.cwd)) or str(project.cwd).encode() in environ
                or (b"PGAPPNAME=relpromote-refresh" in environ.split(b"\0") and servers & set(environ.split(b"\0")))):
            found.append(pid)
    return found


def qa_state(qa: PostgresCluster, database: str) -> tuple[int, dict[str, object]]:
    return int(qa.scalar("postgres", f"SELECT oid FROM pg_database WHERE datname = '{database}'")), fingerprint(qa, database)


def copying(qa: PostgresCluster, database: str) -> bool:
    return bool(qa.scalar(
        "postgres",
        "SELECT count(*) FROM pg_stat_progress_copy p JOIN pg_database d ON d.oid = p.datid "
        f"WHERE d.datname LIKE '{database}\\_\\_incoming\\_%' AND p.tuples_processed > 0",
    ))


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PostgresCluster, PostgresCluster, Path]]:
    base = Path(tempfile.mkdtemp(prefix="relpromote-refresh-stop-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, base, ignore_errors=True)
        started = cleanup.enter_context(clusters(base / "pg", "prod", "qa"))
        prod, qa = started["prod"], started["qa"]
        prod.create_role(READER, password=READER_PASSWORD, read_only=True)
        seed_production(prod, "shop", customers=300_000, orders_per_customer=1)
        yield prod, qa, base


def start_refresh(base: Path, prod: PostgresCluster, qa: PostgresCluster, name: str) -> tuple[Cli, subprocess.Popen[str]]:
    seed_qa(qa, name)
    (base / name).mkdir()
    project = refresh_project(base / name, prod, qa)
    config_path = project.cwd / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["refresh"]["target_database"] = name
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    commit_project(project, f"refresh into {name}")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "RELPROMOTE_IDENTITY": str(project.cwd / ".keys" / "nightly.key")}
    env.pop("RELPROMOTE_CONFIG", None)
    process = subprocess.Popen([RELPROMOTE, "refresh-qa"], cwd=project.cwd, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: copying(qa, name) or process.poll() is not None, 180, f"the copy into {name} to start")
    assert process.poll() is None, process.communicate()
    return project, process


def module_of(cli: subprocess.Popen[str]) -> int:
    """The pg_masked_refresh process: the parent of the psql processes it started."""
    psqls = [pid for pid in _descendants(cli.pid) if b"PGAPPNAME=relpromote-refresh" in _environ(pid).split(b"\0")]
    (module,) = {_parent(pid) for pid in psqls}
    return module


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def worker_of(cli: subprocess.Popen[str]) -> int:
    """The ansible-playbook worker running the module: its nearest ancestor that is a fork of ansible-playbook."""
    pid = _parent(module_of(cli))
    while "ansible-playbook" not in _cmdline(pid):
        pid = _parent(pid)
    assert pid != ansible_playbook_of_cli(cli), "expected a worker, found ansible-playbook itself"
    return pid


def ansible_playbook_of_cli(cli: subprocess.Popen[str]) -> int:
    (lifeline,) = [pid for pid in _children(cli.pid) if "relpromote.adapters.lifeline" in _cmdline(pid)]
    (playbook,) = _children(lifeline)
    return playbook


STOPS: dict[str, Callable[[PostgresCluster, Cli, subprocess.Popen[str]], None]] = {
    "sigint": lambda qa, project, cli: cli.send_signal(signal.SIGINT),
    "sigterm": lambda qa, project, cli: cli.send_signal(signal.SIGTERM),
    "kill_cli": lambda qa, project, cli: cli.kill(),
    "kill_playbook": lambda qa, project, cli: os.kill(ansible_playbook_of_cli(cli), signal.SIGKILL),
    "kill_worker": lambda qa, project, cli: os.kill(worker_of(cli), signal.SIGKILL),
    # Ansible wraps the module in two shells (worker -> sh -c -> sh -c -> python): killing the outer one must stop it too.
    "kill_shell": lambda qa, project, cli: os.kill(_parent(_parent(module_of(cli))), signal.SIGKILL),
    "kill_module": lambda qa, project, cli: os.kill(module_of(cli), signal.SIGKILL),
}


@pytest.fixture(scope="module")
def stopped(servers: tuple[PostgresCluster, PostgresCluster, Path]) -> list[Stopped]:
    prod, qa, base = servers
    runs = []
    for how, stop in STOPS.items():
        name = f"qa_{how}"
        project, cli = start_refresh(base, prod, qa, name)
        before = qa_state(qa, name)
        stop(qa, project, cli)
        at = time.monotonic()
        if how == "kill_cli":
            cli.wait(30)
            result = None
        else:
            out, err = cli.communicate(timeout=120)
            result = subprocess.CompletedProcess(cli.args, cli.returncode, out, err)
        wait_for(lambda project=project: not run_processes(project, (prod.port, qa.port)), 15, f"the processes of the {how} run to end")  # type: ignore[misc]
        runs.append(Stopped(how, name, project, before, result, at))
    # QA's databases, watched together: each for at least WATCH_SECONDS after its own run was stopped.
    deadline = runs[-1].at + WATCH_SECONDS
    while True:
        for run in runs:
            assert qa_state(qa, run.qa_database) == run.before, f"{run.how}: QA's database changed after the run was stopped"
            assert not run_processes(run.project, (prod.port, qa.port)), f"{run.how}: a process of the run came back"
        if time.monotonic() >= deadline:
            break
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
    return runs


@pytest.mark.parametrize("how", list(STOPS))
def test_a_stopped_refresh_leaves_qa_unchanged_and_recorded(how: str, stopped: list[Stopped]) -> None:
    run = next(r for r in stopped if r.how == how)
    started = ledger_payloads(run.project, "refresh.started")
    finished = ledger_payloads(run.project, "refresh.finished")
    assert len(started) == 1 and started[0]["qa_database"] == run.qa_database
    status = run.project.json("status", "--env", "qa")["environments"][0]["last_refresh"]
    if run.result is None:  # relpromote itself was killed: nothing could record the end, so the run is in doubt
        assert finished == []
        assert status["result"] == "in_doubt"
        return
    assert "Traceback" not in run.result.stderr, run.result.stderr
    assert run.result.returncode == 1, (run.result.returncode, run.result.stderr)
    (line,) = run.result.stdout.splitlines()  # the scheduler's JSON line, with the cause
    summary = json.loads(line)
    assert summary["result"] == "failed" and summary["exit_code"] == 1 and summary["message"]
    assert len(finished) == 1 and finished[0]["result"] == "failed" and status["result"] == "failed"
    if how in ("sigint", "sigterm"):
        assert "stopped on request" in finished[0]["message"] and "unchanged" in finished[0]["message"]
    assert run.project.json("lock", "status", "--env", "qa").get("lock") is None
