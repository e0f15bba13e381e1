#!/usr/bin/python
"""Refresh a QA PostgreSQL database from production, masked, on the QA database host.

Only the Python standard library and the PostgreSQL client programs (psql, pg_dump, pg_restore)
are used, so the module runs on any database host. Data moves as
`COPY (SELECT <masked list> FROM ONLY t) TO STDOUT` on production piped, raw and without Python in
between, into `COPY t FROM STDIN` on a new QA database: production values leave production only
masked. See DOCUMENTATION for the guarantees and the order of the steps.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from types import FrameType
from typing import IO, Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: pg_masked_refresh
short_description: Refresh a QA PostgreSQL database from production with sensitive columns masked
description:
  - Runs on the QA database host. C(action=inspect) reads production's catalog (tables, columns,
    types, optionally exact row counts) and the state of QA. C(action=refresh) executes a plan made
    by relpromote (C(relpromote.refresh.plan_refresh)) from that catalog and the masking rules.
  - Production is only read, by a read-only role, in READ ONLY transactions that share one exported
    snapshot (C(pg_export_snapshot)); its credentials reach libpq through an in-memory PGPASSFILE
    (a memfd, never a file on disk, never a command line) and the salt through stdin SQL.
  - The schema is restored into a new database C(<db>__incoming_<time>) in three steps (pre-data,
    data, post-data, so indexes and foreign keys are built after the load and validate it); every
    table is streamed masked with COPY; QA tables listed for carry-over are copied from the current
    QA database; row counts and masked columns are verified; then the current database becomes
    C(<db>__previous) and the new one C(<db>) in one transaction.
  - Any failure or interruption before the swap drops the new database and leaves QA as it was; a
    new database left by a killed run is dropped at the next start.
options:
  action:
    description: C(inspect) reads, C(refresh) refreshes.
    type: str
    choices: [inspect, refresh]
    default: refresh
  source:
    description: Production's database server (read-only role).
    type: dict
    required: true
    suboptions:
      host: {description: Address of the server., type: str, required: true}
      port: {description: Port., type: int, default: 5432}
      database: {description: Database to copy., type: str, required: true}
      user: {description: Read-only role (member of pg_read_all_data)., type: str, required: true}
      password: {description: Its password., type: str, default: "", no_log: true}
      sslmode: {description: libpq sslmode., type: str, default: prefer}
      connect_timeout: {description: Seconds., type: int, default: 10}
  target:
    description: QA's database server, usually local.
    type: dict
    required: true
    suboptions:
      host: {description: Socket directory or address., type: str, default: /var/run/postgresql}
      port: {description: Port., type: int, default: 5432}
      database: {description: QA's database name., type: str, required: true}
      user: {description: Role with CREATEDB that owns QA's database., type: str, default: postgres}
      password: {description: Its password., type: str, default: "", no_log: true}
      maintenance_database: {description: Database to connect to for CREATE/ALTER/DROP DATABASE., type: str, default: postgres}
      owner: {description: Owner of the new database and its objects (default the user)., type: str, default: ""}
  plan:
    description: The plan (C(RefreshPlan.for_module())); required for C(refresh).
    type: dict
  salt:
    description: Masking salt; set in each production session with set_config, never in SQL text on a command line.
    type: str
    no_log: true
  jobs:
    description: Tables copied at the same time.
    type: int
    default: 2
  min_interval:
    description: Seconds; when QA's database was refreshed more recently, do nothing (changed=false).
    type: int
    default: 0
  count_rows:
    description: With C(inspect), count every table's rows exactly (production) and the carried-over tables' (QA).
    type: bool
    default: false
  carry_over:
    description: With C(inspect), QA tables (schema.table) kept across refreshes, whose rows are counted.
    type: list
    elements: str
    default: []
  pg_bin_dir:
    description: Folder of psql, pg_dump and pg_restore; default the newest /usr/lib/postgresql/*/bin, else PATH.
    type: str
    default: ""
requirements:
  - Python >= 3.10 and the PostgreSQL client programs (psql, pg_dump, pg_restore) on the host, of a version at least production's.
author: relpromote
"""

EXAMPLES = r"""
- name: Read production's catalog
  pg_masked_refresh:
    action: inspect
    source: {host: prod-db-1.internal, database: shop, user: relpromote_reader, password: "{{ reader_password }}"}
    target: {database: shop}
  register: catalog
"""

RETURN = r"""
catalog:
  description: (inspect) production's tables and columns.
  returned: inspect
  type: dict
qa:
  description: (inspect) QA's database, its last refresh and leftovers of killed runs.
  returned: inspect
  type: dict
summary:
  description:
    - (refresh) result, snapshot_time, started_at, duration_seconds, tables (rows), masked_columns, carried_over,
      previous_database, remasked, phases.
  returned: refresh
  type: dict
"""

SALT_SETTING = "relpromote.salt"
# Prepended to production sessions: even a bug in a plan cannot write, and sessions that wait on the
# shared snapshot are not cut by the server's idle timeouts. row_security=off makes a filtered read an
# error instead of a silently partial copy.
PROD_OPTIONS = (
    "-c default_transaction_read_only=on -c statement_timeout=0 -c idle_in_transaction_session_timeout=0 -c row_security=off"
)
QA_OPTIONS = "-c statement_timeout=0 -c synchronous_commit=off"
APPLICATION = "relpromote-refresh"
SWAP_ATTEMPTS = 5
REPAIR_ROUNDS = 5
# Below this size (8 kB pages) splitting a table between sessions costs more than it saves.
CHUNK_MIN_PAGES = 2000
# Index builds sort in memory instead of in temp files: post-data is most of the restore's own time.
MAINTENANCE_WORK_MEM = "256MB"
RESTORE_OPTIONS = f"-c maintenance_work_mem={MAINTENANCE_WORK_MEM}"
MARKER_KEY = "relpromote_refresh"
WORKDIR_PREFIX = "relpromote-refresh-"
PR_SET_PDEATHSIG = 1

