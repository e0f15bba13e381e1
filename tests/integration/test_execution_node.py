"""Production through its execution node (docs/execution-node.md): a real sshd host with relpromote installed holds
production's vault password and SSH key; the controller promotes and rolls back through it and never holds either;
the node refuses requests without a valid signed plan, approval or matching stream."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
import yaml

from relpromote.adapters.execution_node import stage_private_dir
from relpromote.identity import load_identity
from relpromote.ledger import Entry, format_time, utc_now
from relpromote.node_plan import NodePlan, make_request, stream_digest
from relpromote.testing.sshd import SshHostFarm
from tests.helpers import RELPROMOTE, Cli, make_app_source, make_project, one_line_error
from tests.integration.conftest import _blocks, commit_project, environment_inventory
from tests.integration.test_promote import build, ledger_payloads, live_version

PEOPLE = {"alice": ["release_manager"], "carol": ["change_manager"], "mallory": ["release_manager"]}
APP_SECRET = "node-app-secret-41c9e2"
NODE_CONFIG = "/root/node.yml"


@dataclasses.dataclass
class World:
    project: Cli
    node: SshHostFarm
    production: SshHostFarm
    secrets: list[str]  # the vault password and the lines of production's SSH key: never on the controller
    tmp: Path


def on_node(node: SshHostFarm, command: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    address, port = node.endpoint("node")
    assert node.private_key is not None
    return subprocess.run(["ssh", "-T", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                           "-i", str(node.private_key), "-p", str(port), f"root@{address}", command],
                          input=stdin, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("execution-node")
    node = SshHostFarm(tmp / "nodefarm", ["node"], first_octet=next(_blocks))
    # relpromote is installed on the node: /work (the checkout and its venv) is shared with it, and the venv's interpreter,
    # which lives under the controller's /root (private on a test host), is reached through this process's view of the tree.
    interpreter = Path(os.path.realpath(sys.executable))
    if interpreter.is_relative_to("/root"):
        top = Path("/root") / interpreter.relative_to("/root").parts[0]
        link = tmp / "nodefarm" / "hosts" / "node" / "root" / top.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(f"/proc/{os.getpid()}/root{top}")  # this test process: in the tree the node shares
    with node:
        # Production's SSH key and vault password are made on the node and never leave it.
        made = on_node(node, "set -e; umask 077; mkdir -p /root/.ssh; ssh-keygen -q -t ed25519 -N '' -C node -f /root/.ssh/production; "
                             "head -c 24 /dev/urandom | base64 > /root/vault-pass; cat /root/.ssh/production.pub")
        assert made.returncode == 0, made.stderr
        with SshHostFarm(tmp / "prodfarm", ["production-app-1", "production-app-2"], first_octet=next(_blocks),
                         authorized_keys=[made.stdout.decode().strip()]) as production:
            project = make_project(tmp / "proj", PEOPLE, promotion_path=["production"])
            project.env["XDG_CACHE_HOME"] = str(tmp / "cache")
            yield World(project, node, production, _setup(project, node, production), tmp)


def _setup(project: Cli, node: SshHostFarm, production: SshHostFarm) -> list[str]:
    folder = project.cwd / "inventories" / "production"
    (folder / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    (folder / "hosts.yml").write_text(yaml.safe_dump(environment_inventory(production, "production"), sort_keys=False))
    settings = {"release_base_dir": "/opt/shop", "release_keep": 3, "release_service_port": 8080, "release_health_timeout": 15,
                "app_secret": "{{ vault_app_secret }}"}
    (folder / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    # The vault file is encrypted on the node, with the password only the node holds.
    venv = Path(RELPROMOTE).parent
    encrypted = on_node(node, f"set -e; umask 077; cat > /root/vault.yml; {shlex.quote(str(venv / 'ansible-vault'))} encrypt "
                              "--vault-id prod@/root/vault-pass /root/vault.yml; cat /root/vault.yml; rm /root/vault.yml",
                        yaml.safe_dump({"vault_app_secret": APP_SECRET}).encode())
    assert encrypted.returncode == 0, encrypted.stderr
    (folder / "group_vars" / "all" / "vault.yml").write_bytes(encrypted.stdout)
    address, port = node.endpoint("node")
    host_key = (node.workdir / "sshd" / "node" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    (project.cwd / "node_known_hosts").write_text(f"{address} {' '.join(host_key)}\n")
    config_path = project.cwd / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["environments"] = {"production": {
        "inventory": "inventories/production", "protected": True,
        "execution_node": {"host": address, "user": "root", "port": port, "command": RELPROMOTE, "config": NODE_CONFIG,
                           "identity_file": str(node.private_key), "known_hosts": "node_known_hosts"},
    }}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    for stale in ("qa", "deployment"):
        subprocess.run(["rm", "-rf", str(project.cwd / "inventories" / stale)], check=True)
    commit_project(project, "production runs on its execution node")
    people = {p["name"]: p["key"] for p in config["people"]}
    node_config = {
        "environment": "production",
        "signers": [{"name": "alice", "key": people["alice"], "may": ["promote", "rollback", "unlock"]},
                    {"name": "carol", "key": people["carol"], "may": ["approve"]}],  # mallory is not pinned on the node
        "vault": {"id": "prod", "password": {"file": "/root/vault-pass"}},
        "ssh_key": "/root/.ssh/production",
    }
    node["node"].path(NODE_CONFIG).write_text(yaml.safe_dump(node_config, sort_keys=False))
    password = node["node"].path("/root/vault-pass").read_text().strip()
    key = node["node"].path("/root/.ssh/production").read_text()
    body = [line for line in key.splitlines() if line and not line.startswith("-----")]
    # The body's first line is the same in every unencrypted OpenSSH ed25519 key ("openssh-key-v1", no cipher, no kdf):
    # the following ones are this key's.
    return [password, *body[1:]]


def files_containing(roots: list[Path], secrets: list[str]) -> list[str]:
    found: list[str] = []
    for root in roots:
        for path in ([root] if root.is_file() else root.rglob("*") if root.exists() else ()):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                found.extend(f"{path}: {s[:8]}…" for s in secrets if s.encode() in data)
    return found


def test_production_promoted_and_rolled_back_through_the_node_which_alone_holds_its_secrets(world: World) -> None:
    project, production = world.project, world.production
    source = make_app_source(world.tmp / "app")
    build(project, source, "1.0.0", "first")
    build(project, source, "1.1.0", "second")
    unapproved = project.run("promote", "1.0.0", "--to", "production", identity="alice")
    assert unapproved.returncode == 3 and "rule 'approval'" in one_line_error(unapproved)
    for version in ("1.0.0", "1.1.0"):
        project.run("approve", version, "--env", "production", "--ticket", f"CHG-{version}", "--expires", "1h", identity="carol", check=True)

    first = project.run("--json", "promote", "1.0.0", "--to", "production", identity="alice")
    assert first.returncode == 0, first.stderr
    assert [live_version(production, h) for h in ("production-app-1", "production-app-2")] == ["1.0.0", "1.0.0"]
    assert json.loads(first.stdout)["approval"]["ticket"] == "CHG-1.0.0"
    second = project.run("promote", "1.1.0", "--to", "production", identity="alice")
    assert second.returncode == 0, second.stderr
    assert "production-app-1" in second.stdout  # the node's events reached the controller's terminal
    assert [live_version(production, h) for h in ("production-app-1", "production-app-2")] == ["1.1.0", "1.1.0"]
    finished = ledger_payloads(project, "promotion.finished")
    assert [(p["version"], p["result"]) for p in finished] == [("1.0.0", "succeeded"), ("1.1.0", "succeeded")]
    assert {h["host"] for h in finished[-1]["hosts"]} == {"production-app-1", "production-app-2"}  # events became the record

    back = project.run("rollback", "--env", "production", "--reason", "checkout errors", identity="alice")
    assert back.returncode == 0, back.stderr
    assert [live_version(production, h) for h in ("production-app-1", "production-app-2")] == ["1.0.0", "1.0.0"]
    assert ledger_payloads(project, "rollback.finished")[-1]["result"] == "succeeded"

    # The controller never held production's vault password nor its SSH key: not in the project (ledger, run folders,
    # store, git), not in the cache, not in the private folder, not in what the commands printed.
    assert len(world.secrets) >= 4 and all(len(secret) >= 24 for secret in world.secrets)  # something real to look for
    roots = [project.cwd, world.tmp / "cache", Path(f"/tmp/relpromote-{os.getuid()}"), world.node.workdir / "id_ed25519"]
    assert files_containing(roots, world.secrets) == []
    assert not any(s in out for s in world.secrets for out in (first.stdout, first.stderr, second.stdout, back.stdout))
    assert not any(s in value for s in world.secrets for value in project.env.values())
    assert all("RELPROMOTE_VAULT_SOURCE" not in path.read_text(errors="replace")
               for path in (project.cwd / ".relpromote" / "runs").rglob("*") if path.is_file())


def _stream(world: World, version: str, digest: str, extravars: dict[str, Any]) -> bytes:
    """A transmit stream of a promotion, made the way the controller makes one."""
    project = world.project.cwd
    with tempfile.TemporaryDirectory(dir=world.tmp) as folder:
        private = Path(folder)
        artifact = project / ".relpromote" / "store" / f"{digest}.tar.gz"
        candidates = list((project / ".relpromote" / "store").rglob(f"*{digest}*"))
        artifact = candidates[0] if candidates else artifact
        staged = stage_private_dir(private, project, project / "playbooks" / "promote.yml", project / "inventories" / "production",
                                   {"relpromote_environment": "production", "relpromote_hosts": "app", "release_version": version,
                                    "release_digest": digest, "release_artifact": str(artifact), **extravars})
        out_path = private / "stream"
        with open(out_path, "w+b") as out:
            ansible_runner.run(streamer="transmit", _output=out, private_data_dir=str(private), ident="t1", suppress_env_files=True,
                               **staged)
        return out_path.read_bytes()


def _plan(world: World, version: str, digest: str, stream: bytes, signer: str = "alice") -> NodePlan:
    key = load_identity(world.project.cwd / ".keys" / f"{signer}.key").public_key
    return NodePlan("shop", "production", "promote", version, digest, "lock1", "playbooks/promote.yml", None, False,
                    stream_digest(stream), signer, key, format_time(utc_now()))


def _approvals(world: World, version: str) -> list[Entry]:
    with closing(sqlite3.connect(world.project.cwd / ".relpromote" / "ledger.db")) as db:
        rows = db.execute("SELECT seq, recorded_at, kind, actor, public_key, payload, prev_hash, hash, signature FROM entries "
                          "WHERE kind = 'approval.granted' ORDER BY seq").fetchall()
    entries = [Entry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8]) for r in rows]
    return [e for e in entries if e.payload["version"] == version]


def test_the_node_refuses_unsigned_wrongly_signed_unapproved_and_mismatched_requests(world: World) -> None:
    project, production = world.project, world.production
    source = world.tmp / "app" if (world.tmp / "app").exists() else make_app_source(world.tmp / "app")
    build(project, source, "1.2.0", "third")
    releases = {r["version"]: r["digest"] for r in project.json("releases")["releases"]}
    before = {h: live_version(production, h) for h in ("production-app-1", "production-app-2")}
    digest = releases["1.2.0"]
    stream = _stream(world, "1.2.0", digest, {})
    alice = load_identity(project.cwd / ".keys" / "alice.key")
    mallory = load_identity(project.cwd / ".keys" / "mallory.key")
    project.run("approve", "1.2.0", "--env", "production", "--ticket", "CHG-1.2.0", "--expires", "1h", identity="carol", check=True)
    approvals = _approvals(world, "1.2.0")
    work = f"{shlex.quote(RELPROMOTE)} node work --node-config {NODE_CONFIG}"

    def refused(request: bytes, body: bytes = stream) -> str:
        done = on_node(world.node, work, request + body)
        assert done.returncode == 3, (done.returncode, done.stderr)
        lines = [line for line in done.stderr.decode().splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in done.stderr.decode(), done.stderr
        assert done.stdout == b""
        return lines[0]

    assert "not a signed run plan" in refused(b"")  # no request: the bare stream
    plan = _plan(world, "1.2.0", digest, stream)
    assert "not signed" in refused(make_request(plan, "", approvals))
    by_mallory = _plan(world, "1.2.0", digest, stream, "mallory")  # a release manager in the project, not pinned on the node
    assert "does not pin for mallory" in refused(make_request(by_mallory, mallory.sign(by_mallory.message()), approvals))
    forged = dataclasses.replace(plan, public_key=alice.public_key)
    assert "does not verify" in refused(make_request(forged, mallory.sign(forged.message()), approvals))
    tampered = dataclasses.replace(plan, limit="production-app-1")  # signed, then changed
    assert "does not verify" in refused(make_request(tampered, alice.sign(plan.message()), approvals))
    assert "no approval" in refused(make_request(plan, alice.sign(plan.message()), []))
    relabelled = dataclasses.replace(plan, version="1.2.1")
    assert "other bytes" in refused(make_request(relabelled, alice.sign(relabelled.message()), approvals))
    stretched = dataclasses.replace(approvals[0], payload={**approvals[0].payload, "expires_at": "2999-01-01T00:00:00.000000Z"})
    assert "does not verify" in refused(make_request(plan, alice.sign(plan.message()), [stretched]))
    # Signed and approved, but the stream is not the signed plan's.
    other = _stream(world, "1.2.0", digest, {"release_keep": 1})
    assert "sha256 differs" in refused(make_request(plan, alice.sign(plan.message()), approvals), other)
    mismatched = _stream(world, "1.0.0", digest, {})
    lie = _plan(world, "1.2.0", digest, mismatched)
    assert "release_version" in refused(make_request(lie, alice.sign(lie.message()), approvals), mismatched)
    # Through the controller: mallory passes the project's gates (a release manager, carol approved) but is not pinned
    # on the node, which refuses; the controller says why, records the run as stopped, and no host was touched.
    by_controller = project.run("promote", "1.2.0", "--to", "production", identity="mallory")
    assert by_controller.returncode == 3
    assert "execution node" in one_line_error(by_controller) and "does not pin for mallory" in by_controller.stderr
    stopped = ledger_payloads(project, "promotion.finished")[-1]
    assert (stopped["version"], stopped["result"], stopped["unsettled"]) == ("1.2.0", "failed", [])
    assert project.json("lock", "status", "--env", "production")["locked"] is False
    assert {h: live_version(production, h) for h in before} == before  # nothing ran


def node_runs() -> list[str]:
    """The processes of a run on the node: `relpromote node work` and whatever runs in its work folder."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace") if proc.name.isdigit() else ""
        except OSError:
            continue
        if f"node work --node-config {NODE_CONFIG}" in line or "relpromote-node-" in line:
            found.append(f"{proc.name}: {line[:160]}")
    return found


