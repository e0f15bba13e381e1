"""Shared parts of the benchmarks: real sshd hosts, a promotion project pointed at them, timing.

Every figure is measured against a baseline in the same run on the same hosts, and printed as a
ratio, so a slower or faster machine changes both sides alike.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from relpromote.adapters.control_path import private_folder
from relpromote.testing.sshd import SshHostFarm

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RELPROMOTE = str(BIN / "relpromote")


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    result = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(args[:4])}…\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result


def git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(directory), "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args],
                   check=True, capture_output=True)


@contextmanager
def farm(workdir: Path, hosts: int, first_octet: int = 150) -> Iterator[SshHostFarm]:
    with SshHostFarm(workdir / "farm", [f"qa-app-{n}" for n in range(1, hosts + 1)], first_octet=first_octet) as hosts_farm:
        yield hosts_farm


def reset_hosts(hosts: SshHostFarm) -> None:
    """Fresh hosts: stop everything running in them and wipe what a deploy left."""
    hosts.stop()
    for host in hosts.names:
        shutil.rmtree(hosts[host].path("/opt/shop"), ignore_errors=True)
    for socket_file in [p for p in private_folder().iterdir() if p.is_socket()]:  # cold SSH sockets (control_path.py)
        socket_file.unlink(missing_ok=True)
    hosts.start()


def cold_sockets() -> None:
    """No SSH master left from an earlier step, relpromote's (its private folder) or plain Ansible's (~/.ansible/cp):
    every timed step pays for its own connections."""
    folders = [private_folder(), Path.home() / ".ansible" / "cp"]
    for folder in folders:
        if folder.is_dir():
            for socket_file in [p for p in folder.iterdir() if p.is_socket()]:
                # The master exits once its socket is gone and no session uses it.
                socket_file.unlink(missing_ok=True)


def ping(project: Path) -> None:
    """`ansible -m ping` to the environment's hosts: one round trip per host plus Ansible's start-up, the floor."""
    run([str(BIN / "ansible"), "-i", "inventories/qa", "app", "-m", "ansible.builtin.ping"], cwd=project,
        env={"ANSIBLE_CONFIG": str(project / "ansible.cfg")})


def make_project(workdir: Path, hosts: SshHostFarm, keep: int = 5) -> Path:
    project = workdir / "proj"
    run([RELPROMOTE, "init", str(project)], cwd=workdir)
    key = run([RELPROMOTE, "--json", "keygen", "bench", "--out", str(workdir / "bench.key")], cwd=workdir)
    config = yaml.safe_load((project / "relpromote.yml").read_text())
    config["people"] = [{"name": "bench", "key": yaml.safe_load(key.stdout)["key"], "roles": ["operator", "release_manager"]}]
    (project / "relpromote.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    inventory = hosts.inventory(group_by={"app": list(hosts.names)})
    (project / "inventories" / "qa" / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    settings = {"release_base_dir": "/opt/shop", "release_keep": keep, "release_service_port": 8080, "release_health_timeout": 30}
    (project / "inventories" / "qa" / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    (project / "inventories" / "qa" / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "benchmark hosts")
    return project


def build(project: Path, workdir: Path, version: str, payload_bytes: int) -> dict[str, Any]:
    """A release of the example app carrying `payload_bytes` of incompressible data."""
    source = workdir / f"app-{version}"
    shutil.copytree(REPO / "examples" / "app", source)
    (source / "payload.bin").write_bytes(os.urandom(payload_bytes))
    manifest = workdir / f"{version}.yml"
    manifest.write_text(yaml.safe_dump({"version": version, "changes": [
        {"id": "B-1", "type": "other", "title": "benchmark", "owner": "bench", "why": "measure", "how": "payload"}]}))
    result = run([RELPROMOTE, "--json", "build", version, "--source", str(source), "--manifest", str(manifest)], cwd=project,
                 env={"RELPROMOTE_IDENTITY": str(workdir / "bench.key")})
    data: dict[str, Any] = yaml.safe_load(result.stdout)
    return data


def relpromote(project: Path, workdir: Path, *args: str) -> None:
    run([RELPROMOTE, *args], cwd=project, env={"RELPROMOTE_IDENTITY": str(workdir / "bench.key")})


def timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def median_of(rounds: int, prepare: Callable[[], object], step: Callable[[], object]) -> tuple[float, list[float]]:
    samples = []
    for _ in range(rounds):
        prepare()
        samples.append(timed(step))
    return statistics.median(samples), samples


def report(title: str, rows: list[tuple[str, float, list[float]]], ratios: list[tuple[str, float, float, str]]) -> None:
    print(f"\n{title}")
    for name, median, samples in rows:
        print(f"  {name:<58} median {median:6.2f} s   samples {', '.join(f'{s:.2f}' for s in samples)}")
    for name, value, goal, comparison in ratios:
        verdict = "meets" if (value <= goal if comparison == "<=" else value >= goal) else "MISSES"
        print(f"  ratio {name:<52} {value:5.2f}x  (goal {comparison} {goal}x: {verdict})")
