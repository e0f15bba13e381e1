"""The ledger on a real PostgreSQL server (relpromote.adapters.pg_ledger), beside SQLite.

One server for the module; each test gets its own database, copied from a template the owner role
prepared with `relpromote ledger init-db`. relpromote connects as the role `app` over the server's
socket (trusted: no password anywhere), as a team would with ~/.pgpass or a service file.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from relpromote import events
from relpromote.adapters.pg_ledger import PgLedger, init_database
from relpromote.adapters.sqlite_ledger import SqliteLedger
from relpromote.errors import BadInput, Busy, ExitCode
from relpromote.ledger import Entry, LedgerStore, verify_chain
from relpromote.lock import Lock
from relpromote.project import Project, load_actor
from relpromote.testing.postgres import PostgresCluster
from relpromote.testing.sshd import SshHostFarm
from relpromote.usecases.locking import environment_lock
from relpromote.usecases.promote import PromoteRequest, promote
from tests.helpers import REPO, Cli, make_app_source, make_project, one_line_error, write_manifest
from tests.integration.conftest import commit_project, write_inventories
from tests.integration.test_promote import build, live_version
from tests.unit.real_ledger import Ledger, new_identity

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

OWNER, APP = "ledger_owner", "app"
TEMPLATE = "ledger_template"
_names = itertools.count(1)


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresCluster]:
    base = Path(tempfile.mkdtemp(prefix="relpromote-pgledger-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, base, ignore_errors=True)
        cluster = cleanup.enter_context(PostgresCluster.start(base / "pg", name="ledger"))
        cluster.create_role(OWNER)
        cluster.create_role(APP)
        cluster.create_database(TEMPLATE, owner=OWNER)
        init_database(url(cluster, TEMPLATE, OWNER), APP)
        yield cluster


def url(pg: PostgresCluster, database: str, user: str = APP) -> str:
    return f"postgresql:///{database}?host={pg.socket_dir}&port={pg.port}&user={user}"


def fresh_database(pg: PostgresCluster) -> str:
    """A database holding an empty ledger, as `ledger init-db` leaves it."""
    name = f"ledger_{next(_names)}"
    pg.create_database(name, owner=OWNER, template=TEMPLATE)
    return name


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], LedgerStore]]:
    """Opens the same ledger again at each call (a new connection or file handle), on each backend."""
    opened: list[LedgerStore] = []
    if request.param == "sqlite":
        def opener() -> LedgerStore:
            return SqliteLedger(tmp_path / "ledger.db")
    else:
        pg: PostgresCluster = request.getfixturevalue("pg")
        target = url(pg, fresh_database(pg))

        def opener() -> LedgerStore:
            return PgLedger(target)

    def tracked() -> LedgerStore:
        opened.append(opener())
        return opened[-1]

    yield tracked
    for store in opened:
        store.close()


ALICE, BOB = new_identity(), new_identity()


# ---- the same contract on both backends ----
def test_appends_chain_and_reopening_keeps_the_chain(open_store: Callable[[], LedgerStore]) -> None:
    first = open_store()
    for index in range(3):
        first.append("release.built", "alice", ALICE, {"n": index, "text": "ünïcode"})
    again = open_store()
    again.append("promotion.finished", "bob", BOB, {"environment": "qa"})
    entries = again.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries == first.entries() and verify_chain(entries, {ALICE.public_key: "alice", BOB.public_key: "bob"}).ok
    assert entries[0].payload == {"n": 0, "text": "ünïcode"}
    assert [e.seq for e in again.entries(["promotion.finished"])] == [4]


def test_a_refused_precondition_writes_nothing(open_store: Callable[[], LedgerStore]) -> None:
    store = open_store()
    store.append("release.built", "alice", ALICE, {"version": "1.0.0"})

    def already_built(entries: list[Entry]) -> None:
        if any(e.payload.get("version") == "1.0.0" for e in entries):
            raise BadInput("1.0.0 is built already")

    with pytest.raises(BadInput, match="built already"):
        store.append("release.built", "alice", ALICE, {"version": "1.0.0"}, already_built)
    store.append("release.built", "alice", ALICE, {"version": "1.1.0"})
    assert [e.payload["version"] for e in store.entries()] == ["1.0.0", "1.1.0"]


def test_rename_and_authority_are_recorded_in_the_same_append(open_store: Callable[[], LedgerStore]) -> None:
    store = open_store()
    authority = {"document": {"people": ["alice"]}, "digest": "d1"}
    store.stamp = lambda: {"commit": "abc", "digest": "cfg"}
    store.authority = lambda last: None if last is not None and last.get("digest") == authority["digest"] else dict(authority)
    store.append("release.built", "alice", ALICE, {"n": 1})
    authority = {"document": {"people": ["alicia"]}, "digest": "d2"}
    store.append("release.built", "alicia", ALICE, {"n": 2})
    store.append("release.built", "alicia", ALICE, {"n": 3})
    entries = store.entries()
    assert [(e.kind, e.actor) for e in entries] == [
        (events.AUTHORITY_RECORDED, "alice"), ("release.built", "alice"),
        (events.PERSON_RENAMED, "alicia"), (events.AUTHORITY_RECORDED, "alicia"), ("release.built", "alicia"), ("release.built", "alicia"),
    ]
    assert entries[2].payload == {"from": "alice", "to": "alicia", "config": {"commit": "abc", "digest": "cfg"}}
    assert entries[3].payload["digest"] == "d2" and entries[3].payload["config"] == {"commit": "abc", "digest": "cfg"}
    assert verify_chain(entries, {ALICE.public_key: "alicia"}).ok


def test_environment_locks(open_store: Callable[[], LedgerStore]) -> None:
    mine, other = open_store(), open_store()
    wanted = Lock("qa", "id-1", "oscar", "promote 1.0.0", "2026-11-30T10:00:00.000000Z", os.getpid(), "oscar@ci")
    assert mine.acquire(wanted) == wanted
    held = other.acquire(Lock("qa", "id-2", "alice", "rollback", "2026-11-30T10:01:00.000000Z", 1, "alice@laptop"))
    assert held == wanted and other.current("qa") == wanted and other.current("production") is None
    assert not other.release("qa", "id-2") and mine.release("qa", "id-1")
    assert other.current("qa") is None


def test_the_policy_folds_the_same_ledger_on_both_backends(open_store: Callable[[], LedgerStore], tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "fold.db")
    ledger.store.close()
    ledger.store = open_store()
    ledger.build("1.0.0")
    ledger.promote("1.0.0", "qa")
    ledger.accept("1.0.0", "qa")
    ledger.reject("1.0.0", "deployment")
    state = ledger.state()
    assert not state.ignored and state.releases["1.0.0"].digest == ledger.digest("1.0.0")
    assert [e.kind for e in ledger.store.entries()] == [events.RELEASE_BUILT, events.PROMOTION_FINISHED, events.VERDICT_ACCEPTED,
                                                       events.VERDICT_REJECTED]


# ---- PostgreSQL only ----
def test_the_database_keeps_the_ledger_append_only(pg: PostgresCluster) -> None:
    database = fresh_database(pg)
    store = PgLedger(url(pg, database))
    store.append("release.built", "alice", ALICE, {"n": 1})
    store.close()
    with pg.connect(database, user=APP) as app:
        for statement in ("UPDATE relpromote.entries SET actor = 'mallory'", "DELETE FROM relpromote.entries",
                          "TRUNCATE relpromote.entries"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement.encode())
    with pg.connect(database, user=OWNER) as owner:  # the owner may, but the triggers refuse
        for statement in ("UPDATE relpromote.entries SET actor = 'mallory'", "DELETE FROM relpromote.entries",
                          "TRUNCATE relpromote.entries"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                owner.execute(statement.encode())
    assert pg.scalar(database, "SELECT count(*) FROM relpromote.entries WHERE actor = 'alice'") == 1


@pytest.mark.parametrize("grant", ["DELETE", "UPDATE", "TRUNCATE"])
def test_a_role_that_can_rewrite_the_ledger_is_refused_with_the_statement_that_fixes_it(pg: PostgresCluster, grant: str) -> None:
    database = fresh_database(pg)
    pg.execute(database, f"GRANT {grant} ON relpromote.entries TO {APP}")
    with pytest.raises(BadInput) as refused:
        PgLedger(url(pg, database))
    assert refused.value.code == ExitCode.BAD_INPUT
    assert f"role app may {grant} relpromote.entries" in refused.value.message
    fix = 'REVOKE UPDATE, DELETE, TRUNCATE ON relpromote.entries FROM "app"; GRANT SELECT, INSERT ON relpromote.entries TO "app";'
    assert fix in refused.value.message
    pg.execute(database, f'REVOKE UPDATE, DELETE, TRUNCATE ON relpromote.entries FROM "{APP}"')  # the fix, as given
    PgLedger(url(pg, database)).close()


def test_the_owner_a_superuser_and_a_database_without_the_schema_are_refused(pg: PostgresCluster) -> None:
    database = fresh_database(pg)
    with pytest.raises(BadInput, match=r"role ledger_owner owns relpromote\.entries"):
        PgLedger(url(pg, database, OWNER))
    with pytest.raises(BadInput, match="role postgres is a superuser"):
        PgLedger(url(pg, database, "postgres"))
    pg.create_database("empty_db")
    with pytest.raises(BadInput, match=r"has no relpromote ledger .* relpromote ledger init-db --url URL --grant app$"):
        PgLedger(url(pg, "empty_db"))


APPENDER = """
import sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from relpromote.adapters.pg_ledger import PgLedger
from relpromote.identity import Identity, public_key_line

