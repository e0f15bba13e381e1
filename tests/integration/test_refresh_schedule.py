"""The schedule examples (examples/schedule/) work as shipped: the systemd unit verifies and its sandbox (a read-only
home) lets the refresh run; a busy QA (exit 4) is retried after a delay, not counted as success; every attempt prints
its JSON summary line, failures included."""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relpromote.adapters.sqlite_ledger import SqliteLedger
from relpromote.lock import Lock
from relpromote.testing.postgres import PostgresCluster, clusters
from tests.helpers import BIN, RELPROMOTE, Cli
from tests.integration.test_promote import ledger_payloads
from tests.integration.test_qa_refresh_engine import READER, READER_PASSWORD, seed_production, seed_qa
from tests.integration.test_refresh_qa import refresh_project

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
REPO = Path(__file__).resolve().parents[2]
SCHEDULE = REPO / "examples" / "schedule"
UNIT = SCHEDULE / "relpromote-refresh-qa.service"


def unit_service_section() -> dict[str, list[str]]:
    """[Service] of the shipped unit, every value of repeated keys kept (Environment=)."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.fixture(scope="module")
def project() -> Iterator[tuple[Cli, PostgresCluster]]:
    base = Path(tempfile.mkdtemp(prefix="relpromote-schedule-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, base, ignore_errors=True)
        started = cleanup.enter_context(clusters(base / "pg", "prod", "qa"))
        prod, qa = started["prod"], started["qa"]
        prod.create_role(READER, password=READER_PASSWORD, read_only=True)
        seed_production(prod, "shop", customers=200, orders_per_customer=2)
        seed_qa(qa, "shop")
        yield refresh_project(base, prod, qa), qa


def installed_unit(project: Cli) -> Path:
    """The shipped unit as an administrator installs it: its paths pointed at this project and this machine's user."""
    text = UNIT.read_text().replace("/srv/shop-releases/.venv/bin/relpromote", RELPROMOTE)
    text = text.replace("/srv/shop-releases", str(project.cwd))
    text = text.replace("/home/relpromote/.config/relpromote/nightly-refresh.key", str(project.cwd / ".keys" / "nightly.key"))
    text = text.replace("User=relpromote", "User=root")
    unit = project.cwd.parent / "relpromote-refresh-qa.service"
    unit.write_text(text)
    return unit


def test_the_unit_passes_systemd_analyze_verify(project: tuple[Cli, PostgresCluster]) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (no systemd on this machine): the unit cannot be verified here")
    result = subprocess.run([analyze, "verify", str(installed_unit(project[0]))], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "relpromote-refresh-qa.service" not in result.stderr, result.stderr  # no warning about our unit either


def test_busy_is_retried_and_never_counted_as_success() -> None:
    service = unit_service_section()
    assert "SuccessExitStatus" not in service
    assert service["Restart"] == ["on-failure"] and "4" not in service["RestartPreventExitStatus"][0].split()
    timer = configparser.ConfigParser()
    timer.read(SCHEDULE / "relpromote-refresh-qa.timer")
    assert timer["Timer"]["OnCalendar"]
    assert "refresh-qa-with-retry" in (SCHEDULE / "crontab").read_text()


def test_the_unit_runs_the_refresh_with_a_read_only_home(project: tuple[Cli, PostgresCluster]) -> None:
    """ProtectSystem=strict / ProtectHome=read-only, as far as they matter here: the home folder is read-only (a private
    mount namespace), the project is writable; the unit's ExecStart, WorkingDirectory and Environment are used as is."""
    cli, qa = project
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to make the home folder read-only")
    unit = installed_unit(cli).read_text().splitlines()
    service = {}
    environment = {}
    for line in unit:
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            environment[key] = value
        elif "=" in line and not line.startswith("#"):
            service.setdefault(line.split("=", 1)[0], line.split("=", 1)[1])
    home = Path.home()
    script = (f"mount --bind {home} {home} && mount -o remount,bind,ro {home} && "
              f"if touch {home}/.relpromote-rw-probe 2>/dev/null; then echo home-writable >&2; exit 97; fi && "
              f"exec {service['ExecStart']}")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **environment}
    env.pop("ANSIBLE_LOCAL_TEMP", None)
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            cwd=service["WorkingDirectory"], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = result.stdout.splitlines()
    assert json.loads(line)["result"] == "refreshed"
    assert qa.scalar("shop", "SELECT count(*) FROM customers") == 200


def test_the_cron_wrapper_retries_a_busy_qa(project: tuple[Cli, PostgresCluster]) -> None:
    cli, _ = project
    ledger = SqliteLedger(cli.cwd / ".relpromote" / "ledger.db")
    promotion = Lock("qa", "promo-77", "oscar", "promotion of 1.0.0", "2026-11-26T00:00:00.000000Z", os.getpid(), "ci")
    assert ledger.acquire(promotion) == promotion
    before = len(ledger_payloads(cli, "refresh.finished"))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "RELPROMOTE": RELPROMOTE,
           "RETRY_DELAY": "2", "RETRY_ATTEMPTS": "10", "RELPROMOTE_IDENTITY": str(cli.cwd / ".keys" / "nightly.key")}
    env.pop("RELPROMOTE_CONFIG", None)
    started = time.monotonic()
    wrapper = subprocess.Popen([str(SCHEDULE / "refresh-qa-with-retry")], cwd=cli.cwd, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(3)
    finally:
        assert ledger.release("qa", "promo-77")  # the promotion ends; the next attempt gets QA
        ledger.close()
    out, err = wrapper.communicate(timeout=600)
    result = subprocess.CompletedProcess(wrapper.args, wrapper.returncode, out, err)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) >= 2 and time.monotonic() - started >= 3
    assert all(line["result"] == "busy" and line["exit_code"] == 4 and "locked by oscar" in line["message"] for line in lines[:-1])
    assert lines[-1]["result"] == "refreshed"
    assert len(ledger_payloads(cli, "refresh.finished")) == before + 1  # busy attempts ran nothing
