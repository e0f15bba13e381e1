"""Real PostgreSQL servers on the local machine, for tests and benchmarks.

This module owns the whole life of a throw-away PostgreSQL cluster: `initdb` into a folder, a
postmaster on a free TCP port of 127.0.0.1 plus a private socket folder, roles and databases for the
test, and `pg_ctl stop` + removal at the end. Several clusters run side by side (a "production"
and a "qa" server, say), each with its own port, socket folder and data.

initdb refuses to run as root, so as root the cluster belongs to the `postgres` system user (the
Debian package creates it); otherwise to the current user. Local (socket) connections are trusted,
so the harness and the tests connect as the cluster's superuser `postgres` without a password; TCP
connections need the role's password (scram-sha-256), so code under test that connects over TCP
proves its credentials really reach libpq.

    with PostgresCluster.start(tmp_path / "prod", name="prod") as prod:
        prod.create_role("reader", password="s3cret", read_only=True)
        prod.create_database("shop")
        prod.execute("shop", "CREATE TABLE t (id int)")
        assert prod.query("shop", "SELECT count(*) FROM t") == [(0,)]

`python -m relpromote.testing.postgres start DIR NAME` / `stop DIR` do the same from a shell or a
playbook (Molecule's create and destroy), printing the cluster's coordinates as JSON.

Where other pytest sessions run at the same time as the same user, keep long-lived clusters out of
pytest's tmp dirs: each new session prunes the oldest ones, a running cluster's data included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

try:
    import psycopg
    from psycopg import sql
except ImportError as exc:  # relpromote itself never connects to PostgreSQL: psycopg is an extra
    raise ImportError("relpromote.testing.postgres needs psycopg: pip install 'relpromote[postgres]'") from exc

SUPERUSER = "postgres"
START_TIMEOUT = 30
# Durability costs time and buys nothing in a test that throws the cluster away.
FAST_SETTINGS: Mapping[str, str] = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
COORDINATES_FILE = "cluster.json"


class PostgresError(RuntimeError):
    """A cluster could not be created, started or stopped."""


def find_bin_dir() -> Path:
    """The newest PostgreSQL server binaries installed (Debian keeps them out of PATH)."""
    override = os.environ.get("RELPROMOTE_PG_BIN")
    if override:
        return Path(override)
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresError("PostgreSQL server binaries not found; install them (apt-get install -y postgresql)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class PostgresCluster:
    """One running cluster, as tests see it."""

    name: str
    base_dir: Path  # holds data/, sockets/, server.log and cluster.json
    port: int
    bin_dir: Path
    settings: Mapping[str, str] = field(default_factory=dict)

    # ---- life cycle ----
    @classmethod
    def start(
        cls,
        base_dir: Path,
        *,
        name: str = "pg",
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        bin_dir: Path | None = None,
    ) -> PostgresCluster:
        """initdb into `base_dir` (which must not hold a cluster yet) and start the server."""
        bin_dir = bin_dir or find_bin_dir()
        base_dir = base_dir.resolve()
        if (base_dir / "data").exists():
            raise PostgresError(f"{base_dir}/data already holds a cluster; stop and remove it first")
        base_dir.mkdir(parents=True, exist_ok=True)
        owner = _cluster_owner()
        for folder in (base_dir, base_dir / "data", base_dir / "sockets"):
            folder.mkdir(exist_ok=True)
            _give(folder, owner)
        # The server must be able to reach its own folder even when the caller's tmp dir is private.
        _open_path_to(base_dir)
        _run_as(
            owner,
            [
                str(bin_dir / "initdb"),
                "-D",
                str(base_dir / "data"),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        )
        chosen = dict(FAST_SETTINGS if settings is None else settings)
        last_error = ""
        for _attempt in range(5):
            cluster = cls(name, base_dir, port or free_port(), bin_dir, chosen)
            started = cluster._pg_ctl_start(owner)
            if started is None:
                cluster._write_coordinates()
                return cluster
            last_error = started
            if port is not None:
                break  # the caller asked for this port: do not silently pick another
        raise PostgresError(f"cluster {name} did not start: {last_error}")

    def stop(self, *, remove: bool = True) -> None:
        """Stop the server (fast: cancels sessions) and remove its folder."""
        if (self.data_dir / "postmaster.pid").exists():
            result = _run_as(
                _cluster_owner(),
                [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
                check=False,
            )
            if result.returncode != 0 and (self.data_dir / "postmaster.pid").exists():
                _run_as(
                    _cluster_owner(),
                    [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
                    check=False,
                )
        if remove:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @classmethod
    def attach(cls, base_dir: Path) -> PostgresCluster:
        """The cluster a previous `start` (maybe in another process) left running in `base_dir`."""
        try:
            data = json.loads((base_dir / COORDINATES_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PostgresError(f"{base_dir}: no cluster started here") from None
        return cls(data["name"], Path(data["base_dir"]), int(data["port"]), Path(data["bin_dir"]), dict(data["settings"]))

    # ---- where it is ----
    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "sockets"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    def conninfo(
        self, database: str = "postgres", *, user: str = SUPERUSER, password: str | None = None, tcp: bool = False
    ) -> str:
        """A libpq connection string: over the socket (trusted) unless `tcp` (password checked)."""
        host = "127.0.0.1" if tcp else str(self.socket_dir)
        parts = {"host": host, "port": str(self.port), "dbname": database, "user": user}
        if password is not None:
            parts["password"] = password
        return " ".join(f"{key}={_conninfo_value(value)}" for key, value in parts.items())

    def coordinates(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base_dir": str(self.base_dir),
            "port": self.port,
            "bin_dir": str(self.bin_dir),
            "socket_dir": str(self.socket_dir),
            "settings": dict(self.settings),
        }

    # ---- SQL helpers (as the superuser, over the socket) ----
    def connect(
        self,
        database: str = "postgres",
        *,
        user: str = SUPERUSER,
        password: str | None = None,
        tcp: bool = False,
        autocommit: bool = True,
    ) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo(database, user=user, password=password, tcp=tcp), autocommit=autocommit)

    def execute(self, database: str, statement: str | sql.Composable, params: Sequence[Any] | None = None) -> None:
        with self.connect(database) as conn:
            conn.execute(_query(statement), params)

    def query(self, database: str, statement: str | sql.Composable, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connect(database) as conn:
            return list(conn.execute(_query(statement), params).fetchall())

    def scalar(self, database: str, statement: str | sql.Composable, params: Sequence[Any] | None = None) -> Any:
        rows = self.query(database, statement, params)
        return rows[0][0] if rows else None

    def databases(self) -> list[str]:
        rows = self.query("postgres", "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY datname")
        return [str(row[0]) for row in rows]

    def create_database(self, name: str, *, owner: str | None = None, template: str = "template0") -> None:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        if owner:
            statement = sql.SQL("{} OWNER {}").format(statement, sql.Identifier(owner))
        self.execute("postgres", statement)

    def drop_database(self, name: str) -> None:
        self.execute("postgres", sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def create_role(
        self, name: str, *, password: str | None = None, superuser: bool = False, createdb: bool = False, read_only: bool = False
    ) -> None:
        """A login role. `read_only` makes it a member of pg_read_all_data and nothing else: it can read every
        table, sequence and schema of every database, and write none."""
        options: list[sql.Composable] = [sql.SQL("LOGIN")]
        if superuser:
            options.append(sql.SQL("SUPERUSER"))
        if createdb:
            options.append(sql.SQL("CREATEDB"))
        if password is not None:
            options.append(sql.SQL("PASSWORD {}").format(sql.Literal(password)))
        self.execute("postgres", sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(name), sql.SQL(" ").join(options)))
        if read_only:
            self.execute("postgres", sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(name)))

    # ---- internals ----
    def _pg_ctl_start(self, owner: str | None) -> str | None:
        options = [f"-p {self.port}", f"-k {self.socket_dir}", "-c listen_addresses=127.0.0.1"]
        options += [f"-c {key}={value}" for key, value in self.settings.items()]
        result = _run_as(
            owner,
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                " ".join(options),
                "-w",
                "-t",
                str(START_TIMEOUT),
                "start",
            ],
            check=False,
        )
        if result.returncode == 0:
            return None
        tail = self.log_file.read_text(encoding="utf-8", errors="replace")[-600:] if self.log_file.exists() else result.stderr
        return tail.strip()

    def _write_coordinates(self) -> None:
        (self.base_dir / COORDINATES_FILE).write_text(json.dumps(self.coordinates(), indent=2) + "\n", encoding="utf-8")


@contextlib.contextmanager
def clusters(base_dir: Path, *names: str, settings: Mapping[str, str] | None = None) -> Iterator[dict[str, PostgresCluster]]:
    """Several clusters at once, stopped together (each in `base_dir/<name>`)."""
    started: dict[str, PostgresCluster] = {}
    try:
        for name in names:
            started[name] = PostgresCluster.start(base_dir / name, name=name, settings=settings)
        yield started
    finally:
        for cluster in started.values():
            cluster.stop()


def _query(statement: str | sql.Composable) -> Any:
    # psycopg types a plain str query as LiteralString; tests pass trusted literals and composed SQL.
    return sql.SQL(statement) if isinstance(statement, str) else statement


def _conninfo_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _cluster_owner() -> str | None:
    """The system user that owns clusters: `postgres` when we are root (initdb refuses root), else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise PostgresError(
            "running as root needs the 'postgres' system user; install postgresql or run as another user"
        ) from None
    return SUPERUSER


