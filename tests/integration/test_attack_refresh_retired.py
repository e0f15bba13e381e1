"""The QA refresh drops only the databases a refresh of that QA database left behind (its new copy of a killed run, the
copy its swap retired), never a database that merely carries the name: one another role made, one with someone
connected to it, another QA database whose name shares the prefix. Real refreshes (playbooks/refresh_qa_data.yml via
ansible-runner) against two real PostgreSQL servers of relpromote.testing.postgres; assertions read QA's catalog."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from relpromote.testing.postgres import clusters
from tests.integration.test_qa_refresh_engine import READER, READER_PASSWORD, SALT, Servers, run_refresh, seed_production, seed_qa

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

ANALYST = "analyst"  # another team's role on QA's server, allowed to create databases
# Named as a refresh names its leftovers; made by the analyst, not by a refresh.
FOREIGN = ["shop__retired_20200101T000000", "shop__incoming_20200101T000000"]
# Another QA database whose name starts as shop's retired copies do, refreshed by relpromote in its own right: it holds
# what a refresh writes on the database it swaps in, for itself.
OTHER_QA = "shop__retired_qa2"


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    base = Path(tempfile.mkdtemp(prefix="relpromote-attack-retired-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, base, ignore_errors=True)
        started = cleanup.enter_context(clusters(base / "pg", "prod", "qa"))
        prod, qa = started["prod"], started["qa"]
        prod.create_role(READER, password=READER_PASSWORD, read_only=True)
        seed_production(prod, "shop", customers=60, orders_per_customer=1)
        seed_qa(qa, "shop")
        qa.create_database("shop__previous")  # QA's copy before the last refresh, made before relpromote refreshed it
        qa.create_role(ANALYST, createdb=True)
        for name in FOREIGN:
            with qa.connect("postgres", user=ANALYST) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            with qa.connect(name, user=ANALYST) as conn:
                conn.execute("CREATE TABLE findings (note text)")
                conn.execute("INSERT INTO findings VALUES ('keep me')")
        qa.create_database(OTHER_QA)
        marker = {"relpromote_refresh": {"refreshed_at": "2026-11-30T00:00:00+00:00", "run": "0" * 32, "source": "shop", "tables": {}},
                  "relpromote_leftover": {"of": OTHER_QA, "as": "incoming", "at": "2026-11-30T00:00:00+00:00"}}
        qa.execute("postgres", f'COMMENT ON DATABASE "{OTHER_QA}" IS \'{json.dumps(marker)}\'')
        salt_file = base / "refresh-salt"
        salt_file.write_text(SALT + "\n", encoding="utf-8")
        salt_file.chmod(0o600)
        yield Servers(prod, qa, salt_file, base / "runs")


def shop_databases(servers: Servers) -> list[str]:
    return [name for name in servers.qa.databases() if name.startswith("shop")]


def comment(servers: Servers, name: str) -> Any:
    raw = servers.qa.scalar("postgres", "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [name])
    return json.loads(raw) if raw else None


def test_only_what_a_refresh_of_that_database_retired_is_ever_dropped(servers: Servers) -> None:
    # Someone works in the analyst's database that is named like a retired copy while the refresh runs.
    with psycopg.connect(servers.qa.conninfo(FOREIGN[0], user=ANALYST), autocommit=True) as working:
        first = run_refresh(servers)
        assert first.rc == 0, first.failures
        retired = first.summary["retired_database"]
        assert retired.startswith("shop__retired_") and retired not in FOREIGN
        assert shop_databases(servers) == sorted(["shop", "shop__previous", retired, OTHER_QA, *FOREIGN])
        # The copy the swap retired carries the refresh's mark, written in the swap's transaction.
        assert comment(servers, retired)["relpromote_leftover"]["of"] == "shop"
        assert working.execute("SELECT note FROM findings").fetchall() == [("keep me",)]  # never disconnected

        second = run_refresh(servers)
        assert second.rc == 0, second.failures
        again = second.summary["retired_database"]
        # The first run's retired copy is dropped as the second starts; nothing else.
        assert shop_databases(servers) == sorted(["shop", "shop__previous", again, OTHER_QA, *FOREIGN])
        assert working.execute("SELECT note FROM findings").fetchall() == [("keep me",)]
    for name in FOREIGN:
        assert servers.qa.query(name, "SELECT note FROM findings") == [("keep me",)]
    assert comment(servers, OTHER_QA)["relpromote_leftover"]["of"] == OTHER_QA  # the other QA database, untouched

