"""Masking that survives real schemas: unique columns and format CHECKs (table and domain) are seen by the plan.

A rule that cannot keep a unique column unique, or whose values break a CHECK constraint, is refused by the dry
run and by the plan before any copy (QA untouched), naming the rule that works; with those rules the refresh
succeeds, unique stays unique, formats hold, and no production value is left in the masked columns.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relpromote.testing.postgres import clusters
from tests.integration.test_qa_refresh_engine import READER, READER_PASSWORD, SALT, Servers, column, run_refresh

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

SCHEMA = """
CREATE DOMAIN iban AS text CHECK (VALUE ~ '^[A-Z]{2}[0-9]{2}[A-Z0-9]{4}[0-9]{10}$');
CREATE SCHEMA "Billing";
CREATE TABLE "Billing"."Accounts" (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL,
    full_name text NOT NULL UNIQUE,
    phone text UNIQUE,
    card_number text UNIQUE,
    tax_id text NOT NULL UNIQUE CHECK (tax_id ~ '^[0-9]{2}-[0-9]{7}$'),
    account iban
);
CREATE UNIQUE INDEX accounts_lower_email ON "Billing"."Accounts" (lower(email));
"""
ROWS = 3000
GOOD: dict[str, Any] = {
    "Billing.Accounts": {
        "email": "fake_email",
        "full_name": {"fake_name": {"unique": True}},
        "phone": {"fake_phone": {"unique": True}},
        "card_number": "format_pseudonym",
        "tax_id": "format_pseudonym",
        "account": {"format_pseudonym": 4},
    }
}


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    base = Path(tempfile.mkdtemp(prefix="relpromote-real-schemas-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, base, ignore_errors=True)
        started = cleanup.enter_context(clusters(base / "pg", "prod", "qa"))
        prod, qa = started["prod"], started["qa"]
        prod.create_role(READER, password=READER_PASSWORD, read_only=True)
        for cluster in (prod, qa):
            cluster.create_database("bank")
            with cluster.connect("bank") as conn:
                conn.execute(SCHEMA)
        with prod.connect("bank") as conn:
            conn.execute(
                """
                INSERT INTO "Billing"."Accounts" (email, full_name, phone, card_number, tax_id, account)
                SELECT 'user' || g || '@mail.example.com', 'Person Number ' || g,
                       '+44 20 ' || lpad(g::text, 8, '0'), '4111 1111 ' || lpad(g::text, 8, '0'),
                       lpad((g %% 100)::text, 2, '0') || '-' || lpad(g::text, 7, '0'),
                       'DE89' || lpad((g %% 10000)::text, 4, '0') || lpad(g::text, 10, '0')
                  FROM generate_series(1, %(n)s) g
                """,
                {"n": ROWS},
            )
            conn.execute("ANALYZE")
        salt_file = base / "refresh-salt"
        salt_file.write_text(SALT + "\n")
        salt_file.chmod(0o600)
        yield Servers(prod, qa, salt_file, base / "runs")


def refused(servers: Servers, masking: dict[str, Any], dry_run: bool) -> str:
    before = (qa_databases_of(servers), column(servers.qa, "bank", "SELECT count(*) FROM \"Billing\".\"Accounts\""))
    outcome = run_refresh(servers, "bank", qa_data_refresh_masking=masking, qa_data_refresh_carry_over=[],
                          qa_data_refresh_dry_run=dry_run)
    assert outcome.rc != 0, "the rule was accepted"
    assert (qa_databases_of(servers), column(servers.qa, "bank", "SELECT count(*) FROM \"Billing\".\"Accounts\"")) == before
    return str(outcome.failures[-1]["msg"])


def kept_databases(servers: Servers, database: str) -> list[str]:
    """QA's databases of `database` but the one the last swap retired, which every refresh drops as it starts (one that
    fails too): QA's database and its previous are what a failed refresh must leave as they were."""
    return [name for name in servers.qa.databases() if name.startswith(database) and not name.startswith(f"{database}__retired_")]


def qa_databases_of(servers: Servers) -> list[str]:
    return [name for name in servers.qa.databases() if name.startswith("bank")]


