"""QA refresh against schemas nobody in the project wrote (found by the second red team).

What holds (checked by hand, kept here so it stays so): a table without a primary key, columns named with a
space or a reserved word, a partitioned table's default partition, a domain over text, a composite column, a
generated column over a masked one, a foreign key onto a masked unique column, an unlogged table, a 5 MB row,
NULLs and empty strings in masked columns. What did not: a production value of a masked column written into the
schema (a view's definition, a column's comment) arrives in QA verbatim, and a table with row-level security
fails every refresh behind a misleading "invalid snapshot identifier".
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relpromote.testing.postgres import clusters
from tests.integration.test_qa_refresh_engine import READER, READER_PASSWORD, SALT, Servers, column, fingerprint, run_refresh

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

VIP = "ceo.real@corp.example"
SCHEMA = """
CREATE DOMAIN email_t AS text CHECK (VALUE LIKE '%@%');
CREATE TYPE contact AS (label text, addr text);
CREATE TABLE people (id int PRIMARY KEY, email text UNIQUE, "full name" text, "user" text, "order" text,
    mail2 email_t, c contact, email_lower text GENERATED ALWAYS AS (lower(email)) STORED);
CREATE TABLE nopk (email text, other text);
CREATE TABLE parted (id int, region text, email text) PARTITION BY LIST (region);
CREATE TABLE parted_eu PARTITION OF parted FOR VALUES IN ('eu');
CREATE TABLE parted_def PARTITION OF parted DEFAULT;
CREATE TABLE refs (id int PRIMARY KEY, email text REFERENCES people(email));
CREATE UNLOGGED TABLE unl (id int, email text);
CREATE TABLE wide (id int, email text, big text);
"""
DATA = f"""
INSERT INTO people (id, email, "full name", "user", "order", mail2, c) VALUES
 (1, '{VIP}', 'Real Person', 'realuser1', 'ord', 'mail2.real@corp.example', ROW('home', 'composite.real@corp.example')),
 (2, NULL, '', NULL, '', NULL, NULL),
 (3, '', NULL, '', NULL, 'x@y', ROW(NULL, NULL));
INSERT INTO nopk VALUES ('nopk.real@corp.example', 'a'), ('nopk.real@corp.example', 'a'), (NULL, NULL);
INSERT INTO parted VALUES (1, 'eu', 'eu.real@corp.example'), (2, 'us', 'default.real@corp.example');
INSERT INTO refs VALUES (1, '{VIP}');
INSERT INTO unl VALUES (1, 'unl.real@corp.example');
INSERT INTO wide VALUES (1, 'wide.real@corp.example', repeat('x', 5000000));
"""
MASKING: dict[str, Any] = {
    "people": {"email": "pseudonym", "full name": "fake_name", "user": "pseudonym", "order": "null", "mail2": "fake_email", "c": "null"},
    "nopk": {"email": "fake_email"}, "parted": {"email": "fake_email"}, "refs": {"email": "pseudonym"},
    "unl": {"email": "fake_email"}, "wide": {"email": "fake_email"},
}
ORIGINALS = [VIP, "realuser1", "mail2.real@corp.example", "composite.real@corp.example", "nopk.real@corp.example",
             "eu.real@corp.example", "default.real@corp.example", "unl.real@corp.example", "wide.real@corp.example"]


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    base = Path(tempfile.mkdtemp(prefix="relpromote-odd-schemas-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, base, ignore_errors=True)
        started = cleanup.enter_context(clusters(base / "pg", "prod", "qa"))
        prod, qa = started["prod"], started["qa"]
        prod.create_role(READER, password=READER_PASSWORD, read_only=True)
        for name, extra in (("odd", ""), ("leaky", f"CREATE VIEW vip AS SELECT id FROM people WHERE email = '{VIP}';"
                                                   f"COMMENT ON COLUMN people.email IS 'e.g. {VIP}';"),
                            ("guarded", "ALTER TABLE nopk ENABLE ROW LEVEL SECURITY;")):
            for cluster in (prod, qa):
                cluster.create_database(name)
                # Production's schema only: QA's database starts without the planted value, whose arrival is the test.
                cluster.execute(name, SCHEMA + (extra if cluster is prod else ""))
            prod.execute(name, DATA)
        salt_file = base / "refresh-salt"
        salt_file.write_text(SALT + "\n")
        salt_file.chmod(0o600)
        yield Servers(prod, qa, salt_file, base / "runs")


def schema_of(servers: Servers, database: str) -> str:
    qa = servers.qa
    return subprocess.run([str(qa.bin_dir / "pg_dump"), "--schema-only", "-h", str(qa.socket_dir), "-p", str(qa.port),
                           "-U", "postgres", database], check=True, capture_output=True, text=True).stdout


def test_odd_but_plain_schemas_refresh_masked(servers: Servers) -> None:
    outcome = run_refresh(servers, "odd", qa_data_refresh_masking=MASKING, qa_data_refresh_carry_over=[])
    assert outcome.rc == 0, outcome.failures
    qa = servers.qa
    text = "\n".join(str(row) for table in ("people", "nopk", "parted", "refs", "unl") for row in qa.query("odd", f"SELECT * FROM {table}"))
    text += "\n".join(column(qa, "odd", "SELECT email FROM wide"))
    assert not [value for value in ORIGINALS if value in text], text
    assert column(qa, "odd", "SELECT email = lower(email_lower) OR email IS NULL FROM people ORDER BY id") == [True] * 3
    assert column(qa, "odd", "SELECT count(*) FROM people JOIN refs USING (email)") == [1]
    assert column(qa, "odd", "SELECT length(big) FROM wide") == [5000000]
    assert column(qa, "odd", "SELECT relpersistence FROM pg_class WHERE relname = 'unl'") == ["u"]
    assert column(qa, "odd", "SELECT email IS NULL FROM people WHERE id = 2") == [True]


def test_a_masked_value_written_into_the_schema_does_not_reach_qa(servers: Servers) -> None:
    before = fingerprint(servers.qa, "leaky")
    outcome = run_refresh(servers, "leaky", qa_data_refresh_masking=MASKING, qa_data_refresh_carry_over=[])
    if outcome.rc != 0:  # refusing is fine, if it says where and leaves QA as it was
        assert "vip" in str(outcome.failures[-1]["msg"]) and fingerprint(servers.qa, "leaky") == before
    assert VIP not in schema_of(servers, "leaky")


def test_a_table_with_row_level_security_is_named_as_the_cause(servers: Servers) -> None:
    before = fingerprint(servers.qa, "guarded")
    outcome = run_refresh(servers, "guarded", qa_data_refresh_masking=MASKING, qa_data_refresh_carry_over=[])
    assert outcome.rc != 0 and fingerprint(servers.qa, "guarded") == before
    message = str(outcome.failures[-1]["msg"])
    assert "row-level security" in message and "nopk" in message, message