key = Ed25519PrivateKey.generate()
me = Identity(key, public_key_line(key.public_key()))
store = PgLedger(sys.argv[1])
print(me.public_key, flush=True)
sys.stdin.readline()  # go
for n in range(int(sys.argv[3])):
    store.append("release.built", sys.argv[2], me, {"n": n, "by": sys.argv[2]})
store.close()
"""


def test_two_processes_appending_at_once_keep_one_linear_chain(pg: PostgresCluster) -> None:
    target = url(pg, fresh_database(pg))
    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, target, name, "40"], cwd=REPO, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for name in ("alice", "bob")]
    keys = {}
    for writer, name in zip(writers, ("alice", "bob"), strict=True):
        assert writer.stdout is not None and writer.stdin is not None
        keys[writer.stdout.readline().strip()] = name
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    store = PgLedger(target)
    entries = store.entries()
    store.close()
    assert len(entries) == 80 and [e.seq for e in entries] == list(range(1, 81))
    assert verify_chain(entries, keys).ok
    by = [e.actor for e in entries]
    assert sorted(e.payload["n"] for e in entries if e.actor == "alice") == list(range(40))
    assert any(a != b for a, b in itertools.pairwise(by)), "the writers never interleaved: the test proved nothing"


# ---- a project on a PostgreSQL ledger, through the command line ----
@pytest.fixture(scope="module")
def world(pg: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A project whose SQLite ledger holds a built release, and its app source."""
    base = tmp_path_factory.mktemp("pgworld")
    project = make_project(base / "proj")
    source = make_app_source(base / "app")
    manifest = write_manifest(project.cwd / "1.0.0.yml", "1.0.0")
    project.run("build", "1.0.0", "--source", str(source), "--manifest", str(manifest), identity="alice", check=True)
    return {"project": project, "base": base}