@pytest.mark.parametrize("dry_run", [True, False])
@pytest.mark.parametrize(
    ("column_name", "rule", "named"),
    [
        ("full_name", "fake_name", "{fake_name: {unique: true}}"),
        ("phone", "fake_phone", "{fake_phone: {unique: true}}"),
        ("card_number", {"partial": 4}, "format_pseudonym"),
        ("tax_id", "pseudonym", "format_pseudonym"),  # unique-safe, but breaks the format CHECK
        ("account", "pseudonym", "format_pseudonym"),  # the domain's CHECK
    ],
)
def test_a_rule_that_cannot_fit_is_refused_before_any_copy(
    servers: Servers, column_name: str, rule: Any, named: str, dry_run: bool
) -> None:
    masking = {"Billing.Accounts": {**GOOD["Billing.Accounts"], column_name: rule}}
    message = refused(servers, masking, dry_run)
    assert f"Billing.Accounts.{column_name}" in message or "Billing.Accounts:" in message, message
    assert named in message, message


def test_the_named_rules_refresh_keeping_keys_unique_and_formats_valid(servers: Servers) -> None:
    outcome = run_refresh(servers, "bank", qa_data_refresh_masking=GOOD, qa_data_refresh_carry_over=[])
    assert outcome.rc == 0, outcome.failures
    table = '"Billing"."Accounts"'
    for name in ("email", "full_name", "phone", "card_number", "tax_id", "account"):
        production = set(column(servers.prod, "bank", f"SELECT {name} FROM {table}"))
        masked = column(servers.qa, "bank", f"SELECT {name} FROM {table}")
        assert len(set(masked)) == ROWS, name  # unique stayed unique
        assert not production & set(masked), name
    for phone in column(servers.qa, "bank", f"SELECT phone FROM {table}"):
        assert re.fullmatch(r"\+44 \d\d \d{8}", phone), phone  # country code kept, shape kept
    for account in column(servers.qa, "bank", f"SELECT account FROM {table}"):
        assert account.startswith("DE89"), account
    assert re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", column(servers.qa, "bank", f"SELECT full_name FROM {table} LIMIT 1")[0])


# ---- leaks: a masked value copied into another column ----
LEAKY_SCHEMA = """
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, full_name text NOT NULL);
CREATE TABLE invoices (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers, billing_email text,
                       document jsonb, tags text[]);
CREATE TABLE "Misc" (id int PRIMARY KEY, "homePhone" bigint, ref text, info text, "Shipping-Address" text, kind text);
"""
LEAKY_MASKING: dict[str, Any] = {"customers": {"email": "fake_email", "full_name": "fake_name"}}


@pytest.fixture(scope="module")
def leaky(servers: Servers) -> str:
    for cluster in (servers.prod, servers.qa):
        cluster.create_database("leaky")
        with cluster.connect("leaky") as conn:
            conn.execute(LEAKY_SCHEMA)
    with servers.prod.connect("leaky") as conn:
        conn.execute("INSERT INTO customers SELECT g, 'client' || g || '@mail.example.com', 'Client Person ' || g "
                     "FROM generate_series(1, 1000) g")
        conn.execute("""INSERT INTO invoices SELECT g, g, 'billing@shop.example',
                               jsonb_build_object('lines', jsonb_build_array(jsonb_build_object('sku', 'SKU-' || g, 'qty', 2))),
                               ARRAY['paid', 'export']
                          FROM generate_series(1, 1000) g""")
        conn.execute("""INSERT INTO "Misc" SELECT g, 4930000000 + g,
                               (ARRAY['4111 1111 1111 1111', '5500-0000-0000-0004', '340000000000009', '6011000000000004'])[1 + g % 4],
                               '+49 30 ' || (1000000 + g), 'unit ' || g, 'plain'
                          FROM generate_series(1, 50) g""")
    return "leaky"


def leak_refresh(servers: Servers) -> Any:
    return run_refresh(servers, "leaky", qa_data_refresh_masking=LEAKY_MASKING, qa_data_refresh_carry_over=[])


def test_the_dry_run_flags_personal_looking_columns_by_name_and_by_content(servers: Servers, leaky: str) -> None:
    outcome = run_refresh(servers, "leaky", qa_data_refresh_masking=LEAKY_MASKING, qa_data_refresh_carry_over=[],
                          qa_data_refresh_dry_run=True)
    assert outcome.rc == 0, outcome.failures
    warnings = {line.split(" ")[0]: line for line in outcome.summary["warnings"]}
    assert "name suggests personal data (phone)" in warnings["Misc.homePhone"]  # camelCase, and not a text column
    assert "name suggests personal data (address)" in warnings["Misc.Shipping-Address"]
    assert "look like 50 payment card numbers (Luhn)" in warnings["Misc.ref"]
    assert "look like 50 phone numbers" in warnings["Misc.info"]
    assert "look like 200 email addresses" in warnings["invoices.billing_email"]


