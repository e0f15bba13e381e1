"""Processes of a QA refresh on the database host: the client programs, their sessions and pipelines, the scheduler,
and the controller's lifeline. Standard library only (shipped with pg_masked_refresh)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from types import FrameType
from typing import IO, Any

APPLICATION = "relpromote-refresh"
WORKDIR_PREFIX = "relpromote-refresh-"
PR_SET_PDEATHSIG = 1
CONTROLLER_POLL_SECONDS = 0.5

Params = dict[str, Any]


class RefreshError(Exception):
    """A step failed; `busy` when another refresh of the same database holds the lock."""

    def __init__(self, message: str, busy: bool = False, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.busy = busy
        self.error = error or {}  # structured data for relpromote (the module result's `error`)


class Interrupted(BaseException):
    """SIGTERM/SIGINT/SIGHUP: stop, drop the incoming database, leave QA as it was."""


# ---- quoting ----
def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """An E'' literal: correct whatever standard_conforming_strings says."""
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def qualified(schema: str, name: str) -> str:
    return f"{ident(schema)}.{ident(name)}"


def key_of(schema: str, name: str) -> str:
    """How relpromote names a table: `customers`, or `sales.customers` outside public."""
    return name if schema == "public" else f"{schema}.{name}"


def carry_key(key: str) -> str:
    """A table key in the plan's carry_over form, always schema-qualified."""
    return key if "." in key else f"public.{key}"


