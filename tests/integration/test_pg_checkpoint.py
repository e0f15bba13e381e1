"""The PostgreSQL store's reads behind the state checkpoint of `status` and `history` (relpromote.adapters.state_checkpoint):
its fingerprint changes with every write, an old row rewritten by the owner behind the disabled triggers included, and
`entries_mentioning` is a superset of the entries about a text, escapes included. A real PostgreSQL server."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from relpromote.adapters.pg_ledger import PgLedger, init_database
from relpromote.ledger import entries_about
from relpromote.testing.postgres import PostgresCluster
from tests.unit.real_ledger import new_identity

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

OWNER, APP = "ledger_owner", "app"
ALICE = new_identity()


@pytest.fixture(scope="module")
def database() -> Iterator[tuple[PostgresCluster, str]]:
    base = Path(tempfile.mkdtemp(prefix="relpromote-pgcheckpoint-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, base, ignore_errors=True)
        cluster = cleanup.enter_context(PostgresCluster.start(base / "pg", name="checkpoint"))
        cluster.create_role(OWNER)
        cluster.create_role(APP)
        cluster.create_database("ledger", owner=OWNER)
        init_database(f"postgresql:///ledger?host={cluster.socket_dir}&port={cluster.port}&user={OWNER}", APP)
        yield cluster, f"postgresql:///ledger?host={cluster.socket_dir}&port={cluster.port}&user={APP}"


def test_fingerprint_and_mentions(database: tuple[PostgresCluster, str]) -> None:
    cluster, url = database
    store = PgLedger(url)
    try:
        for version in ("1.0.0", "1.0.0-é", "2.0.0"):
            store.append("release.built", "alice", ALICE, {"version": version, "environment": "qa"})
        before = store.fingerprint()
        entries = store.entries()
        assert before["head"] == [3, 3, entries[-1].hash]
        again = PgLedger(url)
        try:
            assert again.fingerprint() == before  # another connection, nothing written: the same
        finally:
            again.close()
        for version in ("1.0.0", "1.0.0-é"):
            found = store.entries_mentioning([version])
            assert entries_about(found, version=version) == entries_about(entries, version=version) != []
        # Not read: an entry that mentions neither the text nor has any escape (the é is stored as an escape).
        assert {e.payload["version"] for e in store.entries_mentioning(["2.0.0"])} == {"1.0.0-é", "2.0.0"}
        with cluster.connect("ledger", user=OWNER) as owner:  # the owner, behind the triggers it may disable
            owner.execute(b"ALTER TABLE relpromote.entries DISABLE TRIGGER entries_append_only")
            owner.execute("UPDATE relpromote.entries SET payload = %s WHERE seq = 1",
                          (json.dumps({"version": "1.0.1", "environment": "qa"}, sort_keys=True),))
            owner.execute(b"ALTER TABLE relpromote.entries ENABLE TRIGGER entries_append_only")
        after = store.fingerprint()
        assert after["head"] == before["head"] and after != before
        store.append("release.built", "alice", ALICE, {"version": "3.0.0"})
        assert store.fingerprint()["head"][0] == 4
    finally:
        store.close()