def set_ledger_url(project: Cli, ledger_url: str) -> None:
    path = project.cwd / "relpromote.yml"
    config = yaml.safe_load(path.read_text())
    config["ledger"] = {"url": ledger_url}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def sqlite_rows(path: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT seq, recorded_at, kind, actor, public_key, payload, prev_hash, hash, signature FROM entries ORDER BY seq").fetchall()


def test_migrate_a_sqlite_ledger_and_keep_working_on_postgresql(pg: PostgresCluster, world: dict[str, Any]) -> None:
    project: Cli = world["project"]
    pg.create_database("migrated", owner=OWNER)
    init = project.json("ledger", "init-db", "--url", url(pg, "migrated", OWNER), "--grant", APP)
    assert init["database"] == "migrated"
    target = url(pg, "migrated")
    before = project.json("audit", "verify")
    moved = project.json("ledger", "migrate", "--url", target, identity="alice")
    assert moved["verified"] and moved["entry_count"] == before["entry_count"] >= 1 and moved["head"] == before["head"]
    original = sqlite_rows(project.cwd / ".relpromote" / "ledger.db")
    copied = pg.query("migrated", "SELECT seq, recorded_at, kind, actor, public_key, payload, prev_hash, hash, signature "
                                  "FROM relpromote.entries ORDER BY seq")
    assert [(*row[:5], json.loads(row[5]), *row[6:]) for row in copied] == [(*row[:5], json.loads(row[5]), *row[6:]) for row in original]
    again = project.run("--json", "ledger", "migrate", "--url", target)
    assert again.returncode == 2 and "already holds" in json.loads(again.stdout)["error"]

    set_ledger_url(project, target)
    try:
        after = project.json("audit", "verify")
        assert after["head"] == before["head"] and after["entry_count"] == before["entry_count"]
        manifest = write_manifest(project.cwd / "1.1.0.yml", "1.1.0")
        source = world["base"] / "app"
        project.run("build", "1.1.0", "--source", str(source), "--manifest", str(manifest), identity="alice", check=True)
        releases = project.json("releases")
        assert {r["version"] for r in releases["releases"]} >= {"1.0.0", "1.1.0"}
        assert pg.scalar("migrated", "SELECT count(*) FROM relpromote.entries") > before["entry_count"]
        assert project.json("audit", "verify")["ok"]
    finally:
        set_ledger_url(project, "sqlite:///.relpromote/ledger.db")


def test_migrate_refuses_a_sqlite_ledger_that_does_not_verify(pg: PostgresCluster, tmp_path: Path) -> None:
    project = make_project(tmp_path / "tampered")
    project.run("authority", "show", identity="alice")
    ledger = project.cwd / ".relpromote" / "ledger.db"
    store = SqliteLedger(ledger)
    store.append("release.built", "alice", new_identity(), {"version": "6.6.6"})  # a key the config gives no one
    store.close()
    target = fresh_database(pg)
    result = project.run("ledger", "migrate", "--url", url(pg, target))
    assert result.returncode == 1, result.stderr
    assert "the SQLite ledger does not verify (entry #1: signed with a key the config gives no one" in one_line_error(result)
    assert pg.scalar(target, "SELECT count(*) FROM relpromote.entries") == 0


def test_a_password_in_the_url_is_refused(world: dict[str, Any], pg: PostgresCluster) -> None:
    project: Cli = world["project"]
    with_password = f"postgresql://{APP}:s3cret-7f1c@127.0.0.1:{pg.port}/migrated"
    result = project.run("ledger", "migrate", "--url", with_password)
    assert result.returncode == 2 and "carries a password in clear" in one_line_error(result) and "s3cret" not in result.stderr
    set_ledger_url(project, with_password)
    try:
        result = project.run("status")
        line = one_line_error(result)
        assert result.returncode == 2 and "~/.pgpass" in line and "s3cret" not in line
    finally:
        set_ledger_url(project, "sqlite:///.relpromote/ledger.db")


HOLDER = """
import sys, time
from pathlib import Path
from relpromote.project import Project, load_actor
from relpromote.usecases.locking import environment_lock
from relpromote.usecases.promote import PromoteRequest, promote

project = Project.open(Path(sys.argv[1]))
with environment_lock(project, "qa", "oscar", "promote 1.0.0") as lock:
    print(lock.lock_id, flush=True)
    time.sleep(600)
"""


def test_a_live_holder_blocks_others_and_a_killed_one_leaves_a_visibly_stale_lock(pg: PostgresCluster, tmp_path: Path) -> None:
    project = make_project(tmp_path / "locks")
    set_ledger_url(project, url(pg, fresh_database(pg)))
    config = project.cwd / "relpromote.yml"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(config)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        lock_id = holder.stdout.readline().strip()
        assert lock_id, "the holder did not take the lock"
        status = project.json("lock", "status", "--env", "qa")
        assert status["lock"]["lock_id"] == lock_id and status["lock"]["holder_alive"] is True
        other = Project.open(config)
        try:
            with pytest.raises(Busy) as busy, environment_lock(other, "qa", "alice", "rollback"):
                pass
        finally:
            other.close()
        assert busy.value.code == ExitCode.BUSY
        assert "qa is locked by oscar (promote 1.0.0)" in busy.value.message and f"pid {holder.pid} on " in busy.value.message
        release = project.run("lock", "release", "--env", "qa", "--lock-id", lock_id, identity="alice")
        assert release.returncode == 4 and "still holds the lock" in one_line_error(release)

        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        status = project.json("lock", "status", "--env", "qa")
        assert status["lock"]["lock_id"] == lock_id and status["lock"]["holder_alive"] is False
        assert "STALE: its holder's database session is gone" in project.run("lock", "status", "--env", "qa", check=True).stdout
        store = PgLedger(project_url(project))
        try:
            with pytest.raises(Busy, match="its database session is gone"):
                held = store.acquire(Lock("qa", "x", "alice", "rollback", "2026-11-30T10:00:00.000000Z", 1, "a@b"))
                raise held.busy()
        finally:
            store.close()
        project.run("lock", "release", "--env", "qa", "--lock-id", lock_id, "--reason", "holder killed", identity="alice", check=True)
        assert project.json("lock", "status", "--env", "qa")["locked"] is False
        released = [e for e in project.json("history", "--kind", "lock")["entries"] if e["kind"] == events.LOCK_RELEASED]
        assert released and released[-1]["payload"]["holder_alive"] is False
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def project_url(project: Cli) -> str:
    return str(yaml.safe_load((project.cwd / "relpromote.yml").read_text())["ledger"]["url"])


def test_two_operators_in_two_clones_share_one_chain_and_one_lock(pg: PostgresCluster, tmp_path: Path, farm: SshHostFarm) -> None:
    """Two clones of one project on one PostgreSQL ledger: while the first operator's promotion runs, the second's gets
    exit 4 naming the first run; afterwards both see one chain that verifies."""
    first = make_project(tmp_path / "first")
    write_inventories(first, farm)
    set_ledger_url(first, url(pg, fresh_database(pg)))
    commit_project(first, "share the ledger on PostgreSQL")
    build(first, make_app_source(tmp_path / "app"), "1.0.0", "hello")
    shutil.copytree(first.cwd, tmp_path / "second", symlinks=True)  # another operator's clone, keys and store included
    second = Cli(tmp_path / "second")

    refused: list[subprocess.CompletedProcess[str]] = []

    def second_operator_tries_meanwhile(event: Mapping[str, Any]) -> None:
        if not refused:  # the first event of the run: the first operator holds qa's lock
            refused.append(second.run("promote", "1.0.0", "--to", "qa", identity="alice"))

    opened = Project.open(first.cwd / "relpromote.yml")
    try:
        identity, actor = load_actor(opened, str(first.cwd / ".keys" / "oscar.key"))
        promote(opened, identity, actor, PromoteRequest("1.0.0", "qa"), on_event=second_operator_tries_meanwhile)
    finally:
        opened.close()
    assert refused and refused[0].returncode == 4, refused[0].stderr if refused else "no event"
    line = one_line_error(refused[0])
    assert "qa is locked by oscar (promotion of 1.0.0)" in line and f"pid {os.getpid()} on " in line
    assert live_version(farm, "qa-app-1") == "1.0.0" and live_version(farm, "qa-app-2") == "1.0.0"
    seen_by_second = second.json("audit", "verify")
    assert seen_by_second["ok"] and seen_by_second["head"] == first.json("audit", "verify")["head"]
    kinds = [e["kind"] for e in second.json("history")["entries"]]
    assert kinds.count(events.PROMOTION_FINISHED) == 1 and events.RELEASE_BUILT in kinds
    assert second.json("lock", "status", "--env", "qa")["locked"] is False