def test_a_refresh_without_leaks_passes_the_leak_check(servers: Servers, leaky: str) -> None:
    outcome = leak_refresh(servers)
    assert outcome.rc == 0, outcome.failures
    assert "leak scan invoices" in outcome.summary["phases"]


@pytest.mark.parametrize(
    ("planted", "where"),
    [
        ("UPDATE invoices SET billing_email = 'client17@mail.example.com' WHERE id = 3", "invoices.billing_email"),
        ("""UPDATE invoices SET document = document || '{"contact": {"emails": ["x", "client18@mail.example.com"]}}'
             WHERE id = 4""", "invoices.document"),
        ("UPDATE invoices SET tags = tags || 'Client Person 19'::text WHERE id = 5", "invoices.tags"),
    ],
)
def test_a_masked_value_in_an_unmasked_column_fails_the_refresh_before_the_swap(
    servers: Servers, leaky: str, planted: str, where: str
) -> None:
    before = (kept_databases(servers, "leaky"),
              column(servers.qa, "leaky", "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM invoices t"))
    original = column(servers.prod, "leaky", "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM invoices t")
    servers.prod.execute("leaky", planted)
    try:
        outcome = leak_refresh(servers)
    finally:
        servers.prod.execute("leaky", "UPDATE invoices SET billing_email = 'billing@shop.example', tags = ARRAY['paid', 'export'], "
                                      "document = jsonb_build_object('lines', jsonb_build_array(jsonb_build_object("
                                      "'sku', 'SKU-' || id, 'qty', 2)))")
    assert column(servers.prod, "leaky", "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM invoices t") == original
    assert outcome.rc != 0
    message = str(outcome.failures[-1]["msg"])
    assert "leak check failed" in message and where in message, message
    assert ("customers.email" if "mail.example" in planted else "customers.full_name") in message
    after = (kept_databases(servers, "leaky"),
             column(servers.qa, "leaky", "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM invoices t"))
    assert after == before  # QA unchanged: the new database was dropped before any swap


# ---- carry-over in any schema, restore errors, materialized views ----
def test_carry_over_in_a_qa_only_schema_and_materialized_views_filled_from_masked_data(servers: Servers, leaky: str) -> None:
    servers.prod.execute("leaky", "CREATE MATERIALIZED VIEW customer_emails AS SELECT id, email FROM customers")
    servers.qa.execute("leaky", "CREATE SCHEMA qa_tools; CREATE TABLE qa_tools.fixtures (id serial PRIMARY KEY, label text);"
                                "INSERT INTO qa_tools.fixtures (label) VALUES ('log in as tester'), ('pay by invoice')")
    outcome = run_refresh(servers, "leaky", qa_data_refresh_masking=LEAKY_MASKING, qa_data_refresh_carry_over=["qa_tools.fixtures"])
    assert outcome.rc == 0, outcome.failures
    assert column(servers.qa, "leaky", "SELECT label FROM qa_tools.fixtures ORDER BY id") == ["log in as tester", "pay by invoice"]
    assert outcome.summary["carried_over"] == {"qa_tools.fixtures": 2}
    emails = column(servers.qa, "leaky", "SELECT email FROM customer_emails ORDER BY id")
    assert len(emails) == 1000 and emails == column(servers.qa, "leaky", "SELECT email FROM customers ORDER BY id")
    assert all(email.endswith("@example.invalid") for email in emails)


def test_a_restore_error_reports_postgresqls_error_line(servers: Servers, leaky: str) -> None:
    # pg_dump --table leaves out a type only QA has: restoring the carried-over table cannot work.
    servers.qa.execute("leaky", "CREATE TYPE qa_mood AS ENUM ('happy', 'sad'); CREATE TABLE qa_moods (m qa_mood);"
                                "INSERT INTO qa_moods VALUES ('happy')")
    before = kept_databases(servers, "leaky")
    outcome = run_refresh(servers, "leaky", qa_data_refresh_masking=LEAKY_MASKING, qa_data_refresh_carry_over=["qa_moods"])
    assert outcome.rc != 0
    message = str(outcome.failures[-1]["msg"])
    assert 'ERROR:  type "public.qa_mood" does not exist' in message, message
    assert kept_databases(servers, "leaky") == before
