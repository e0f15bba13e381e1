"""Read views after real runs on sshd hosts: history, releases, show and status say what became of each release.

Every command here runs with --json and the global options after the verb, so the contract (one JSON document with
`ok` on stdout, only JSON lines on stderr, documented exit codes) is also checked for the verbs that need hosts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from relpromote.testing.sshd import SshHostFarm
from tests.cli.test_cli_contract import KNOWN_MIXED, json_types, walk
from tests.helpers import BIN, RELPROMOTE, Cli, make_app_source, make_project
from tests.integration.conftest import write_inventories
from tests.integration.test_change_management import _kill_orphaned_ansible
from tests.integration.test_promote import build, live_version
from tests.integration.test_revise import two_change_release

DOCUMENTS: list[dict[str, Any]] = []  # every --json result of the test, for the one-type-per-field check


def contract(project: Cli, *args: str, who: str = "alice", expect: int = 0) -> dict[str, Any]:
    """Run a verb as a script would, global options last; check the --json contract; return the document."""
    key = project.cwd / ".keys" / f"{who}.key"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RELPROMOTE_IDENTITY", None)
    result = subprocess.run([RELPROMOTE, *args, "--json", f"--identity={key}"], cwd=project.cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == expect, (args, result.returncode, result.stderr[-2000:])
    document: dict[str, Any] = json.loads(result.stdout)
    DOCUMENTS.append(document)
    assert document["ok"] is (expect == 0)
    for line in result.stderr.splitlines():
        assert isinstance(json.loads(line), dict), line
    return document


def text(project: Cli, *args: str) -> str:
    """The human view as an 80-column terminal gets it; no line wider than 80."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "80"}
    result = subprocess.run([RELPROMOTE, *args], cwd=project.cwd, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    too_wide = [line for line in result.stdout.splitlines() if len(line) > 80]
    assert too_wide == [], result.stdout
    return " ".join(result.stdout.split())  # cells wrap inside their column: compare words, not lines


def test_history_releases_show_and_status_say_what_became_of_each_release(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm, {"release_health_timeout": 4})
    source = make_app_source(tmp_path / "app")
    two_change_release(project, source, date.today() + timedelta(days=30))  # 1.0.0: CH-1, CH-2 with their commits
    build(project, source, "1.1.0", "second")
    build(project, source, "1.2.0", "third")

    assert contract(project, "promote", "1.0.0", "--to", "qa", who="oscar")["result"] == "succeeded"
    contract(project, "accept", "1.0.0", "--env", "qa", "--note", "smoke ok", who="quinn")

    # A run killed after it took qa's lock: the next promotion is busy (4), the lock is released by id.
    env = {**os.environ, "RELPROMOTE_IDENTITY": str(project.cwd / ".keys" / "oscar.key")}
    doomed = subprocess.Popen([RELPROMOTE, "promote", "1.1.0", "--to", "qa"], cwd=project.cwd, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not contract(project, "lock", "status", "--env", "qa")["locked"]:
        assert time.monotonic() < deadline, "the promotion never took the lock"
        time.sleep(0.05)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    _kill_orphaned_ansible(project.cwd)
    held = contract(project, "lock", "status", "--env", "qa")["lock"]
    busy = contract(project, "promote", "1.1.0", "--to", "qa", who="oscar", expect=4)
    assert busy["lock"]["lock_id"] == held["lock_id"]
    released = contract(project, "lock", "release", "--env", "qa", "--lock-id", held["lock_id"], who="oscar")
    assert released["released"]["lock_id"] == held["lock_id"]

    assert contract(project, "promote", "1.1.0", "--to", "qa", who="oscar")["result"] == "succeeded"
    back = contract(project, "rollback", "--env", "qa", "--version", "1.0.0", "--reason", "checkout errors in 1.1.0")
    assert (back["from_version"], back["version"]) == ("1.1.0", "1.0.0")
    assert [live_version(farm, host) for host in ("qa-app-1", "qa-app-2")] == ["1.0.0", "1.0.0"]

    farm["qa-app-2"].path("/opt/shop/BROKEN-1.2.0").write_text("this host's 1.2.0 answers 500\n")
    failed = contract(project, "promote", "1.2.0", "--to", "qa", who="oscar", expect=1)
    assert failed["result"] == "rolled_back" and failed["verification_failed"] is True

    contract(project, "reject", "1.0.0", "--env", "qa", "--change", "CH-2", "--reason", "greeting offends customers", who="quinn")
    revised = contract(project, "revise", "1.0.0", "--drop", "CH-2", "--new-version", "1.0.1")
    assert revised["version"] == "1.0.1" and [d["id"] for d in revised["dropped"]] == ["CH-2"]
    contract(project, "approve", "1.0.1", "--env", "qa", "--ticket", "CHG-1", "--expires", "1h", who="carol")

    # history: each promotion's result and reason, the rollback's reason
    entries = contract(project, "history", "--env", "qa")["entries"]
    promotions = [(e["version"], e["result"]) for e in entries if e["kind"] == "promotion.finished"]
    assert promotions == [("1.0.0", "succeeded"), ("1.1.0", "succeeded"), ("1.2.0", "rolled_back")]
    rolled_back = next(e for e in entries if e["kind"] == "promotion.finished" and e["version"] == "1.2.0")
    assert rolled_back["reason"] and "qa-app-2" in rolled_back["reason"]
    rollback = next(e for e in entries if e["kind"] == "rollback.finished")
    assert (rollback["result"], rollback["reason"]) == ("succeeded", "checkout errors in 1.1.0")
    shown = text(project, "history", "--env", "qa")
    assert "promote 1.2.0" in shown and "rolled back: qa-app-2" in shown
    assert "rollback to 1.0.0" in shown and "succeeded: checkout errors in 1.1.0" in shown
    assert "reject 1.0.0" in shown and "rejected: CH-2: greeting offends customers" in shown

    # releases and show: rejected, failed verification, withdrawn, and where
    listed = {r["version"]: r for r in contract(project, "releases")["releases"]}
    assert [(r["environment"], r["change_ids"]) for r in listed["1.0.0"]["rejected"]] == [("qa", ["CH-2"])]
    assert [w["environment"] for w in listed["1.1.0"]["withdrawn"]] == ["qa"] and listed["1.1.0"]["promotable"] is True
    assert [f["environment"] for f in listed["1.2.0"]["failed_verification"]] == ["qa"]
    assert (listed["1.0.0"]["promotable"], listed["1.2.0"]["promotable"], listed["1.0.1"]["promotable"]) == (False, False, True)
    table = text(project, "releases")
    for phrase in ("rejected in qa (CH-2)", "withdrawn from qa", "failed verification in qa"):
        assert phrase in table, table
    assert "failed verification in qa" in text(project, "show", "1.2.0")
    one = text(project, "show", "1.1.0")
    assert "withdrawn from qa by alice (rolled back to 1.0.0): checkout errors in 1.1.0" in one

    # status: qa runs 1.0.0, which was rejected there and may not be promoted any more
    qa = contract(project, "status", "--env", "qa")["environments"][0]
    assert qa["current"] == "1.0.0" and "rejected in qa" in qa["current_blocked"]
    deployment = contract(project, "status", "--env", "deployment")["environments"][0]
    assert deployment["current"] is None and deployment["current_blocked"] is None
    assert "may not be promoted again: 1.0.0 was rejected in qa" in text(project, "status")

    # One JSON type per field name across every result above (promote, rollback, verdicts, locks, revise, views).
    seen: dict[str, set[str]] = {}
    for document in DOCUMENTS:
        json_types(document, "", seen)
    assert {name for name, kinds in seen.items() if len(kinds) > 1} <= set(KNOWN_MIXED)
    times = [str(v) for d in DOCUMENTS for k, v in walk(d) if k in ("at", "since", "built_at", "recorded_at", "expires_at") and v]
    assert times and all(datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times)