CATALOG_SQL = r"""
SELECT coalesce(json_agg(t ORDER BY t.schema, t.name)::jsonb, '[]')
FROM (
  SELECT n.nspname AS schema, c.relname AS name, c.relpages AS pages,
         (SELECT CASE WHEN rn.nspname = 'public' THEN rc.relname ELSE rn.nspname || '.' || rc.relname END
            FROM pg_class rc JOIN pg_namespace rn ON rn.oid = rc.relnamespace
           WHERE c.relispartition AND rc.oid = pg_partition_root(c.oid)) AS root,
         bool_and((bt.oid < 16384 AND bt.typtype IN ('b', 'r', 'm') AND (bt.typelem = 0 OR bt.typelem < 16384))
                  OR bt.typtype = 'e') AS binary_copy,
         json_agg(json_build_object(
             'name', a.attname,
             'type', format_type(a.atttypid, a.atttypmod),
             'base_type', bt.typname,
             'not_null', a.attnotnull,
             'max_length', information_schema._pg_char_max_length(bt.oid,
                 CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END))
           ORDER BY a.attnum) AS columns
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
    JOIN pg_type t ON t.oid = a.atttypid
    JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
   WHERE c.relkind = 'r'
     AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
   GROUP BY n.nspname, c.relname, c.oid, c.relispartition, c.relpages
) t
"""

# The table each index and constraint belongs to, keyed like pg_restore --list names them ("classid:oid"); foreign
# keys are left out: they need the referenced table too.
POST_DATA_OWNERS_SQL = """
SELECT coalesce(jsonb_object_agg(k, v), '{}') FROM (
  SELECT 'pg_class'::regclass::oid || ':' || i.indexrelid AS k,
         CASE WHEN n.nspname = 'public' THEN r.relname ELSE n.nspname || '.' || r.relname END AS v
    FROM pg_index i JOIN pg_class r ON r.oid = i.indrelid JOIN pg_namespace n ON n.oid = r.relnamespace
  UNION ALL
  SELECT 'pg_constraint'::regclass::oid || ':' || c.oid,
         CASE WHEN n.nspname = 'public' THEN r.relname ELSE n.nspname || '.' || r.relname END
    FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
   WHERE c.contype IN ('p', 'u', 'x', 'c')
) owners
"""

Params = dict[str, Any]


