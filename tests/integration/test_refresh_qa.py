"""`relpromote refresh-qa` as the scheduled job runs it: its own identity, production's vault, QA's lock, the ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from relpromote.adapters.sqlite_ledger import SqliteLedger
from relpromote.lock import Lock
from relpromote.testing.postgres import PostgresCluster, clusters
from tests.helpers import PEOPLE, RELPROMOTE, Cli, make_project, one_line_error
from tests.integration.conftest import commit_project
from tests.integration.test_promote import ledger_payloads
from tests.integration.test_qa_refresh_engine import MASKING, READER, READER_PASSWORD, SALT, seed_production, seed_qa

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
VAULT_PASSWORD = "refresh-vault-pass-93c1"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[PostgresCluster, PostgresCluster]]:
    with clusters(tmp_path / "pg", "prod", "qa") as started:
        prod, qa = started["prod"], started["qa"]
        prod.create_role(READER, password=READER_PASSWORD, read_only=True)
        seed_production(prod, "shop", customers=500, orders_per_customer=3)
        seed_qa(qa, "shop")
        yield prod, qa


def refresh_project(tmp_path: Path, prod: PostgresCluster, qa: PostgresCluster) -> Cli:
    project = make_project(tmp_path / "proj", {**PEOPLE, "nightly": ["data_refresher"]})
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "salt").write_text(SALT + "\n")
    (secrets / "vault-pass").write_text(VAULT_PASSWORD + "\n")
    for name in ("salt", "vault-pass"):
        (secrets / name).chmod(0o600)
    production = project.cwd / "inventories" / "production"
    (production / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"database": {"hosts": {"prod-db-1": {"ansible_host": "127.0.0.1"}}}}}}))
    vault = production / "group_vars" / "all" / "vault.yml"
    vault.write_text(yaml.safe_dump({"vault_relpromote_reader_password": READER_PASSWORD}))
    subprocess.run([str(Path(sys.executable).parent / "ansible-vault"), "encrypt", "--vault-id", f"prod@{secrets / 'vault-pass'}", str(vault)],
                   check=True, capture_output=True)
    qa_host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (project.cwd / "inventories" / "qa" / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"children": {"database": {"hosts": {"qa-db-1": qa_host}}}}}))
    config_path = project.cwd / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["environments"]["production"]["vault"] = {"id": "prod", "password": {"file": str(secrets / "vault-pass")}}
    config["refresh"] = {
        "source": {"environment": "production", "host": "prod-db-1", "port": prod.port, "user": READER},
        "target": {"environment": "qa", "host": "qa-db-1", "socket_dir": str(qa.socket_dir), "port": qa.port},
        "database": "shop",
        "carry_over": ["qa_fixtures", "audit_log"],
        "salt": {"file": str(secrets / "salt")},
        "masking": MASKING,
    }
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    commit_project(project, "refresh configuration")
    return project


def test_scheduled_refresh_masks_records_and_respects_the_qa_lock(tmp_path: Path, servers: tuple[PostgresCluster, PostgresCluster]) -> None:
    prod, qa = servers
    project = refresh_project(tmp_path, prod, qa)

    refused = project.run("refresh-qa", identity="oscar")
    assert refused.returncode == 3 and "may not refresh in qa" in one_line_error(refused)

    dry = project.run("refresh-qa", "--dry-run", identity="nightly")
    assert dry.returncode == 0, dry.stderr
    dry_summary = json.loads(dry.stdout)
    assert dry_summary["result"] == "dry_run" and dry_summary["tables"]["customers"] == 500
    assert qa.scalar("shop", "SELECT count(*) FROM customers") == 1  # nothing changed

    result = subprocess.run([RELPROMOTE, "refresh-qa"], cwd=project.cwd, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "RELPROMOTE_IDENTITY": str(project.cwd / ".keys" / "nightly.key")})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1  # one JSON summary line for the scheduler's log
    summary = json.loads(lines[0])
    assert summary["result"] == "refreshed" and summary["tables"]["orders"] == 1500

    assert qa.scalar("shop", "SELECT count(*) FROM customers") == prod.scalar("shop", "SELECT count(*) FROM customers")
    production_emails = {row[0] for row in prod.query("shop", "SELECT email FROM customers")}
    qa_emails = {row[0] for row in qa.query("shop", "SELECT email FROM customers")}
    assert not production_emails & qa_emails
    production_names = {row[0] for row in prod.query("shop", "SELECT full_name FROM customers")}
    assert not production_names & {row[0] for row in qa.query("shop", "SELECT full_name FROM customers")}
    orphans = qa.scalar("shop", "SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL")
    assert orphans == 0
    assert qa.scalar("shop", "SELECT count(*) FROM qa_fixtures") == 2  # carried over

    recorded = ledger_payloads(project, "refresh.finished")
    assert len(recorded) == 1 and recorded[0]["result"] == "refreshed" and recorded[0]["snapshot_time"]
    assert recorded[0]["masked_columns"]["customers"] and recorded[0]["tables"]["customers"] == 500
    qa_status = project.json("status", "--env", "qa")["environments"][0]
    assert qa_status["last_refresh"]["by"] == "nightly" and qa_status["last_refresh"]["result"] == "refreshed"
    everything = b"".join(p.read_bytes() for p in (project.cwd / ".relpromote").rglob("*") if p.is_file())
    for secret in (READER_PASSWORD, SALT, VAULT_PASSWORD):
        assert secret.encode() not in everything and secret not in result.stdout + result.stderr

    ledger = SqliteLedger(project.cwd / ".relpromote" / "ledger.db")
    promotion = Lock("qa", "promo-1234", "oscar", "promotion of 1.0.0", "2026-11-26T00:00:00.000000Z", os.getpid(), "ci")
    assert ledger.acquire(promotion) == promotion
    try:
        busy = project.run("refresh-qa", identity="nightly")
        assert busy.returncode == 4 and "qa is locked by oscar (promotion of 1.0.0)" in one_line_error(busy)
    finally:
        assert ledger.release("qa", "promo-1234")
        ledger.close()
    assert len(ledger_payloads(project, "refresh.finished")) == 1

    config_path = project.cwd / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["refresh"]["masking"]["customers"]["shoe_size"] = "pseudonym"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    misfit = project.run("refresh-qa", identity="nightly")
    assert misfit.returncode == 2 and "does not fit production" in one_line_error(misfit)
    assert qa.scalar("shop", "SELECT count(*) FROM customers") == 500
