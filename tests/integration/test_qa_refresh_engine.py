"""The QA refresh engine end to end: the real role, through ansible-runner, between two real PostgreSQL servers.

A "production" cluster holds a shop (customers, orders with a foreign key and free-text notes, an audit
table, a table in another schema) and a read-only role; a "qa" cluster holds QA's current copy and a
QA-only fixtures table. One local-connection host stands for QA's database host. Every assertion reads
the databases, never the play's output text.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import ansible_runner
import psycopg
import pytest

from relpromote.masking import SALT_SETTING, Column, check_for, mask_expression, quote_literal
from relpromote.refresh import RefreshConfig, parse_masking, role_vars
from relpromote.testing.postgres import PostgresCluster, clusters

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "refresh_qa_data.yml"
BIN = Path(sys.executable).parent
READER = "relpromote_reader"
READER_PASSWORD = "reader-Pa55word-only-in-the-vault"
SALT = "salt-that-must-never-show-up-anywhere"
MASKING: dict[str, Any] = {
    "customers": {"email": "fake_email", "full_name": "fake_name", "phone": "fake_phone", "card_number": {"partial": 4}},
    "orders": {"notes": None},
}

PROD_SCHEMA = """
CREATE TABLE customers (
    id bigserial PRIMARY KEY,
    email varchar(200) NOT NULL UNIQUE,
    full_name text NOT NULL,
    phone text,
    card_number text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    amount numeric(10, 2) NOT NULL,
    status text NOT NULL,
    notes text
);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX customers_lower_email ON customers (lower(email));
ALTER TABLE orders ADD CONSTRAINT orders_amount_positive CHECK (amount >= 0) NOT VALID;
CREATE FUNCTION touch_order() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.status := NEW.status || '*'; RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch_order();
CREATE VIEW order_totals AS SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id;
CREATE TABLE audit_log (id bigserial PRIMARY KEY, happened text NOT NULL);
CREATE SCHEMA sales;
CREATE TABLE sales.regions (code text PRIMARY KEY, label text NOT NULL);
"""

FIRST = ["Alice", "Bob", "Chloé", "Dmitri", "Erin", "Farid", "Grace", "Hiro", "Ines", "Jonas"]
LAST = ["Smith", "Okafor", "Müller", "Rossi", "Tanaka", "Dubois", "Novak", "García", "Larsen", "Khan"]


def seed_production(cluster: PostgresCluster, database: str, customers: int, orders_per_customer: int) -> None:
    cluster.create_database(database)
    with cluster.connect(database) as conn:
        conn.execute(PROD_SCHEMA)
        # Dense phone numbers (one area, consecutive numbers) as in real data: some fakes will be real ones.
        conn.execute(
            """
            INSERT INTO customers (email, full_name, phone, card_number)
            SELECT lower(f.name) || '.' || g || '@mail.example.com',
                   f.name || ' ' || l.name,
                   CASE WHEN g %% 50 = 0 THEN NULL WHEN g %% 77 = 0 THEN ''
                        ELSE '+44 20 7946 ' || lpad((g %% 10000)::text, 4, '0') END,
                   '4111 1111 1111 ' || lpad((g %% 10000)::text, 4, '0')
              FROM generate_series(1, %(n)s) g,
                   LATERAL (SELECT (%(first)s::text[])[1 + g %% 10] AS name) f,
                   LATERAL (SELECT (%(last)s::text[])[1 + (g / 10) %% 10] AS name) l
            """,
            {"n": customers, "first": FIRST, "last": LAST},
        )
        conn.execute(
            """
            INSERT INTO orders (customer_id, amount, status, notes)
            SELECT 1 + (g::bigint * 7919) %% %(n)s, (g %% 1000) / 10.0, (ARRAY['new', 'paid', 'shipped'])[1 + g %% 3],
                   CASE WHEN g %% 2 = 0
                        THEN 'call ' || (SELECT full_name FROM customers WHERE id = 1 + (g::bigint * 7919) %% %(n)s) END
              FROM generate_series(1, %(orders)s) g
            """,
            {"n": customers, "orders": customers * orders_per_customer},
        )
        conn.execute("INSERT INTO audit_log (happened) SELECT 'production event ' || g FROM generate_series(1, 5) g")
        conn.execute("INSERT INTO sales.regions VALUES ('eu', 'Europe'), ('na', 'North America')")
        conn.execute("ANALYZE")


def seed_qa(cluster: PostgresCluster, database: str) -> None:
    """QA's current database: stale data, its own fixtures table and its own audit rows."""
    cluster.create_database(database)
    with cluster.connect(database) as conn:
        conn.execute(PROD_SCHEMA)
        conn.execute("INSERT INTO customers (email, full_name) VALUES ('stale@qa.test', 'Stale Customer')")
        conn.execute("INSERT INTO audit_log (happened) VALUES ('qa event 1'), ('qa event 2'), ('qa event 3')")
        conn.execute("CREATE TABLE qa_fixtures (id serial PRIMARY KEY, label text NOT NULL)")
        conn.execute("INSERT INTO qa_fixtures (label) VALUES ('login as tester'), ('checkout with voucher')")