class RefreshError(Exception):
    """A step failed; `busy` when another refresh of the same database holds the lock."""

    def __init__(self, message: str, busy: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.busy = busy


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


def _tail(handle: IO[bytes]) -> str:
    handle.flush()
    handle.seek(0)
    lines = [line for line in handle.read().decode("utf-8", "replace").splitlines() if line.strip()]
    return " / ".join(lines[-3:])[-800:] or "no error output"


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
            raise RefreshError(f"{self.label}: reading failed: {_tail(self.producer_err)}")
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


def names_for(database: str, stamp: str) -> dict[str, str]:
    return {
        "incoming": f"{database}__incoming_{stamp}",
        "incoming_prefix": f"{database}__incoming_",
        "previous": f"{database}__previous",
        "retired": f"{database}__retired_{stamp}",
        "retired_prefix": f"{database}__retired_",
    }


def read_marker(control: Session, database: str) -> dict[str, Any] | None:
    """What the last refresh wrote on QA's database (a COMMENT, so it survives the rename)."""
    raw = control.ask(
        "SELECT coalesce((SELECT shobj_description(oid, 'pg_database') FROM pg_database "
        f"WHERE datname = {literal(database)}), '')"
    )
    try:
        marker = json.loads(raw).get(MARKER_KEY) if raw else None
    except (ValueError, AttributeError):
        return None
    return marker if isinstance(marker, dict) else None


def database_exists(control: Session, database: str) -> bool:
    return control.ask(f"SELECT count(*) FROM pg_database WHERE datname = {literal(database)}") == "1"


def leftovers(control: Session, database: str) -> list[str]:
    names = names_for(database, "")
    raw = control.ask(
        "SELECT coalesce(json_agg(datname ORDER BY datname)::jsonb, '[]') FROM pg_database "
        f"WHERE starts_with(datname, {literal(names['incoming_prefix'])}) "
        f"OR starts_with(datname, {literal(names['retired_prefix'])})"
    )
    return [str(name) for name in json.loads(raw)]


def drop_database(control: Session, database: str) -> None:
    # FORCE (PostgreSQL 13+) ends the sessions of a killed run that the server has not noticed yet.
    control.do(f"DROP DATABASE IF EXISTS {ident(database)} WITH (FORCE)")


def count_sql(tables: list[tuple[str, str]]) -> str:
    return "SELECT json_build_array({})".format(", ".join(f"(SELECT count(*) FROM ONLY {qualified(s, n)})" for s, n in tables))


def columns_sql(table: str) -> str:
    return (
        "SELECT coalesce(json_agg(attname ORDER BY attnum)::jsonb, '[]') FROM pg_attribute "
        f"WHERE attrelid = {literal(table)}::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''"
    )


def inspect(params: Params, bin_dir: str, children: Children, workdir: str) -> dict[str, Any]:
    """Production's catalog (and row counts), QA's database, its last refresh and leftovers. Reads only."""
    source, target = params["source"], params["target"]
    prod = Server(bin_dir, children, workdir, "production", source, PROD_OPTIONS)
    qa = Server(bin_dir, children, workdir, "qa", target, QA_OPTIONS)
    sessions: list[Session] = []
    try:
        reader = prod.session(source["database"], "reading production's catalog")
        sessions.append(reader)
        reader.do("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        tables = json.loads(reader.ask(CATALOG_SQL))
        if params["count_rows"] and tables:
            counts = json.loads(reader.ask(count_sql([(t["schema"], t["name"]) for t in tables])))
            for table, count in zip(tables, counts, strict=True):
                table["rows"] = int(count)
        reader.do("COMMIT")
        control = qa.session(target["maintenance_database"], "reading QA's state")
        sessions.append(control)
        exists = database_exists(control, target["database"])
        carried: dict[str, int] = {}
        if exists and params["count_rows"] and params["carry_over"]:
            current = qa.session(target["database"], "counting QA's carried-over tables")
            sessions.append(current)
            for entry in params["carry_over"]:
                schema, name = carry_key(entry).split(".", 1)
                if current.ask(f"SELECT to_regclass({literal(qualified(schema, name))}) IS NOT NULL") == "t":
                    carried[key_of(schema, name)] = int(current.ask(f"SELECT count(*) FROM ONLY {qualified(schema, name)}"))
        qa_state = {
            "database": target["database"],
            "exists": exists,
            "last_refresh": read_marker(control, target["database"]) if exists else None,
            "leftovers": leftovers(control, target["database"]),
            "carried_over": carried,
        }
        return {"catalog": {"database": source["database"], "tables": tables}, "qa": qa_state}
    finally:
        for session in sessions:
            session.close()
        prod.close()
        qa.close()


# ---- the refresh ----
class Refresh:
    """One refresh, step by step; `run()` returns the summary or raises with QA's database untouched."""

    def __init__(self, module: AnsibleModule, params: Params, bin_dir: str, children: Children, workdir: str) -> None:
        self.module = module
        self.params = params
        self.plan: Params = params["plan"]
        self.jobs: int = params["jobs"]
        self.children = children
        self.workdir = workdir
        self.started_at = utcnow()
        self.clock = time.monotonic()
        source, target = params["source"], params["target"]
        self.source_db: str = source["database"]
        self.qa_db: str = target["database"]
        self.maintenance_db: str = target["maintenance_database"]
        self.owner: str = target["owner"]
        self.prod = Server(bin_dir, children, workdir, "production", source, PROD_OPTIONS)
        self.qa = Server(bin_dir, children, workdir, "qa", target, QA_OPTIONS)
        self.names = names_for(self.qa_db, self.started_at.strftime("%Y%m%dT%H%M%S"))
        self.incoming = self.names["incoming"]
        self.incoming_created = False
        self.sessions: list[Session] = []
        self.snapshot = ""
        self.snapshot_time = ""
        self.fingerprint_seed = secrets.randbits(62)  # per run: the hashes mean nothing once the run is over
        self.pages: dict[str, int] = {}
        self.qa_counts: dict[str, list[int]] = {}  # table key -> rows, then the null/fixed checks' offending values
        self.collisions: dict[str, int] = {}
        self.remasked: dict[str, int] = {}
        self.carried_over: dict[str, int] = {}
        self.qa_only_tables: list[tuple[str, str]] = []
        self.early_post_data: dict[str, list[str]] = {}  # table key -> pg_restore list lines
        self.final_post_data: list[str] = []
        self.early_files: list[str] = []
        self.archive = os.path.join(workdir, "schema.dump")
        self.phases: dict[str, float] = {}
        self._mark = self.clock

    # -- helpers --
    def _session(self, server: Server, database: str, what: str) -> Session:
        session = server.session(database, what)
        self.sessions.append(session)
        return session

    def _phase(self, name: str) -> None:
        now = time.monotonic()
        self.phases[name] = round(now - self._mark, 3)
        self._mark = now

    def _restore_argv(
        self,
        archive: str,
        *,
        section: str | None = None,
        listing: str | None = None,
        jobs: int = 1,
        single_transaction: bool = False,
    ) -> list[str]:
        argv = [self.qa.program("pg_restore"), "-w", "--no-owner", "--no-privileges", "--exit-on-error", "-d", self.incoming]
        if section:
            argv.append(f"--section={section}")
        if listing:
            argv.append(f"--use-list={listing}")
        if self.owner:
            argv.append(f"--role={self.owner}")
        if jobs > 1:
            argv.append(f"--jobs={jobs}")
        if single_transaction:
            argv.append("--single-transaction")
        return [*argv, archive]

    def _restore(self, archive: str, section: str, single_transaction: bool = False) -> None:
        argv = self._restore_argv(archive, section=section, single_transaction=single_transaction)
        self.qa.run(argv, self.incoming, f"restoring the {section} of {os.path.basename(archive)}", options=RESTORE_OPTIONS)

    def _split_post_data(self, archive: str, holder: Session) -> None:
        """Which post-data entries belong to one copied table (its indexes and non-foreign-key constraints: built as
        soon as that table is loaded and checked, while other tables still copy) and which wait for all the data
        (foreign keys, triggers, the rest). Entries are matched by production's OIDs, which the archive lists."""
        listing = self.qa.run(
            [self.qa.program("pg_restore"), "--list", "--section=post-data", archive], self.incoming, "listing the schema"
        )
        owners = json.loads(holder.ask(POST_DATA_OWNERS_SQL))
        copied = {t["key"] for t in self.plan["tables"]}
        for line in listing.splitlines():
            if not line.strip() or line.startswith(";"):
                continue
            fields = line.partition("; ")[2].split(" ")  # "3207; 2606 16397 CONSTRAINT public customers customers_pkey owner"
            owner = owners.get(f"{fields[0]}:{fields[1]}") if len(fields) > 2 else None
            if owner is not None and owner in copied:
                self.early_post_data.setdefault(owner, []).append(line)
            else:
                self.final_post_data.append(line)

    def _listing_file(self, name: str, lines: list[str]) -> str:
        path = os.path.join(self.workdir, f"{name}.list")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        return path

    def _snapshot_prelude(self) -> str:
        return f"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\nSET TRANSACTION SNAPSHOT {literal(self.snapshot)};\n"

    # -- steps --
    def run(self) -> dict[str, Any]:
        control = self._session(self.qa, self.maintenance_db, "QA control session")
        # Two refreshes of one QA database must not drop each other's incoming copy: a session lock on QA's
        # server, which the server releases by itself if this process dies.
        if control.ask(f"SELECT pg_try_advisory_lock(hashtext({literal('relpromote.refresh:' + self.qa_db)}))") != "t":
            raise RefreshError(f"another refresh of {self.qa_db} is running on this server", busy=True)
        for name in leftovers(control, self.qa_db):
            drop_database(control, name)  # left by a run that was killed before it could clean up
        qa_exists = database_exists(control, self.qa_db)
        marker = read_marker(control, self.qa_db) if qa_exists else None
        if marker and self.params["min_interval"] > 0:
            age = (utcnow() - datetime.fromisoformat(marker["refreshed_at"])).total_seconds()
            if age < self.params["min_interval"]:
                return self._summary(
                    "skipped",
                    tables=marker.get("tables", {}),
                    snapshot_time=marker.get("snapshot_time"),
                    message=f"QA was refreshed {age:.0f} s ago (min_interval {self.params['min_interval']} s)",
                )

        # One exported snapshot: the schema dump, every table copy, every check and the row counts see
        # production at the same instant, however long the copy takes.
        holder = self._session(self.prod, self.source_db, "holding production's snapshot")
        holder.do("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        exported = holder.ask(
            "SELECT pg_export_snapshot() || ' ' || to_char(statement_timestamp() AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\')'
        )
        self.snapshot, self.snapshot_time = exported.split(" ", 1)
        tables = json.loads(holder.ask(CATALOG_SQL))
        self._check_drift(tables)
        self.pages = {key_of(t["schema"], t["name"]): int(t["pages"]) for t in tables}
        database = json.loads(
            holder.ask(
                "SELECT to_jsonb(d) || jsonb_build_object('encoding', pg_encoding_to_char(d.encoding)) "
                "FROM pg_database d WHERE datname = current_database()"
            )
        )
        sequences = json.loads(
            holder.ask(
                "SELECT coalesce(json_agg(json_build_array(quote_ident(schemaname) || '.' || quote_ident(sequencename), "
                "last_value))::jsonb, '[]') "
                "FROM pg_sequences WHERE last_value IS NOT NULL"
            )
        )
        self._phase("snapshot")

        archive = self.archive
        self.prod.run(
            [
                self.prod.program("pg_dump"),
                "-w",
                "--schema-only",
                "--format=custom",
                "--no-sync",
                f"--snapshot={self.snapshot}",
                "--no-publications",
                "--no-subscriptions",
                "--no-tablespaces",
                f"--file={archive}",
            ],
            self.source_db,
            "dumping production's schema",
        )
        self._split_post_data(archive, holder)
        self._create_incoming(control, database)
        # Tables, types and functions first; indexes, constraints and triggers only after the data (post-data).
        self._restore(archive, "pre-data", single_transaction=True)
        self._phase("schema")

        incoming = self._session(self.qa, self.incoming, "checking the new database")
        carried_in_schema, carried_qa_only = self._carry_over_sources(qa_exists, incoming)
        for qa_archive in carried_qa_only:
            self._restore(qa_archive, "pre-data", single_transaction=True)
            self._restore(qa_archive, "data", single_transaction=True)
        planned = [(t["schema"], t["name"]) for t in self.plan["tables"]]
        if planned:
            holder.send(count_sql(planned))  # production counts its rows in the snapshot while the copies run
        scheduler = Scheduler(self.jobs)
        for table in self.plan["tables"]:
            self._queue_copy(table, scheduler)
        for schema, name, columns in carried_in_schema:
            scheduler.add(self._carry_starter(schema, name, columns))
        scheduler.run()
        self._phase("copy")
        self.phases.update(scheduler.timings)

        prod_counts = json.loads(holder.receive()) if planned else []
        holder.do("COMMIT")  # production's part is over: end the long transaction early
        self._set_sequences(incoming, sequences, qa_exists)
        if self.final_post_data:  # foreign keys (validated against all the data), triggers, the rest
            listing = self._listing_file("final", self.final_post_data)
            argv = self._restore_argv(archive, listing=listing, jobs=self.jobs)
            self.qa.run(argv, self.incoming, "restoring foreign keys and triggers", options=RESTORE_OPTIONS)
        for qa_archive in carried_qa_only:
            self._restore(qa_archive, "post-data")
        self._phase("post_data")

        rows = self._verify(prod_counts)
        for schema, name in [(s, n) for s, n, _ in carried_in_schema] + self.qa_only_tables:
            self.carried_over[key_of(schema, name)] = int(incoming.ask(f"SELECT count(*) FROM ONLY {qualified(schema, name)}"))
        carried = [qualified(schema, name) for schema, name in [(s, n) for s, n, _ in carried_in_schema] + self.qa_only_tables]
        if carried:
            incoming.do(f"ANALYZE {', '.join(carried)}")  # production's tables were analyzed as they arrived
        incoming.close()
        self._phase("verify")

        marker = {
            MARKER_KEY: {
                "refreshed_at": utcnow().isoformat(),
                "snapshot_time": self.snapshot_time,
                "source": self.source_db,
                "tables": rows,
            }
        }
        control.do(f"COMMENT ON DATABASE {ident(self.incoming)} IS {literal(json.dumps(marker, sort_keys=True))}")
        previous = self._swap(control, qa_exists)
        self._phase("swap")
        return self._summary("refreshed", tables=rows, snapshot_time=self.snapshot_time, previous=previous)

    def _check_drift(self, tables: list[Params]) -> None:
        """The plan was made from an earlier read of the catalog: refuse to copy a table it does not describe."""
        planned = {t["key"]: [list(pair) for pair in t["signature"]] for t in self.plan["tables"]}
        carry = set(self.plan["carry_over"])
        actual = {}
        for table in tables:
            if f"{table['schema']}.{table['name']}" in carry or (table.get("root") and carry_key(table["root"]) in carry):
                continue
            actual[key_of(table["schema"], table["name"])] = [[c["name"], c["type"]] for c in table["columns"]]
        if actual != planned:
            changed = sorted((set(actual) ^ set(planned)) | {k for k in set(actual) & set(planned) if actual[k] != planned[k]})
            raise RefreshError(
                f"production's schema changed since the plan was made ({', '.join(changed)}); run the refresh again"
            )

    def _create_incoming(self, control: Session, database: Params) -> None:
        """A new, empty database with production's encoding and collation (they decide sort order and indexes)."""
        options = ["TEMPLATE template0", f"ENCODING {literal(database['encoding'])}"]
        if database.get("datlocprovider") == "i" and database.get("daticulocale"):
            options += ["LOCALE_PROVIDER icu", f"ICU_LOCALE {literal(database['daticulocale'])}"]
        options += [f"LC_COLLATE {literal(database['datcollate'])}", f"LC_CTYPE {literal(database['datctype'])}"]
        if self.owner:
            options.append(f"OWNER {ident(self.owner)}")
        self.incoming_created = True  # first: a CREATE that fails half-way still gets its DROP IF EXISTS
        control.do(f"CREATE DATABASE {ident(self.incoming)} {' '.join(options)}")

    def _carry_over_sources(self, qa_exists: bool, incoming: Session) -> tuple[list[tuple[str, str, list[str]]], list[str]]:
        """Carried-over tables that production's schema also has (their rows are copied) and those only QA has
        (dumped from QA and restored whole)."""
        if not self.plan["carry_over"] or not qa_exists:
            return [], []
        current = self._session(self.qa, self.qa_db, "reading QA's carried-over tables")
        in_schema: list[tuple[str, str, list[str]]] = []
        qa_only: list[str] = []
        for entry in self.plan["carry_over"]:
            schema, name = entry.split(".", 1)
            table = qualified(schema, name)
            if current.ask(f"SELECT to_regclass({literal(table)}) IS NOT NULL") != "t":
                continue  # QA does not have it (yet): nothing to keep
            if incoming.ask(f"SELECT to_regclass({literal(table)}) IS NOT NULL") == "t":
                mine = json.loads(current.ask(columns_sql(table)))
                theirs = json.loads(incoming.ask(columns_sql(table)))
                in_schema.append((schema, name, [column for column in theirs if column in mine]))
            else:
                archive = os.path.join(self.workdir, f"carry-{len(qa_only)}.dump")
                self.qa.run(
                    [
                        self.qa.program("pg_dump"),
                        "-w",
                        "--format=custom",
                        "--no-sync",
                        "--no-owner",
                        "--no-privileges",
                        f"--table={table}",
                        f"--file={archive}",
                    ],
                    self.qa_db,
                    f"dumping QA's {entry}",
                )
                qa_only.append(archive)
                self.qa_only_tables.append((schema, name))
        current.close()
        return in_schema, qa_only

    def _chunks(self, table: Params) -> list[str | None]:
        """ctid ranges that split a masked table between the parallel slots: masking is production CPU, and one
        session uses one core. Other tables load in one piece, which keeps COPY FREEZE."""
        pages = self.pages.get(table["key"], 0)
        costly = any(check["kind"] == "fingerprint" for check in table["checks"])  # derived values: CPU on production
        count = self.jobs if costly and pages >= CHUNK_MIN_PAGES else 1
        if count <= 1:
            return [None]
        bounds = [pages * i // count for i in range(1, count)]
        ranges: list[str | None] = []
        for index in range(count):
            low = f"ctid >= '({bounds[index - 1]},0)'::tid" if index > 0 else None
            # The last range is open: pages added since relpages was counted still belong to it.
            high = f"ctid < '({bounds[index]},0)'::tid" if index < count - 1 else None
            ranges.append(" AND ".join(part for part in (low, high) if part))
        return ranges

    def _copy_starter(self, table: Params, where: str | None) -> Starter:
        def start() -> Pipeline:
            binary = bool(table["binary_copy"])
            salt_hex = self.params["salt"].encode().hex()
            # The salt reaches production on stdin, hex-encoded so no quoting can break out of the literal.
            script = (
                self._snapshot_prelude()
                + f"SELECT set_config({literal(SALT_SETTING)}, convert_from(decode({literal(salt_hex)}, 'hex'), 'UTF8'), false)"
                + " \\g /dev/null\n"
                + f"COPY (SELECT {table['select_list']} FROM ONLY {table['qualified']}"
                + (f" WHERE {where}" if where else "")
                + ") TO STDOUT"
                + (" (FORMAT binary)" if binary else "")
                + ";\nCOMMIT;\n"
            )
            into = f"COPY {table['qualified']} ({table['column_list']}) FROM STDIN"
            if where is None:
                # FREEZE writes the rows already frozen, so the checks and index builds that read them next do not
                # rewrite every page for hint bits; it needs the table truncated in the same transaction.
                consumer = self.qa.psql_argv(
                    "-c",
                    f"BEGIN; TRUNCATE ONLY {table['qualified']}",
                    "-c",
                    f"{into} ({'FORMAT binary, ' if binary else ''}FREEZE)",
                    "-c",
                    "COMMIT",
                )
            else:
                consumer = self.qa.psql_argv("-c", into + (" (FORMAT binary)" if binary else ""))
            label = f"copy {table['key']}" + (f" [{where}]" if where else "")
            return Pipeline(label, (self.prod, self.source_db, self.prod.psql_argv(), script), (self.qa, self.incoming, consumer))

        return start

    def _queue_copy(self, table: Params, scheduler: Scheduler) -> None:
        chunks = self._chunks(table)
        remaining = [len(chunks)]
        fingerprinted = [check for check in table["checks"] if check["kind"] == "fingerprint"]

        checking = [len(fingerprinted)]

        def analyze(_job: Job | None = None) -> None:
            scheduler.add(self._analyze_starter(table), self._read_counts(table))

        def indexes() -> None:
            # After the checks: a primary key takes an exclusive lock the checks' scans would wait for.
            if self.early_post_data.get(table["key"]):
                scheduler.add(self._indexes_starter(table["key"]), analyze)
            else:
                analyze()

        def finisher(check: Params) -> Finisher:
            def finish_check(job: Job) -> None:
                self._read_collisions(table, check, job)
                checking[0] -= 1
                if checking[0] == 0:
                    indexes()

            return finish_check

        def finish(_job: Job) -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                # One check per column: they run side by side in the free slots instead of one long tail.
                for check in fingerprinted:
                    scheduler.add(self._fingerprint_starter(table, check), finisher(check))
                if not fingerprinted:
                    indexes()

        for where in chunks:
            scheduler.add(self._copy_starter(table, where), finish)

    def _fingerprint_starter(self, table: Params, check: Params) -> Starter:
        """Production's keyed hashes of one masked column's original values, into a temp table on QA, compared there.

        One scan of the new table counts the masked values whose hash is among production's. A column that can be
        re-masked (fake phones: real numbers are dense, so a few fakes are real ones) has just those rows re-drawn,
        found again by ctid, a bounded number of rounds.
        """
        seed = self.fingerprint_seed
        column = ident(check["column"])

        def colliding(value: str) -> str:
            return (
                f"{value} IS NOT NULL AND {value}::text <> '' AND hashtextextended({value}::text, {seed}) "
                "IN (SELECT f FROM pg_temp.relpromote_fp WHERE f IS NOT NULL)"
            )

        # Only production values that could equal a masked one (the rule's shape) need hashing and sending.
        candidates = f" AND {check['candidates_sql'].format(value=column + '::text')}" if check.get("candidates_sql") else ""

        def start() -> Pipeline:
            script = (
                self._snapshot_prelude()
                + f"COPY (SELECT hashtextextended({column}::text, {seed}) FROM ONLY {table['qualified']} "
                + f"WHERE {column} IS NOT NULL{candidates}) TO STDOUT (FORMAT binary);\nCOMMIT;\n"
            )
            repair = ""
            if check.get("repair_sql"):
                redrawn = check["repair_sql"].format(value=column, round="r::text")
                repair = (
                    f"IF bad IS NOT NULL THEN fixed := cardinality(bad); FOR r IN 1..{REPAIR_ROUNDS} LOOP "
                    f"WITH redrawn AS (UPDATE ONLY {table['qualified']} SET {column} = {redrawn} WHERE ctid = ANY (bad) "
                    f"RETURNING ctid, {column} AS value) "
                    f"SELECT array_agg(ctid) FILTER (WHERE {colliding('value')}) INTO bad FROM redrawn; "
                    "EXIT WHEN bad IS NULL; END LOOP; hits := coalesce(cardinality(bad), 0); END IF;"
                )
            block = (
                "DO $relpromote$ DECLARE hits bigint := 0; fixed bigint := 0; bad tid[]; BEGIN "
                # No candidate on production: nothing in QA can equal one, no scan needed.
                "IF EXISTS (SELECT FROM pg_temp.relpromote_fp) THEN "
                f"SELECT count(*), array_agg(ctid) INTO hits, bad FROM ONLY {table['qualified']} "
                f"WHERE {colliding(column)}; {repair} END IF; "
                "PERFORM set_config('relpromote.verdict', json_build_array(hits, fixed)::text, false); END $relpromote$"
            )
            statements = [
                "SET work_mem = '256MB'",  # the hash set stays in memory: IN (...) is a hashed lookup, not a rescan per row
                "CREATE TEMP TABLE relpromote_fp (f bigint)",
                "COPY pg_temp.relpromote_fp FROM STDIN (FORMAT binary)",
                block,
                "SELECT current_setting('relpromote.verdict')",
            ]
            consumer = self.qa.psql_argv("-A", "-t", *(arg for statement in statements for arg in ("-c", statement)))
            return Pipeline(
                f"verify {table['key']}.{check['column']}",
                (self.prod, self.source_db, self.prod.psql_argv(), script),
                (self.qa, self.incoming, consumer),
            )

        return start

    def _analyze_starter(self, table: Params) -> Starter:
        """Statistics for QA's first queries (instead of waiting for autovacuum) and, in the same job, the counts the
        verification needs: rows, and values a null or fixed rule should not have left."""
        parts = ["count(*)"]
        for check in table["checks"]:
            column = ident(check["column"])
            if check["kind"] == "all_null":
                parts.append(f"count(*) FILTER (WHERE {column} IS NOT NULL)")
            elif check["kind"] == "fixed_or_null":
                parts.append(f"count(*) FILTER (WHERE {column} IS NOT NULL AND {column} IS DISTINCT FROM {check['fixed_sql']})")
        counts = f"SELECT {', '.join(parts)} FROM ONLY {table['qualified']}"

        def start() -> Job:
            argv = self.qa.psql_argv("-A", "-t", "-c", f"ANALYZE {table['qualified']}", "-c", counts)
            return Command(f"analyze {table['key']}", self.qa, self.incoming, argv)

        return start

    def _read_counts(self, table: Params) -> Finisher:
        def finish(job: Job) -> None:
            self.qa_counts[table["key"]] = [int(value) for value in job.output().strip().splitlines()[-1].split("|")]

        return finish

    def _indexes_starter(self, key: str) -> Starter:
        def start() -> Job:
            listing = self._listing_file(f"early-{len(self.early_files)}", self.early_post_data[key])
            self.early_files.append(listing)
            argv = self._restore_argv(self.archive, listing=listing)
            return Command(f"indexes {key}", self.qa, self.incoming, argv, options=RESTORE_OPTIONS)

        return start

    def _read_collisions(self, table: Params, check: Params, job: Job) -> None:
        count, remasked = json.loads(job.output().strip().splitlines()[-1])
        column = f"{table['key']}.{check['column']}"
        if int(count):
            self.collisions[column] = int(count)
        if int(remasked):
            self.remasked[column] = int(remasked)

    def _carry_starter(self, schema: str, name: str, columns: list[str]) -> Starter:
        table = qualified(schema, name)
        column_list = ", ".join(ident(c) for c in columns)

        def start() -> Pipeline:
            script = f"COPY (SELECT {column_list} FROM ONLY {table}) TO STDOUT;\n"
            consumer = self.qa.psql_argv(
                "-c", f"BEGIN; TRUNCATE ONLY {table}", "-c", f"COPY {table} ({column_list}) FROM STDIN (FREEZE)", "-c", "COMMIT"
            )
            return Pipeline(
                f"carry over {key_of(schema, name)}",
                (self.qa, self.qa_db, self.qa.psql_argv(), script),
                (self.qa, self.incoming, consumer),
            )

        return start

    def _set_sequences(self, incoming: Session, sequences: list[list[Any]], qa_exists: bool) -> None:
        """Production's sequence positions (not in a schema-only dump); carried-over tables keep QA's."""
        values = {str(name): int(value) for name, value in sequences}
        if qa_exists and self.plan["carry_over"]:
            current = self._session(self.qa, self.qa_db, "reading QA's sequences")
            tables = ", ".join(literal(qualified(*entry.split(".", 1))) for entry in self.plan["carry_over"])
            owned = json.loads(
                current.ask(
                    "SELECT coalesce(json_agg(json_build_array(quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename), "
                    "s.last_value))::jsonb, '[]') FROM pg_sequences s "
                    "JOIN pg_depend d ON d.objid = (quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename))::regclass "
                    "AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
                    "WHERE s.last_value IS NOT NULL "
                    f"AND d.refobjid IN (SELECT to_regclass(t) FROM unnest(ARRAY[{tables}]::text[]) t)"
                )
            )
            current.close()
            values.update({str(name): int(value) for name, value in owned})
        if values:
            calls = ", ".join(f"setval(to_regclass({literal(name)}), {value}, true)" for name, value in sorted(values.items()))
            incoming.ask(f"SELECT count(*) FROM (SELECT {calls}) s")

    def _verify(self, prod_counts: list[Any]) -> dict[str, int]:
        """Row counts equal production's (same snapshot); no masked column holds a production value."""
        rows: dict[str, int] = {}
        problems: list[str] = []
        for table, expected in zip(self.plan["tables"], prod_counts, strict=True):
            plain = [check for check in table["checks"] if check["kind"] != "fingerprint"]
            values = self.qa_counts[table["key"]]
            rows[table["key"]] = values[0]
            if values[0] != int(expected):
                problems.append(f"{table['key']} has {values[0]} rows, production {int(expected)}")
            for check, bad in zip(plain, values[1:], strict=True):
                if bad:
                    wanted = "NULL" if check["kind"] == "all_null" else "the fixed value"
                    problems.append(f"{table['key']}.{check['column']} keeps {bad} values that are not {wanted}")
        for column, count in sorted(self.collisions.items()):
            problems.append(f"{column}: {count} masked values equal production values of that column")
        if problems:
            raise RefreshError("verification failed: " + "; ".join(problems))
        return rows

    def _swap(self, control: Session, qa_exists: bool) -> str | None:
        """Make the new database QA's, keeping the current one as __previous: all or nothing."""
        previous_exists = database_exists(control, self.names["previous"])
        busy = [self.qa_db] + ([self.names["previous"]] if previous_exists else [])
        # A swap is the one commit QA must not lose in a crash; QA_OPTIONS turn synchronous_commit off.
        statements = [
            "SET synchronous_commit = on;",
            "BEGIN;",
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname IN ({', '.join(literal(name) for name in busy)}) AND pid <> pg_backend_pid();",
        ]
        if previous_exists:
            statements.append(f"ALTER DATABASE {ident(self.names['previous'])} RENAME TO {ident(self.names['retired'])};")
        if qa_exists:
            statements.append(f"ALTER DATABASE {ident(self.qa_db)} RENAME TO {ident(self.names['previous'])};")
        statements += [f"ALTER DATABASE {ident(self.incoming)} RENAME TO {ident(self.qa_db)};", "COMMIT;"]
        error = ""
        for _attempt in range(SWAP_ATTEMPTS):
            # A client of QA may reconnect between the terminate and the rename; the rename then fails, the whole
            # transaction rolls back and the retry starts from the same state.
            try:
                self.qa.run(
                    self.qa.psql_argv("-A", "-t"),
                    self.maintenance_db,
                    "swapping the databases",
                    stdin_text="\n".join(statements) + "\n",
                )
                break
            except RefreshError as exc:
                error = exc.message
                time.sleep(0.5)
        else:
            raise RefreshError(f"could not swap in the new database: {error}")
        self.incoming_created = False  # it is QA's database now: never drop it
        if previous_exists:
            try:
                drop_database(control, self.names["retired"])
            except RefreshError as exc:
                self.module.warn(
                    f"the older previous database {self.names['retired']} is left behind ({exc.message}); "
                    "the next refresh drops it"
                )
        return self.names["previous"] if qa_exists else None

    def summary_on_failure(self, message: str) -> dict[str, Any]:
        return self._summary("failed", message=message)

    def _summary(
        self,
        result: str,
        tables: dict[str, int] | None = None,
        snapshot_time: str | None = None,
        previous: str | None = None,
        message: str = "",
    ) -> dict[str, Any]:
        return {
            "result": result,
            "source_database": self.source_db,
            "qa_database": self.qa_db,
            "snapshot_time": snapshot_time or None,
            "started_at": self.started_at.isoformat(),
            "duration_seconds": round(time.monotonic() - self.clock, 3),
            "tables": tables or {},
            "masked_columns": {t["key"]: list(t["masked"]) for t in self.plan["tables"] if t["masked"]},
            "carried_over": dict(self.carried_over),
            "previous_database": previous,
            "remasked": dict(self.remasked),
            "phases": dict(self.phases),
            "warnings": list(self.plan.get("warning_lines") or []),
            "message": message,
        }

    def abandon(self) -> None:
        """After a failure or an interruption: stop everything and drop the new database. QA's own was never touched."""
        self.children.kill_all()
        if not self.incoming_created:
            return
        try:
            cleanup = Session(self.qa, self.maintenance_db, "dropping the incoming database")
            try:
                drop_database(cleanup, self.incoming)
            finally:
                cleanup.close()
        except RefreshError as exc:
            self.module.warn(f"the incoming database {self.incoming} is left behind ({exc.message}); the next refresh drops it")

    def close(self) -> None:
        for session in self.sessions:
            session.close()
        self.prod.close()
        self.qa.close()


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(f"interrupted by signal {signum}")


ARGUMENT_SPEC: dict[str, Any] = {
    "action": {"type": "str", "choices": ["inspect", "refresh"], "default": "refresh"},
    "source": {
        "type": "dict",
        "required": True,
        "options": {
            "host": {"type": "str", "required": True},
            "port": {"type": "int", "default": 5432},
            "database": {"type": "str", "required": True},
            "user": {"type": "str", "required": True},
            "password": {"type": "str", "default": "", "no_log": True},
            "sslmode": {"type": "str", "default": "prefer"},
            "connect_timeout": {"type": "int", "default": 10},
        },
    },
    "target": {
        "type": "dict",
        "required": True,
        "options": {
            "host": {"type": "str", "default": "/var/run/postgresql"},
            "port": {"type": "int", "default": 5432},
            "database": {"type": "str", "required": True},
            "user": {"type": "str", "default": "postgres"},
            "password": {"type": "str", "default": "", "no_log": True},
            "maintenance_database": {"type": "str", "default": "postgres"},
            "owner": {"type": "str", "default": ""},
        },
    },
    "plan": {"type": "dict"},
    "salt": {"type": "str", "no_log": True},
    "jobs": {"type": "int", "default": 2},
    "min_interval": {"type": "int", "default": 0},
    "count_rows": {"type": "bool", "default": False},
    "carry_over": {"type": "list", "elements": "str", "default": []},
    "pg_bin_dir": {"type": "str", "default": ""},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC, required_if=[("action", "refresh", ("plan", "salt"))], supports_check_mode=True
    )
    params = module.params
    refreshing = params["action"] == "refresh"
    if refreshing and not params["salt"]:
        module.fail_json(msg="the masking salt is empty; refusing to mask with a guessable key")
    if refreshing and module.check_mode:
        module.exit_json(changed=True, msg=f"would refresh {params['target']['database']} from production")
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _raise_interrupted)
    children = Children()
    sweep_stale_workdirs()
    workdir = tempfile.mkdtemp(prefix=WORKDIR_PREFIX)  # 0700: the schema dump and error output only
    with open(os.path.join(workdir, "pid"), "w", encoding="ascii") as handle:
        handle.write(str(os.getpid()))
    refresh: Refresh | None = None
    try:
        bin_dir = find_bin_dir(params["pg_bin_dir"])
        if not refreshing:
            module.exit_json(changed=False, **inspect(params, bin_dir, children, workdir))
        refresh = Refresh(module, params, bin_dir, children, workdir)
        try:
            summary = refresh.run()
        except (Exception, Interrupted) as exc:
            refresh.abandon()
            message = exc.message if isinstance(exc, RefreshError) else f"{type(exc).__name__}: {exc}"
            module.fail_json(
                msg=f"refresh of {params['target']['database']} failed, QA left as it was: {message}",
                busy=isinstance(exc, RefreshError) and exc.busy,
                summary=refresh.summary_on_failure(message),
            )
        module.exit_json(changed=summary["result"] == "refreshed", summary=summary)
    except RefreshError as exc:
        module.fail_json(msg=exc.message, busy=exc.busy)
    except Exception as exc:  # a bug must still come back as a result, with the processes stopped
        module.fail_json(msg=f"{type(exc).__name__}: {exc}")
    finally:
        if refresh is not None:
            refresh.close()
        children.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
