"""A signal to a read-only run (verify, audit verify --hosts) on the sandbox's simulated hosts: the command still keeps
its contract: exit 1, exactly one JSON document with ok: false under --json, nothing recorded as if it had finished,
and no Ansible process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from relpromote.usecases.sandbox import stop_sandbox_apps
from tests.helpers import BIN, RELPROMOTE, Cli


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    base = tmp_path_factory.mktemp("signals")
    Cli(base).run("init", str(base / "shop"), "--sandbox", check=True)
    cli = Cli(base / "shop")
    cli.run("keygen", "oscar", "--out", str(cli.cwd / ".keys" / "oscar.key"), check=True)
    cli.run("people", "add", "oscar", "--key", str(cli.cwd / ".keys" / "oscar.key.pub"), "--role", "operator", check=True)
    yield cli
    stop_sandbox_apps(cli.cwd)


def _terminated_once_running(cli: Cli, *args: str) -> tuple[int, str, list[dict[str, object]]]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "RELPROMOTE_IDENTITY": str(cli.cwd / ".keys" / "oscar.key")}
    proc = subprocess.Popen([RELPROMOTE, "--json", *args], cwd=cli.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    assert proc.stderr is not None and proc.stdout is not None
    runs = cli.cwd / ".relpromote" / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # the run's folder is there: Ansible runs now
        if runs.is_dir() and set(runs.iterdir()) - before:
            time.sleep(0.3)
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the signal could be sent"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    code = proc.returncode
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # under --json stderr is JSON lines only
    time.sleep(0.5)
    try:  # the group the command started in: nothing of it may outlive the command
        os.killpg(proc.pid, 0)
        left = True
    except ProcessLookupError:
        left = False
    assert not left, "processes of the run outlived relpromote"
    return code, out, lines


@pytest.mark.parametrize("args", [("verify", "qa"), ("audit", "verify", "--hosts", "qa")], ids=["verify", "audit-verify-hosts"])
def test_sigterm_during_a_read_only_run_keeps_the_json_contract(sandbox: Cli, args: tuple[str, ...]) -> None:
    before = len(sandbox.json("history")["entries"])
    code, out, _ = _terminated_once_running(sandbox, *args)
    assert code == 1, (code, out)
    document = json.loads(out)  # exactly one JSON document, not an empty stdout
    assert document["ok"] is False and document["exit_code"] == 1
    assert len(sandbox.json("history")["entries"]) == before  # a stopped check is not recorded as a check


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_any_command_under_json_still_gives_one_document(tmp_path: Path, signum: signal.Signals) -> None:
    os.mkfifo(tmp_path / "key.pub")
    writer = os.open(tmp_path / "key.pub", os.O_RDWR | os.O_NONBLOCK)  # a writer that stays silent: the command waits
    try:
        Cli(tmp_path).run("init", str(tmp_path / "shop"), check=True)
        proc = subprocess.Popen([RELPROMOTE, "--json", "people", "add", "zed", "--key", str(tmp_path / "key.pub"), "--role", "qa"],
                                cwd=tmp_path / "shop", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        assert proc.poll() is None
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(writer)
    assert proc.returncode == 1 and json.loads(out)["ok"] is False, (proc.returncode, out)
    # stderr carries JSON lines only, not even a blank one
    assert err.endswith("\n") and all(json.loads(line)["event"] for line in err.splitlines()), err