# ---- processes ----
def _die_with_parent() -> None:
    """Children die with this module even on SIGKILL, so a killed refresh leaves no copy running."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Children:
    """Every process the module starts, so one failure can stop all of them.

    All are started from the main thread: PR_SET_PDEATHSIG fires when the *thread* that forked dies.
    """

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(argv, preexec_fn=_die_with_parent, cwd="/", **kwargs)
        self.processes.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)


class Server:
    """How to run the client programs against one server, without a secret on any command line."""

    def __init__(self, bin_dir: str, children: Children, workdir: str, label: str, conn: Params, options: str) -> None:
        self.bin_dir = bin_dir
        self.children = children
        self.workdir = workdir
        self.label = label
        self.passfd: int | None = None
        self.base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PGHOST": conn["host"],
            "PGPORT": str(conn["port"]),
            "PGUSER": conn["user"],
            "PGAPPNAME": APPLICATION,
            "PGOPTIONS": options,
            "PGSSLMODE": conn.get("sslmode") or "prefer",
            "PGCONNECT_TIMEOUT": str(conn.get("connect_timeout") or 10),
            "PGCLIENTENCODING": "UTF8",
            "PGPASSFILE": "/dev/null",
        }
        if conn.get("password"):
            # An anonymous in-memory file (memfd): libpq reads it as PGPASSFILE through /proc/self/fd, it is
            # 0600 as libpq demands, and it vanishes with the process even on SIGKILL, unlike a temp file.
            self.passfd = os.memfd_create("pgpass", 0)
            os.fchmod(self.passfd, 0o600)
            os.write(self.passfd, f"*:*:*:{_pgpass_escape(conn['user'])}:{_pgpass_escape(conn['password'])}\n".encode())
            self.base_env["PGPASSFILE"] = f"/proc/self/fd/{self.passfd}"

    def close(self) -> None:
        if self.passfd is not None:
            os.close(self.passfd)
            self.passfd = None

    def env(self, database: str, options: str = "") -> dict[str, str]:
        env = dict(self.base_env, PGDATABASE=database)
        if options:
            env["PGOPTIONS"] = f"{env['PGOPTIONS']} {options}"
        return env

    def program(self, name: str) -> str:
        return os.path.join(self.bin_dir, name)

    def psql_argv(self, *extra: str) -> list[str]:
        # -X: no psqlrc; -w: never prompt; -q: only query results reach stdout.
        return [self.program("psql"), "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", *extra]

    def popen(self, argv: list[str], database: str, options: str = "", **kwargs: Any) -> subprocess.Popen[bytes]:
        fds = (self.passfd,) if self.passfd is not None else ()
        return self.children.start(argv, env=self.env(database, options), pass_fds=fds, **kwargs)

    def errfile(self, name: str) -> IO[bytes]:
        return open(os.path.join(self.workdir, f"{self.label}-{name}-{len(self.children.processes)}.err"), "w+b")

    def run(self, argv: list[str], database: str, what: str, stdin_text: str | None = None, options: str = "") -> str:
        """Run a program to completion; RefreshError with its stderr if it fails."""
        err = self.errfile(what.split()[0])
        stdin = subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL
        process = self.popen(argv, database, options, stdin=stdin, stdout=subprocess.PIPE, stderr=err)
        out, _ = process.communicate(stdin_text.encode() if stdin_text is not None else None)
        if process.returncode != 0:
            raise RefreshError(f"{what} failed on {self.label}: {_tail(err)}")
        return out.decode()

    def session(self, database: str, what: str) -> Session:
        return Session(self, database, what)


class Session:
    """A long-lived psql: one statement in, one line out (production's snapshot, QA's lock)."""

    def __init__(self, server: Server, database: str, what: str) -> None:
        self.server = server
        self.what = what
        self.err = server.errfile("session")
        self.process = server.popen(
            server.psql_argv("-A", "-t"), database, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err
        )

    def ask(self, statement: str) -> str:
        """Run a statement whose result is one line (single-line JSON for anything with rows)."""
        self._send(statement)
        return self.receive()

    def send(self, statement: str) -> None:
        """Start a one-line statement now and read its answer later with receive(): it runs meanwhile."""
        self._send(statement)

    def receive(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RefreshError(f"{self.what} failed on {self.server.label}: {self._error()}")
        return line.decode().rstrip("\n")

    def do(self, statement: str) -> None:
        """Run a statement without rows; a marker query after it proves it succeeded."""
        self._send(statement)
        if self.ask("SELECT 'ok'") != "ok":
            raise RefreshError(f"{self.what}: unexpected output on {self.server.label}")

    def _send(self, statement: str) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((statement.rstrip().rstrip(";") + ";\n").encode())
            self.process.stdin.flush()
        except BrokenPipeError:
            raise RefreshError(f"{self.what} failed on {self.server.label}: {self._error()}") from None

    def _error(self) -> str:
        self.process.wait()
        return _tail(self.err)

    def close(self) -> None:
        if self.process.poll() is not None:
            return
        try:
            assert self.process.stdin is not None
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


NO_ERROR_OUTPUT = "no error output"


def _tail(handle: IO[bytes]) -> str:
    """What went wrong, from a client program's stderr: PostgreSQL's ERROR line with its DETAIL and HINT when there is
    one (pg_restore echoes the failed SQL after it, which would otherwise bury it), else the last lines."""
    handle.flush()
    handle.seek(0)
    lines = [line.strip() for line in handle.read().decode("utf-8", "replace").splitlines() if line.strip()]
    errors = [index for index, line in enumerate(lines) if "ERROR:" in line or "FATAL:" in line]
    if errors:
        first = errors[0]
        context = [line for line in lines[first + 1:first + 8] if line.startswith(("DETAIL:", "HINT:"))]
        return " / ".join([lines[first], *context])[-800:]
    return " / ".join(lines[-3:])[-800:] or NO_ERROR_OUTPUT


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


class Job:
    """Something the scheduler runs in one of its slots."""

    label = ""

    def done(self) -> bool:
        raise NotImplementedError

    def output(self) -> str:
        raise NotImplementedError


class Command(Job):
    """One client program on one database: ANALYZE of a table, or the restore of its indexes."""

    def __init__(self, label: str, server: Server, database: str, argv: list[str], options: str = "") -> None:
        self.label = label
        self.err = server.errfile("command")
        self.out = tempfile.TemporaryFile(dir=server.workdir)  # noqa: SIM115 - read when the command is done
        self.process = server.popen(argv, database, options, stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)

    def done(self) -> bool:
        if self.process.poll() is None:
            return False
        if self.process.returncode != 0:
            raise RefreshError(f"{self.label} failed: {_tail(self.err)}")
        return True

    def output(self) -> str:
        self.out.seek(0)
        return self.out.read().decode()


class Pipeline(Job):
    """producer | consumer, the bytes going straight from one process to the other (no Python in between)."""

    def __init__(self, label: str, producer: tuple[Server, str, list[str], str], consumer: tuple[Server, str, list[str]]) -> None:
        source, source_db, source_argv, script = producer
        target, target_db, target_argv = consumer
        self.label = label
        self.out = tempfile.TemporaryFile(dir=target.workdir)  # noqa: SIM115 - read when the pipeline is done
        self.producer_err = source.errfile("producer")
        self.consumer_err = target.errfile("consumer")
        read_end, write_end = os.pipe()
        try:
            self.producer = source.popen(
                source_argv, source_db, stdin=subprocess.PIPE, stdout=write_end, stderr=self.producer_err
            )
            self.consumer = target.popen(target_argv, target_db, stdin=read_end, stdout=self.out, stderr=self.consumer_err)
        finally:
            os.close(read_end)
            os.close(write_end)
        assert self.producer.stdin is not None
        try:
            # A few kB: psql reads its script while it runs, so this never blocks for long.
            self.producer.stdin.write(script.encode())
            self.producer.stdin.close()
        except BrokenPipeError:
            pass  # the producer failed at once; done() reports why

    def done(self) -> bool:
        if self.producer.poll() is None or self.consumer.poll() is None:
            return False
        if self.producer.returncode != 0:
            reading = _tail(self.producer_err)
            # A consumer that failed (QA refused the connection: too many clients) leaves the producer writing into a
            # closed pipe, which ends it without a word: the consumer's error is the cause.
            if self.consumer.returncode != 0 and reading == NO_ERROR_OUTPUT:
                raise RefreshError(f"{self.label}: writing failed: {_tail(self.consumer_err)}")
            raise RefreshError(f"{self.label}: reading failed: {reading}")
        if self.consumer.returncode != 0:
            raise RefreshError(f"{self.label}: writing failed: {_tail(self.consumer_err)}")
        return True

    def output(self) -> str:
        self.out.seek(0)
        return self.out.read().decode()


Starter = Callable[[], Job]
Finisher = Callable[[Job], None]


class Scheduler:
    """Runs jobs `jobs` at a time in the order given; a finished one may queue follow-ups."""

    def __init__(self, jobs: int) -> None:
        self.jobs = max(1, jobs)
        self.pending: list[tuple[Starter, Finisher | None]] = []
        self.running: list[tuple[Job, Finisher | None, float]] = []
        self.timings: dict[str, float] = {}

    def add(self, start: Starter, finish: Finisher | None = None) -> None:
        self.pending.append((start, finish))

    def run(self) -> None:
        while self.pending or self.running:
            while self.pending and len(self.running) < self.jobs:
                start, finish = self.pending.pop(0)
                self.running.append((start(), finish, time.monotonic()))
            for entry in list(self.running):
                job, finish, started = entry
                if job.done():
                    self.running.remove(entry)
                    self.timings[job.label] = round(time.monotonic() - started, 3)
                    if finish is not None:
                        finish(job)
            time.sleep(0.01)


# ---- QA's state ----
def utcnow() -> datetime:
    return datetime.now(timezone.utc)  # noqa: UP017 - datetime.UTC needs Python 3.11; hosts may have 3.10


def find_bin_dir(configured: str) -> str:
    if configured:
        return configured
    root = "/usr/lib/postgresql"
    if os.path.isdir(root):
        versions = sorted(
            (v for v in os.listdir(root) if v.isdigit() and os.path.exists(os.path.join(root, v, "bin", "pg_dump"))), key=int
        )
        if versions:
            return os.path.join(root, versions[-1], "bin")
    found = shutil.which("pg_dump")
    if found:
        return os.path.dirname(found)
    raise RefreshError("pg_dump not found: install the PostgreSQL client (apt-get install postgresql-client) or set pg_bin_dir")


def sweep_stale_workdirs() -> None:
    """Remove the work folders of runs that were killed (SIGKILL leaves no chance to clean up): schema dumps only."""
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        if not name.startswith(WORKDIR_PREFIX):
            continue
        path = os.path.join(base, name)
        try:
            with open(os.path.join(path, "pid"), encoding="ascii") as handle:
                pid = int(handle.read())
        except (OSError, ValueError):
            continue  # not ours, or still being set up
        if not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(path, ignore_errors=True)



def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(f"interrupted by signal {signum}")


def _process_identity(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a living process: the start time tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[1]), fields[19].decode()


def ancestors() -> dict[int, str]:
    """The processes between this module and init, with their start times: the shells Ansible wraps the module in,
    then (local connection) the worker, ansible-playbook and relpromote, or (ssh) sshd's session."""
    chain: dict[int, str] = {}
    pid = os.getppid()
    while pid > 1 and pid not in chain:
        identity = _process_identity(pid)
        if identity is None:
            break
        chain[pid] = identity[1]
        pid = identity[0]
    return chain


ANCESTORS: dict[int, str] = {}


def controller_gone() -> bool:
    """True once the controller is gone: nobody reads our output any more (ansible-playbook's worker, or the ssh client
    that carries our output to it, was stopped or killed: poll() reports an error on our end of the pipe), or one of the
    processes between us and init at our start has died (a killed wrapper shell, worker, ansible-playbook or relpromote
    with the local connection; sshd's session over ssh)."""
    for pid, started in ANCESTORS.items():
        identity = _process_identity(pid)
        if identity is None or identity[1] != started:
            return True
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError):
        return False
    return any(mask & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, mask in events)


def bind_to_controller() -> None:
    """Stop this module (as SIGTERM would: the refresh drops what it built, QA stays as it was) as soon as the controller
    is gone, so a refresh never goes on, let alone swaps, behind the back of a command that was stopped or killed."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _raise_interrupted)
    ANCESTORS.update(ancestors())

    def watch() -> None:
        while not controller_gone():
            time.sleep(CONTROLLER_POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="controller-lifeline", daemon=True).start()


def require_controller() -> None:
    """The last check before an irreversible step."""
    if controller_gone():
        raise Interrupted("the controller is gone")

