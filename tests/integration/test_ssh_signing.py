"""Signing with the keys people already hold: an OpenSSH key in an ssh-agent the test starts, and a
passphrase-protected OpenSSH key file, sign real decisions that other processes verify (relpromote's
own `audit verify`, and `ssh-keygen -Y verify` with an allowed-signers file derived from people:)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import textwrap
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from relpromote.config import load_config
from relpromote.identity import allowed_signers
from tests.helpers import Cli, git_run, one_line_error
from tests.integration.test_ledger_trust import commit, forge, mallory, new_project, ready_for_production

pytestmark = pytest.mark.skipif(subprocess.run(["which", "ssh-agent"], capture_output=True).returncode != 0, reason="needs openssh-client")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[dict[str, str]]:
    socket = tmp_path / "agent.sock"
    started = subprocess.run(["ssh-agent", "-a", str(socket), "-s"], capture_output=True, text=True, check=True)
    pid = int(started.stdout.split("SSH_AGENT_PID=")[1].split(";")[0])
    try:
        yield {"SSH_AUTH_SOCK": str(socket)}
    finally:
        os.kill(pid, signal.SIGTERM)


def ssh_key(path: Path, passphrase: str = "") -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "someone@laptop", "-f", str(path)], check=True)
    fields = Path(f"{path}.pub").read_text().split()
    return f"{fields[0]} {fields[1]}"


@pytest.fixture
def project(tmp_path: Path) -> Cli:
    return new_project(tmp_path)


def give_key(project: Cli, name: str, key: str) -> None:
    config_path = project.cwd / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    for person in config["people"]:
        if person["name"] == name:
            person["key"] = key
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    commit(project, f"{name} signs with an OpenSSH key")


def approval_row(project: Cli) -> tuple[str, str, str]:
    with closing(sqlite3.connect(project.cwd / ".relpromote" / "ledger.db")) as db:
        row = db.execute("SELECT hash, signature, public_key FROM entries WHERE kind = 'approval.granted'").fetchone()
    return row[0], row[1], row[2]


def test_an_ssh_agent_key_signs_an_approval_that_other_processes_verify(project: Cli, agent: dict[str, str], tmp_path: Path) -> None:
    key = ssh_key(tmp_path / "carol_ssh")
    subprocess.run(["ssh-add", "-q", str(tmp_path / "carol_ssh")], env={**os.environ, **agent}, check=True, capture_output=True)
    (tmp_path / "carol_ssh").unlink()  # only the agent holds the private half now
    give_key(project, "carol", key)
    ready_for_production(project)

    signer = Cli(project.cwd, env={**agent, "RELPROMOTE_IDENTITY": str(tmp_path / "carol_ssh.pub")})
    result = signer.run("approve", "1.0.0", "--env", "production", "--ticket", "CHG-42", "--expires", "2h")
    assert result.returncode == 0, result.stderr
    digest, signature, public_key = approval_row(project)
    assert public_key == key

    # A second process, without the agent, verifies the whole ledger.
    assert project.json("audit", "verify")["ok"]
    # And OpenSSH itself accepts the signature, with an allowed-signers file derived from people:.
    config = load_config(project.cwd / "relpromote.yml")
    signers = tmp_path / "allowed_signers"
    signers.write_text(allowed_signers((p.name, p.key) for p in config.people))
    armored = tmp_path / "approval.sig"
    armored.write_text("-----BEGIN SSH SIGNATURE-----\n" + "\n".join(textwrap.wrap(signature, 70)) + "\n-----END SSH SIGNATURE-----\n")
    check = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "carol", "-n", "relpromote", "-s", str(armored)],
                           input=digest.encode(), capture_output=True)
    assert check.returncode == 0 and b'Good "relpromote" signature for carol' in check.stdout, check.stderr
    # The same signature over other bytes is not carol's.
    forged = forge(project, "approval.granted", "carol", {"version": "1.0.0", "environment": "production"}, mallory(), public_key=key)
    line = one_line_error(project.run("audit", "verify"))
    assert f"#{forged.seq} is bad: signature does not verify with the key in the row" in line


def test_a_passphrase_protected_key_file_is_asked_for_its_passphrase(project: Cli, tmp_path: Path) -> None:
    key = ssh_key(tmp_path / "carol_ssh", passphrase="correct horse")
    give_key(project, "carol", key)
    ready_for_production(project)
    askpass = tmp_path / "askpass.sh"
    askpass.write_text("#!/bin/sh\necho 'correct horse'\n")
    askpass.chmod(0o700)
    # ssh-keygen asks through SSH_ASKPASS when there is no terminal (as a desktop session would).
    asked = {"RELPROMOTE_IDENTITY": str(tmp_path / "carol_ssh"), "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force",
             "DISPLAY": ":0", "SSH_AUTH_SOCK": ""}
    result = Cli(project.cwd, env=asked).run("approve", "1.0.0", "--env", "production", "--ticket", "CHG-43")
    assert result.returncode == 0, result.stderr
    assert approval_row(project)[2] == key and project.json("audit", "verify")["ok"]
    # A wrong passphrase is a one-line error, not a traceback, and records nothing.
    askpass.write_text("#!/bin/sh\necho wrong\n")
    again = Cli(project.cwd, env=asked).run("approve", "1.0.0", "--env", "production", "--ticket", "CHG-44")
    assert again.returncode == 2 and "ssh-keygen could not sign" in one_line_error(again)
    assert git_run(project.cwd, "status", "--porcelain") == ""