def test_ctrl_c_on_the_controller_ends_the_run_on_the_node_which_rolls_back(world: World) -> None:
    project, production = world.project, world.production
    source = world.tmp / "app" if (world.tmp / "app").exists() else make_app_source(world.tmp / "app")
    build(project, source, "1.3.0", "fourth")
    project.run("approve", "1.3.0", "--env", "production", "--ticket", "CHG-1.3.0", "--expires", "1h", identity="carol", check=True)
    before = [live_version(production, h) for h in ("production-app-1", "production-app-2")]
    env = {**os.environ, "PATH": f"{Path(RELPROMOTE).parent}{os.pathsep}{os.environ['PATH']}", **project.env,
           "RELPROMOTE_IDENTITY": str(project.cwd / ".keys" / "alice.key")}
    run = subprocess.Popen([RELPROMOTE, "promote", "1.3.0", "--to", "production"], cwd=project.cwd, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert run.stdout is not None
    # The first host's first task, as the node streamed it: the run is under way on the node.
    started = next((line for line in run.stdout if "production-app" in line), None)
    assert started is not None, "the promotion ended before any host reported"
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 1 and "interrupted" in err, err
    assert ledger_payloads(project, "promotion.finished")[-1]["result"] == "interrupted"
    assert [live_version(production, h) for h in ("production-app-1", "production-app-2")] == before  # rolled back through the node
    deadline = time.monotonic() + 15
    while node_runs() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert node_runs() == []