def _give(path: Path, owner: str | None) -> None:
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700 if path.name == "data" else 0o755)


def _open_path_to(path: Path) -> None:
    """Let the cluster owner traverse every ancestor of `path` (pytest's tmp dirs are 0700)."""
    if os.geteuid() != 0:
        return
    for parent in path.parents:
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _run_as(owner: str | None, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = ["runuser", "-u", owner, "--", *argv] if owner is not None else argv
    # cwd "/" so the server never holds a test's working directory open.
    result = subprocess.run(command, capture_output=True, text=True, cwd="/", check=False)
    if check and result.returncode != 0:
        raise PostgresError(
            f"{' '.join(argv[:2])} failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-600:]}"
        )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relpromote.testing.postgres", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="initdb + start a cluster in DIR, print its coordinates as JSON")
    start.add_argument("dir", type=Path)
    start.add_argument("name")
    start.add_argument("--port", type=int)
    start.add_argument("--durable", action="store_true", help="keep fsync and full_page_writes on (benchmarks)")
    stop = commands.add_parser("stop", help="stop the cluster in DIR and remove DIR")
    stop.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            cluster = PostgresCluster.start(args.dir, name=args.name, port=args.port, settings={} if args.durable else None)
            print(json.dumps(cluster.coordinates()))
        elif (args.dir / COORDINATES_FILE).exists():
            PostgresCluster.attach(args.dir).stop()
        else:
            shutil.rmtree(args.dir, ignore_errors=True)
    except PostgresError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
