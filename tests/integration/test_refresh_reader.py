"""Production is read with least privilege: `refresh-qa --check-reader` names what the reader role can do beyond
reading, the README's hardening takes it away (checked on the database, not on the report), and a source role that
can write is refused by the refresh itself."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from relpromote.testing.postgres import PostgresCluster, clusters
from tests.helpers import Cli
from tests.integration.test_promote import ledger_payloads
from tests.integration.test_qa_refresh_engine import READER, READER_PASSWORD, fingerprint, seed_production, seed_qa
from tests.integration.test_refresh_qa import refresh_project

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
HARDENING = [
    "REVOKE TEMP ON DATABASE shop FROM PUBLIC",
    "REVOKE EXECUTE ON FUNCTION lo_creat(integer), lo_create(oid), lo_from_bytea(oid, bytea), lo_import(text), "
    "lo_import(text, oid) FROM PUBLIC",
    f"ALTER ROLE {READER} CONNECTION LIMIT 8",
]


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[Cli, PostgresCluster, PostgresCluster]]:
    base = Path(tempfile.mkdtemp(prefix="relpromote-reader-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, base, ignore_errors=True)
        started = cleanup.enter_context(clusters(base / "pg", "prod", "qa"))
        prod, qa = started["prod"], started["qa"]
        prod.create_role(READER, password=READER_PASSWORD, read_only=True)
        seed_production(prod, "shop", customers=100, orders_per_customer=1)
        seed_qa(qa, "shop")
        yield refresh_project(base, prod, qa), prod, qa


def reader_connection(prod: PostgresCluster) -> psycopg.Connection[tuple[object, ...]]:
    return prod.connect("shop", user=READER, password=READER_PASSWORD, tcp=True)


def test_a_plain_pg_read_all_data_member_is_reported_then_hardened(setup: tuple[Cli, PostgresCluster, PostgresCluster]) -> None:
    project, prod, _ = setup
    before = project.run("refresh-qa", "--check-reader", identity="nightly")
    assert before.returncode == 3, before.stderr
    assert "Traceback" not in before.stderr
    for finding in ("can create temporary tables", "can create large objects", "has no connection limit"):
        assert finding in before.stderr, before.stderr
    # What the report says is true on the database.
    with reader_connection(prod) as conn:
        conn.execute("CREATE TEMP TABLE t (x int)")
        conn.execute("SELECT lo_create(0)")
        conn.rollback()

    for statement in HARDENING:
        prod.execute("shop", statement)
    after = project.run("refresh-qa", "--check-reader", identity="nightly")
    assert after.returncode == 0, after.stderr
    report = json.loads(after.stdout)
    assert report["result"] == "reader_ok" and report["refused"] == [] and report["findings"] == []
    assert any("change its own password" in note for note in report["notes"])  # said plainly, not hidden
    with reader_connection(prod) as conn:
        for statement in ("CREATE TEMP TABLE t (x int)", "SELECT lo_create(0)", "SELECT lo_from_bytea(0, 'x')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (100,)
    refreshed = project.run("refresh-qa", identity="nightly")  # the hardened reader is enough for a refresh
    assert refreshed.returncode == 0, refreshed.stderr


@pytest.mark.parametrize(
    ("grant", "revoke", "named"),
    [
        (f"ALTER ROLE {READER} SUPERUSER", f"ALTER ROLE {READER} NOSUPERUSER", "is a superuser"),
        (f"GRANT INSERT ON customers TO {READER}", f"REVOKE INSERT ON customers FROM {READER}", "can write to tables"),
        (f"GRANT pg_write_all_data TO {READER}", f"REVOKE pg_write_all_data FROM {READER}", "pg_write_all_data"),
    ],
)
def test_a_source_role_that_can_write_is_refused(
    setup: tuple[Cli, PostgresCluster, PostgresCluster], grant: str, revoke: str, named: str
) -> None:
    project, prod, qa = setup
    before = (qa.databases(), fingerprint(qa, "shop"))
    finished = len(ledger_payloads(project, "refresh.finished"))
    prod.execute("shop", grant)
    try:
        refused = project.run("refresh-qa", identity="nightly")
        checked = project.run("refresh-qa", "--check-reader", identity="nightly")
    finally:
        prod.execute("shop", revoke)
    assert refused.returncode == 3, refused.stderr
    assert named in refused.stderr and "may not be the refresh's source" in refused.stderr
    assert json.loads(refused.stdout.splitlines()[-1])["exit_code"] == 3
    assert checked.returncode == 3 and named in checked.stderr
    assert (qa.databases(), fingerprint(qa, "shop")) == before
    recorded = ledger_payloads(project, "refresh.finished")
    assert len(recorded) == finished + 1 and recorded[-1]["result"] == "failed"


def test_the_readme_gives_the_hardening_the_check_asks_for() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for text in ("--check-reader", "REVOKE TEMP ON DATABASE", "lo_from_bytea(oid, bytea)", "CONNECTION LIMIT", "own password"):
        assert text in readme, text