@dataclass(frozen=True)
class Servers:
    prod: PostgresCluster
    qa: PostgresCluster
    salt_file: Path
    runs: Path


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    # Not under pytest's tmp dirs: a concurrent pytest session prunes old ones, data directories included.
    base = Path(tempfile.mkdtemp(prefix="relpromote-qa-refresh-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, base, ignore_errors=True)
        started = cleanup.enter_context(clusters(base / "pg", "prod", "qa"))
        prod, qa = started["prod"], started["qa"]
        prod.create_role(READER, password=READER_PASSWORD, read_only=True)
        seed_production(prod, "shop", customers=2000, orders_per_customer=3)
        seed_qa(qa, "shop")
        salt_file = base / "refresh-salt"
        salt_file.write_text(SALT + "\n", encoding="utf-8")
        salt_file.chmod(0o600)
        yield Servers(prod, qa, salt_file, base / "runs")


@dataclass(frozen=True)
class Outcome:
    rc: int
    summary: dict[str, Any]
    failures: list[dict[str, Any]]
    private_dir: Path


def runner_args(servers: Servers, database: str = "shop", **variables: Any) -> dict[str, Any]:
    """playbooks/refresh_qa_data.yml as relpromote runs it: a fresh private dir, no env files, the reader's password in
    the inventory (standing in for production's vault) and only an expression pointing at it in extravars."""
    servers.runs.mkdir(exist_ok=True)
    private = servers.runs / f"run-{time.monotonic_ns()}"
    private.mkdir()
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "vault_relpromote_reader_password": READER_PASSWORD,
    }
    extravars = {
        "qa_data_refresh_database": database,
        "qa_data_refresh_source_host": "127.0.0.1",
        "qa_data_refresh_source_port": servers.prod.port,
        "qa_data_refresh_source_user": READER,
        "qa_data_refresh_source_password": "{{ vault_relpromote_reader_password }}",
        "qa_data_refresh_target_host": str(servers.qa.socket_dir),
        "qa_data_refresh_target_port": servers.qa.port,
        "qa_data_refresh_masking": MASKING,
        "qa_data_refresh_carry_over": ["qa_fixtures", "audit_log"],
        "qa_data_refresh_salt_file": str(servers.salt_file),
        "qa_data_refresh_pg_bin_dir": str(servers.prod.bin_dir),
        **variables,
    }
    return {
        "private_data_dir": str(private),
        "project_dir": str(REPO),
        "playbook": str(PLAYBOOK),
        "inventory": {"all": {"children": {"qa_database": {"hosts": {"qa-db": host}}}}},
        "extravars": extravars,
        "envvars": {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        "quiet": True,
        "suppress_env_files": True,
    }


def run_refresh(servers: Servers, database: str = "shop", *, check: bool = False, **variables: Any) -> Outcome:
    args = runner_args(servers, database, **variables)
    if check:
        args["cmdline"] = "--check"
    return outcome_of(ansible_runner.run(**args), Path(args["private_data_dir"]))


def outcome_of(runner: Any, private: Path) -> Outcome:
    events = list(runner.events)
    stats = next((e["event_data"].get("artifact_data") or {} for e in events if e["event"] == "playbook_on_stats"), {})
    failures = [e["event_data"]["res"] for e in events if e["event"] == "runner_on_failed"]
    return Outcome(int(runner.rc), dict(stats.get("qa_data_refresh") or {}), failures, private)


def rows(cluster: PostgresCluster, database: str, query: str) -> list[tuple[Any, ...]]:
    return cluster.query(database, query)


def column(cluster: PostgresCluster, database: str, query: str) -> list[Any]:
    return [row[0] for row in cluster.query(database, query)]


def fingerprint(cluster: PostgresCluster, database: str) -> dict[str, Any]:
    """Everything a refresh could change in one database, as md5s of each table's ordered contents."""
    tables = column(
        cluster,
        database,
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    return {
        table: cluster.scalar(database, f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} t")
        for table in tables
    }


def qa_databases(servers: Servers) -> list[str]:
    return [name for name in servers.qa.databases() if name.startswith("shop")]


# ---- production is only read ----
def test_the_read_only_role_cannot_write(servers: Servers) -> None:
    with servers.prod.connect("shop", user=READER, password=READER_PASSWORD, tcp=True) as conn:
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (2000,)
        for statement in (
            "INSERT INTO customers (email, full_name) VALUES ('x@y.z', 'Intruder')",
            "UPDATE orders SET notes = 'changed'",
            "DELETE FROM audit_log",
            "TRUNCATE sales.regions",
            "CREATE TABLE public.planted (id int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                conn.execute(statement)


# ---- the masking expressions, evaluated by PostgreSQL ----
def masked(servers: Servers, rule: Any, value: str | None, type_: str = "text", base: str = "text", salt: str = SALT) -> Any:
    column_ = Column(name="v", type=type_, base_type=base, max_length=int(type_.split("(")[1][:-1]) if "(" in type_ else None)
    expression = mask_expression(parse_masking({"t": {"v": rule}})["t"]["v"], column_)
    with servers.qa.connect("postgres") as conn:
        conn.execute("SELECT set_config(%s, %s, false)", (SALT_SETTING, salt))
        # The expression holds format() placeholders: give the value as a literal, not a client-side parameter.
        literal = "NULL" if value is None else quote_literal(value)
        return conn.execute(f"SELECT {expression} FROM (SELECT CAST({literal} AS {type_}) AS v) t").fetchone()[0]  # type: ignore[index]


def test_masking_is_deterministic_salted_and_keeps_nulls(servers: Servers) -> None:
    for rule in ("pseudonym", "fake_email", "fake_name", "fake_phone"):
        first = masked(servers, rule, "+1 (555) 010-9999 alice@example.com")
        assert first == masked(servers, rule, "+1 (555) 010-9999 alice@example.com")
        assert first != masked(servers, rule, "+1 (555) 010-9999 alice@example.com", salt="another salt")
        assert masked(servers, rule, None) is None
    assert masked(servers, {"partial": 4}, None) is None
    assert masked(servers, {"fixed": "n/a"}, None) is None


def test_fake_values_keep_the_format_of_the_column(servers: Servers) -> None:
    email = masked(servers, "fake_email", "Jane.Doe@corp.example.com", "character varying(200)", "varchar")
    assert re.fullmatch(r"u[0-9a-f]{16}@example\.invalid", email)
    assert re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", masked(servers, "fake_name", "Jane Doe"))
    for phone in ("+44 20 7946 0958", "(555) 010-9999", "0049-30-1234567", "5", "020 7946 0958", "+44 (0)20 7946 0958"):
        for rule in ("fake_phone", {"fake_phone": {"unique": True}}):
            fake = masked(servers, rule, phone)
            assert len(fake) == len(phone) and fake != phone
            assert [c for c in fake if not c.isdigit()] == [c for c in phone if not c.isdigit()]
    # The country code and the trunk prefix stay; text never comes through.
    assert masked(servers, "fake_phone", "+44 20 7946 0958").startswith("+44 ")
    assert masked(servers, "fake_phone", "0049-30-1234567").startswith("0049-")
    assert masked(servers, "fake_phone", "+44 (0)20 7946 0958").startswith("+44 (0)")
    assert masked(servers, "fake_phone", "020 7946 0958").startswith("0")
    assert masked(servers, "fake_phone", "+1 415 555 0100").startswith("+1 ")
    assert re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", masked(servers, "fake_phone", "(555) 010-9999 ask for Maria Lopez"))
    assert masked(servers, {"partial": 4}, "4111 1111 1111 1234") == "***************1234"
    assert masked(servers, {"partial": 4}, "123") == "***"
    assert masked(servers, {"fixed": 7}, "42", "integer", "int4") == 7


def test_what_production_sends_for_the_check_covers_every_masked_value(servers: Servers) -> None:
    """The candidates predicate must hold for every value a rule can produce, or the check would miss collisions."""
    samples = ["alice@example.com", "A", "", "4111 1111 1111 1234", "12", "a'b\\c%d", "Zoë Ünïcode"]
    for rule in ("fake_email", "pseudonym", "fake_name", {"partial": 4}, {"partial": {"keep_last": 1, "mask_char": "#"}}):
        parsed = parse_masking({"t": {"v": rule}})["t"]["v"]
        check = check_for(parsed, Column(name="v", type="text", base_type="text"))
        assert check is not None and check.candidates_sql is not None
        for sample in samples:
            value = masked(servers, rule, sample)
            holds = servers.qa.scalar("postgres", f"SELECT {check.candidates_sql.format(value=quote_literal(value))}")
            assert holds is True, (rule, sample, value)
    # ... and it rules out ordinary production values, which is what makes the check cheap.
    email_check = check_for(parse_masking({"t": {"v": "fake_email"}})["t"]["v"], Column(name="v", type="text", base_type="text"))
    assert email_check is not None and email_check.candidates_sql is not None
    assert (
        servers.qa.scalar("postgres", f"SELECT {email_check.candidates_sql.format(value=quote_literal('alice@example.com'))}")
        is False
    )


def test_pseudonyms_fit_keys_and_stay_consistent_across_types(servers: Servers) -> None:
    key = masked(servers, "pseudonym", "12345", "bigint", "int8")
    assert isinstance(key, int) and 0 <= key < 2**60
    assert key == masked(servers, "pseudonym", "12345", "bigint", "int8")
    token = masked(servers, "pseudonym", "8d1f6a36-8a7f-4f1c-9d2e-0c3f1c9d7a10", "uuid", "uuid")
    assert str(token) != "8d1f6a36-8a7f-4f1c-9d2e-0c3f1c9d7a10"
    assert re.fullmatch(r"p[0-9a-f]{16}", masked(servers, "pseudonym", "CUST-0042"))


# ---- dry run ----
def test_dry_run_reports_and_changes_nothing(servers: Servers) -> None:
    before = (qa_databases(servers), fingerprint(servers.qa, "shop"))
    outcome = run_refresh(servers, qa_data_refresh_dry_run=True)
    assert outcome.rc == 0, outcome.failures
    summary = outcome.summary
    assert summary["result"] == "dry_run"
    assert summary["tables"] == {"customers": 2000, "orders": 6000, "sales.regions": 2}
    assert summary["masked_columns"] == {"customers": ["email", "full_name", "phone", "card_number"], "orders": ["notes"]}
    assert summary["carried_over"] == {"qa_fixtures": 2, "audit_log": 3}
    assert {w.split(" ")[0] for w in summary["warnings"]} == {"orders.status", "sales.regions.code", "sales.regions.label"}
    assert (qa_databases(servers), fingerprint(servers.qa, "shop")) == before


def test_check_mode_is_a_dry_run(servers: Servers) -> None:
    before = (qa_databases(servers), fingerprint(servers.qa, "shop"))
    outcome = run_refresh(servers, check=True)
    assert outcome.rc == 0, outcome.failures
    assert outcome.summary["result"] == "dry_run" and outcome.summary["tables"]["orders"] == 6000
    assert (qa_databases(servers), fingerprint(servers.qa, "shop")) == before


# ---- the refresh ----
@pytest.fixture(scope="module")
def refreshed(servers: Servers) -> Outcome:
    """One refresh for the assertions below (a module fixture: a refresh takes seconds)."""
    production_before = fingerprint(servers.prod, "shop")
    outcome = run_refresh(servers)
    assert outcome.rc == 0, outcome.failures
    assert fingerprint(servers.prod, "shop") == production_before, "production changed"
    return outcome


def test_refresh_swaps_in_a_new_database_and_keeps_the_previous(servers: Servers, refreshed: Outcome) -> None:
    assert qa_databases(servers) == ["shop", "shop__previous"]
    assert column(servers.qa, "shop__previous", "SELECT email FROM customers") == ["stale@qa.test"]
    summary = refreshed.summary
    assert summary["result"] == "refreshed"
    assert summary["previous_database"] == "shop__previous"
    assert summary["tables"] == {"customers": 2000, "orders": 6000, "sales.regions": 2}
    assert summary["masked_columns"] == {"customers": ["email", "full_name", "phone", "card_number"], "orders": ["notes"]}
    assert any(line.startswith("orders.status (text) has no masking rule") for line in summary["warnings"])
    snapshot, started = datetime.fromisoformat(summary["snapshot_time"]), datetime.fromisoformat(summary["started_at"])
    assert started <= snapshot <= started + timedelta(seconds=summary["duration_seconds"])


def test_row_counts_equal_production(servers: Servers, refreshed: Outcome) -> None:
    for table in ("customers", "orders", "sales.regions"):
        query = f"SELECT count(*) FROM {table}"
        assert servers.qa.scalar("shop", query) == servers.prod.scalar("shop", query), table


def test_no_original_personal_value_reaches_qa(servers: Servers, refreshed: Outcome) -> None:
    emails = set(column(servers.prod, "shop", "SELECT email FROM customers"))
    names = set(column(servers.prod, "shop", "SELECT full_name FROM customers"))
    phones = set(column(servers.prod, "shop", "SELECT phone FROM customers WHERE phone <> ''"))
    cards = set(column(servers.prod, "shop", "SELECT card_number FROM customers"))
    everything_in_qa = set(
        column(
            servers.qa,
            "shop",
            """
        SELECT v FROM customers, LATERAL (VALUES (email), (full_name), (phone), (card_number)) x(v) WHERE v IS NOT NULL
        UNION SELECT notes FROM orders WHERE notes IS NOT NULL""",
        )
    )
    assert not everything_in_qa & (emails | names | phones | cards)
    assert servers.qa.scalar("shop", "SELECT count(*) FROM orders WHERE notes IS NOT NULL") == 0


def test_masked_values_keep_their_format(servers: Servers, refreshed: Outcome) -> None:
    prod = {
        row[0]: row[1:] for row in rows(servers.prod, "shop", "SELECT id, email, full_name, phone, card_number FROM customers")
    }
    qa = {row[0]: row[1:] for row in rows(servers.qa, "shop", "SELECT id, email, full_name, phone, card_number FROM customers")}
    assert prod.keys() == qa.keys()
    for key, (email, name, phone, card) in qa.items():
        _, _, original_phone, original_card = prod[key]
        assert re.fullmatch(r"u[0-9a-f]{16}@example\.invalid", email)
        assert re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", name)
        if not original_phone:
            assert phone == original_phone  # NULL stays NULL, an empty string holds nothing to hide
        else:
            assert len(phone) == len(original_phone) and phone != original_phone
            assert [c for c in phone if not c.isdigit()] == [c for c in original_phone if not c.isdigit()]
        assert card == "*" * 15 + original_card[-4:]
    # Unique stays unique: the deterministic fakes did not collide.
    assert servers.qa.scalar("shop", "SELECT count(DISTINCT email) FROM customers") == 2000


def test_joins_and_foreign_keys_still_match(servers: Servers, refreshed: Outcome) -> None:
    per_customer = "SELECT customer_id, count(*), sum(amount) FROM orders GROUP BY 1 ORDER BY 1"
    assert rows(servers.qa, "shop", per_customer) == rows(servers.prod, "shop", per_customer)
    joined = "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id"
    assert servers.qa.scalar("shop", joined) == 6000
    # Production's whole schema: indexes and constraints (built per table as it lands), foreign keys, triggers, views.
    schema = """SELECT conrelid::regclass || ' ' || conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace
                UNION ALL SELECT tablename || ' ' || indexname FROM pg_indexes WHERE schemaname IN ('public', 'sales')
                UNION ALL SELECT tgrelid::regclass || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
                UNION ALL SELECT 'view ' || viewname FROM pg_views WHERE schemaname = 'public' ORDER BY 1"""
    qa_schema = [item for item in column(servers.qa, "shop", schema) if "qa_fixtures" not in item]
    assert qa_schema == column(servers.prod, "shop", schema)
    assert {"orders orders_customer_id_fkey", "orders orders_touch", "customers customers_lower_email"} <= set(qa_schema)
    totals = "SELECT * FROM order_totals ORDER BY 1"
    assert rows(servers.qa, "shop", totals) == rows(servers.prod, "shop", totals)
    # Sequences continue after production's last value, so QA can insert.
    assert servers.qa.scalar("shop", "SELECT last_value FROM customers_id_seq") == 2000
    servers.qa.execute("shop", "INSERT INTO customers (email, full_name) VALUES ('new@qa.test', 'New Tester')")
    servers.qa.execute("shop", "DELETE FROM customers WHERE email = 'new@qa.test'")


def test_qa_tables_are_carried_over(servers: Servers, refreshed: Outcome) -> None:
    assert rows(servers.qa, "shop", "SELECT id, label FROM qa_fixtures ORDER BY id") == [
        (1, "login as tester"),
        (2, "checkout with voucher"),
    ]
    assert column(servers.qa, "shop", "SELECT happened FROM audit_log ORDER BY id") == ["qa event 1", "qa event 2", "qa event 3"]
    assert refreshed.summary["carried_over"] == {"qa_fixtures": 2, "audit_log": 3}
    # Their sequences continue from QA's values, not production's.
    assert servers.qa.scalar("shop", "INSERT INTO qa_fixtures (label) VALUES ('new') RETURNING id") == 3
    assert servers.qa.scalar("shop", "SELECT nextval('audit_log_id_seq')") == 4
    servers.qa.execute("shop", "DELETE FROM qa_fixtures WHERE label = 'new'")


def test_no_secret_in_the_run_artifacts(servers: Servers, refreshed: Outcome) -> None:
    artifacts = refreshed.private_dir / "artifacts"
    for path in artifacts.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            assert SALT not in text, path
            assert READER_PASSWORD not in text, path


def test_a_second_refresh_is_deterministic_and_retires_the_older_previous(servers: Servers, refreshed: Outcome) -> None:
    emails_before = rows(servers.qa, "shop", "SELECT id, email, full_name FROM customers ORDER BY id")
    outcome = run_refresh(servers)
    assert outcome.rc == 0, outcome.failures
    # The older previous database is renamed aside, not dropped at the swap (a DROP DATABASE forces a checkpoint of the
    # whole new copy while QA waits): the next refresh drops it as it starts.
    retired = outcome.summary["retired_database"]
    assert retired.startswith("shop__retired_")
    assert qa_databases(servers) == ["shop", "shop__previous", retired]
    assert column(servers.qa, retired, "SELECT email FROM customers") == ["stale@qa.test"]  # QA's data before the first
    assert rows(servers.qa, "shop", "SELECT id, email, full_name FROM customers ORDER BY id") == emails_before
    assert column(servers.qa, "shop__previous", "SELECT count(*) FROM customers") == [2000]  # the first refresh's data


def test_min_interval_skips_a_fresh_qa(servers: Servers, refreshed: Outcome) -> None:
    before = fingerprint(servers.qa, "shop")
    outcome = run_refresh(servers, qa_data_refresh_min_interval=3600)
    assert outcome.rc == 0, outcome.failures
    assert outcome.summary["result"] == "skipped"
    assert fingerprint(servers.qa, "shop") == before
    assert qa_databases(servers) == ["shop", "shop__previous"]  # a refresh starts by dropping what the last swap retired


def test_the_config_drives_the_role_with_no_secret_on_the_command_line(servers: Servers, refreshed: Outcome) -> None:
    """relpromote's RefreshConfig -> role_vars() -> the play, with production's inventory loaded for its (vaulted) variables."""
    config = RefreshConfig.model_validate(
        {
            "source": {"host": "prod-db-1", "port": servers.prod.port, "user": READER, "password_var": "vault_reader_password"},
            "target": {"host": "qa-db", "socket_dir": str(servers.qa.socket_dir), "port": servers.qa.port},
            "database": "shop",
            "carry_over": ["qa_fixtures", "audit_log"],
            "salt": {"command": f"cat {servers.salt_file}"},
            "masking": MASKING,
        }
    )
    args = runner_args(servers)
    args["extravars"] = role_vars(config)
    args["inventory"] = {
        "all": {
            "hosts": {
                "qa-db": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                # Stands for inventories/production: never contacted, only read for its vaulted variables.
                "prod-db-1": {"ansible_host": "127.0.0.1", "vault_reader_password": READER_PASSWORD},
            }
        }
    }
    emails = column(servers.qa, "shop", "SELECT email FROM customers ORDER BY id")
    outcome = outcome_of(ansible_runner.run(**args), Path(args["private_data_dir"]))
    assert outcome.rc == 0, outcome.failures
    assert outcome.summary["result"] == "refreshed"
    assert column(servers.qa, "shop", "SELECT email FROM customers ORDER BY id") == emails  # same salt, same fakes
    command = (outcome.private_dir / "artifacts").rglob("command")
    for path in command:
        assert READER_PASSWORD not in path.read_text() and SALT not in path.read_text()


# ---- failures leave QA as it was ----
def kept_databases(servers: Servers) -> list[str]:
    """QA's databases but the one the last swap retired, which every refresh drops as it starts, one that fails too."""
    return [name for name in qa_databases(servers) if not name.startswith("shop__retired_")]


def test_a_failing_refresh_leaves_qa_unchanged(servers: Servers, refreshed: Outcome) -> None:
    before = (kept_databases(servers), fingerprint(servers.qa, "shop"), fingerprint(servers.qa, "shop__previous"))
    # The fixed value cannot be cast to the column's type: production's COPY fails once the copy has begun (the table
    # has no CHECK constraint, so no probe tries the rule before the copy).
    masking = {**MASKING, "customers": {**MASKING["customers"], "created_at": {"fixed": "not a time"}}}
    outcome = run_refresh(servers, qa_data_refresh_masking=masking)
    assert outcome.rc != 0
    assert outcome.summary == {}
    assert outcome.failures[-1]["summary"]["result"] == "failed"
    assert "QA left as it was" in outcome.failures[-1]["msg"]
    assert (kept_databases(servers), fingerprint(servers.qa, "shop"), fingerprint(servers.qa, "shop__previous")) == before


def collision_database(servers: Servers, name: str, rows: list[tuple[str, str]]) -> None:
    """A production database whose masked values meet production's own (phone, card); QA has an older copy."""
    schema = "CREATE TABLE accounts (id bigserial PRIMARY KEY, phone text, card text)"
    for cluster in (servers.prod, servers.qa):
        cluster.create_database(name)
        with cluster.connect(name) as conn:
            conn.execute(schema)
    with servers.prod.connect(name) as conn:
        for phone, card in rows:
            conn.execute("INSERT INTO accounts (phone, card) VALUES (%s, %s)", (phone, card))
    with servers.qa.connect(name) as conn:
        conn.execute("INSERT INTO accounts (phone, card) VALUES ('+1 555 0100', 'qa card')")


def test_a_masked_value_equal_to_a_production_value_of_its_column_fails_the_refresh(servers: Servers) -> None:
    # Production already holds a card number masked the way {partial: 4} masks: masking leaves it as it is.
    collision_database(servers, "collide", [("+1 555 0101", "****1234"), ("+1 555 0102", "4111 1111 1111 9876")])
    before = fingerprint(servers.qa, "collide")
    outcome = run_refresh(servers, "collide", qa_data_refresh_masking={"accounts": {"card": {"partial": 4}}},
                          qa_data_refresh_carry_over=[])
    assert outcome.rc != 0
    message = outcome.failures[-1]["msg"]
    assert "accounts.card: 1 masked values equal production values of that column" in message, message
    assert fingerprint(servers.qa, "collide") == before
    assert sorted(name for name in servers.qa.databases() if name.startswith("collide")) == ["collide"]


def test_a_fake_phone_equal_to_a_real_number_is_drawn_again(servers: Servers) -> None:
    # The second number is the first one's fake: masked as it is, the first row would carry a real number into QA.
    real = "+44 20 7946 0101"
    fake_of_real = masked(servers, "fake_phone", real)
    collision_database(servers, "redraw", [(real, "a"), (fake_of_real, "b")])
    outcome = run_refresh(servers, "redraw", qa_data_refresh_masking={"accounts": {"phone": "fake_phone", "card": "keep"}},
                          qa_data_refresh_carry_over=[])
    assert outcome.rc == 0, outcome.failures
    assert outcome.summary["remasked"] == {"accounts.phone": 1}
    phones = dict(rows(servers.qa, "redraw", "SELECT card, phone FROM accounts"))
    assert phones["a"] not in (real, fake_of_real) and phones["b"] not in (real, fake_of_real)
    assert phones["a"].startswith("+44 ") and len(phones["a"]) == len(real)


def test_a_rule_for_a_missing_column_is_refused_before_anything_runs(servers: Servers) -> None:
    before = qa_databases(servers)
    outcome = run_refresh(servers, qa_data_refresh_masking={"customers": {"e_mail": "fake_email"}})
    assert outcome.rc != 0
    assert "table customers has no column e_mail" in outcome.failures[-1]["msg"]
    assert qa_databases(servers) == before


def test_a_refresh_is_refused_while_another_holds_the_lock(servers: Servers) -> None:
    before = qa_databases(servers)
    with servers.qa.connect("postgres") as holder:
        holder.execute("SELECT pg_advisory_lock(hashtext('relpromote.refresh:shop'))")
        outcome = run_refresh(servers)
    assert outcome.rc != 0
    assert outcome.failures[-1]["busy"] is True
    assert qa_databases(servers) == before


# ---- a refresh killed in the middle ----
@pytest.fixture(scope="module")
def big(servers: Servers) -> str:
    """A production database large enough that its masked copy takes a few seconds."""
    seed_production(servers.prod, "bigshop", customers=300_000, orders_per_customer=1)
    seed_qa(servers.qa, "bigshop")
    return "bigshop"


def refresh_processes(servers: Servers) -> list[int]:
    """psql processes started by the module (they carry its application name) to this module's servers: another
    module's refresh may run on the other pytest worker meanwhile."""
    wanted = {b"PGAPPNAME=relpromote-refresh"}
    ports = {f"PGPORT={servers.prod.port}".encode(), f"PGPORT={servers.qa.port}".encode()}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            environ = set((entry / "environ").read_bytes().split(b"\0"))
            if wanted <= environ and ports & environ:
                found.append(int(entry.name))
    return found


def test_a_killed_refresh_leaves_qa_unchanged_and_the_next_one_cleans_up(servers: Servers, big: str) -> None:
    before = fingerprint(servers.qa, big)
    thread, runner = ansible_runner.run_async(**runner_args(servers, big, qa_data_refresh_carry_over=["qa_fixtures"]))
    # Wait until rows are streaming into the new database, then kill the whole process group at once (as a
    # scheduler's SIGKILL would): nothing of the module gets a chance to clean up.
    deadline = time.monotonic() + 120
    copying = 0
    while time.monotonic() < deadline and not copying:
        copying = servers.qa.scalar(
            "postgres",
            "SELECT count(*) FROM pg_stat_progress_copy p JOIN pg_database d ON d.oid = p.datid "
            f"WHERE d.datname LIKE '{big}\\_\\_incoming\\_%' AND p.tuples_processed > 0",
        )
        time.sleep(0.02)
    assert copying, "the copy never started"
    victims = refresh_processes(servers)
    assert victims
    os.killpg(os.getpgid(_parent(victims[0])), signal.SIGKILL)  # the module's group: ansible-playbook and all it started
    thread.join(60)
    assert runner.status in ("failed", "canceled") or runner.rc != 0

    # QA's database is exactly as it was; the half-loaded copy is left for the next run to drop.
    assert fingerprint(servers.qa, big) == before
    leftovers = [name for name in servers.qa.databases() if name.startswith(f"{big}__incoming_")]
    assert len(leftovers) == 1
    assert _wait_until(lambda: not refresh_processes(servers)), "processes of the killed refresh survived"

    outcome = run_refresh(servers, database=big, qa_data_refresh_carry_over=["qa_fixtures"])
    assert outcome.rc == 0, outcome.failures
    assert sorted(name for name in servers.qa.databases() if name.startswith(big)) == [big, f"{big}__previous"]
    assert servers.qa.scalar(big, "SELECT count(*) FROM customers") == 300_000
    assert fingerprint(servers.qa, f"{big}__previous") == before


def _parent(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])


def _wait_until(condition: Any, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


def test_summary_line_is_json(refreshed: Outcome) -> None:
    assert json.loads(json.dumps(refreshed.summary))["result"] == "refreshed"
