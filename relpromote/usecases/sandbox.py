"""The sandbox: simulated hosts on this machine, for the demo and for trying the process by hand.

Two hosts per environment, each a folder under PROJECT/hosts/ reached with Ansible's local
connection, each running the example app (PROJECT/app-source/, its own git repository) on its own
loopback address. One port serves all six addresses: the first one, from a given start, that is free
on every address, chosen when the sandbox is made and kept in PROJECT/.relpromote-sandbox.yml so the
apps can be found and stopped later. Everything here is real Ansible on real processes; only the
hosts are folders.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from relpromote.errors import BadInput
from relpromote.resources import bundled

HOSTS = {"qa": ("qa-app-1", "qa-app-2"), "deployment": ("deploy-app-1", "deploy-app-2"), "production": ("prod-app-1", "prod-app-2")}
ADDRESS_BASE = "127.0.79"  # loopback addresses of the simulated hosts (the test suite's sshd hosts use 127.0.77.x)
FIRST_PORT = 8080  # the first port tried; the sandbox takes the first one free on all six addresses
PORT_TRIES = 200
SANDBOX_FILE = ".relpromote-sandbox.yml"
IGNORED = ("hosts/", "evidence/", "app-source/", SANDBOX_FILE)
# Automated tests the sandbox's environments run after each promotion (playbooks shipped with init).
TESTS = {"qa": [{"kind": "smoke", "playbook": "playbooks/smoke_test.yml"}],
         "deployment": [{"kind": "system", "playbook": "playbooks/system_test.yml"}]}


@dataclass(frozen=True)
class Sandbox:
    addresses: dict[str, str]
    port: int

    def url(self, host: str, path: str = "/health") -> str:
        return f"http://{self.addresses[host]}:{self.port}{path}"

    def as_data(self) -> dict[str, Any]:
        return {"port": self.port, "addresses": dict(self.addresses)}


def host_addresses() -> dict[str, str]:
    names = [name for hosts in HOSTS.values() for name in hosts]
    return {name: f"{ADDRESS_BASE}.{index + 11}" for index, name in enumerate(names)}


def _port_free(address: str, port: int) -> bool:
    with socket.socket() as probe:
        # SO_REUSEADDR as the app binds: a listener anywhere on address:port refuses it, an old TIME_WAIT does not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def choose_sandbox(first_port: int = FIRST_PORT, tries: int = PORT_TRIES) -> Sandbox:
    addresses = host_addresses()
    for port in range(first_port, min(first_port + tries, 65536)):
        if all(_port_free(address, port) for address in addresses.values()):
            return Sandbox(addresses, port)
    raise BadInput(
        f"no port in {first_port}-{first_port + tries - 1} is free on all of {ADDRESS_BASE}.11-16; "
        "stop earlier sandboxes (`relpromote demo --stop --workdir DIR`) or pass --port with another first port"
    )


def recorded_sandbox(project_dir: Path) -> Sandbox | None:
    """The addresses the sandbox in `project_dir` chose (None when there is none)."""
    try:
        data = yaml.safe_load((project_dir / SANDBOX_FILE).read_text())
        return Sandbox({str(k): str(v) for k, v in data["addresses"].items()}, int(data["port"]))
    except (OSError, yaml.YAMLError, TypeError, KeyError, ValueError, AttributeError):
        return None


def sandbox_config(config: dict[str, Any]) -> dict[str, Any]:
    """The project config with the sandbox's automated tests: smoke tests in qa, system tests in deployment."""
    for environment, tests in TESTS.items():
        config["environments"][environment]["tests"] = tests
    deployment = config["environments"]["deployment"]
    deployment["evidence"] = sorted({*deployment.get("evidence", []), "system"})
    return config


def write_sandbox(project_dir: Path, sandbox: Sandbox) -> None:
    """Point the project's inventories at the simulated hosts and give it the example app's source."""
    for environment, names in HOSTS.items():
        folder = project_dir / "inventories" / environment
        hosts = {n: {"release_service_host": sandbox.addresses[n]} for n in names}
        inventory = {"all": {"children": {"app": {"hosts": hosts}}}}
        header = f"# Simulated hosts of the sandbox: folders under hosts/, local connection, apps on port {sandbox.port}.\n"
        (folder / "hosts.yml").write_text(header + yaml.safe_dump(inventory, sort_keys=False))
        settings = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "release_base_dir": f"{project_dir}/hosts/{{{{ inventory_hostname }}}}/opt/shop",
            "release_keep": 3,
            "release_service_port": sandbox.port,
            "release_health_timeout": 8,
        }
        # group_vars/all/main.yml: the one layout Ansible loads completely beside a group_vars/all/vault.yml.
        (folder / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
        (folder / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    record = {"what": "relpromote sandbox: simulated hosts under hosts/ (stop their apps: relpromote demo --stop --workdir DIR)",
              **sandbox.as_data()}
    (project_dir / SANDBOX_FILE).write_text(yaml.safe_dump(record, sort_keys=False))
    ignore = project_dir / ".gitignore"
    present = set(ignore.read_text().splitlines()) if ignore.exists() else set()
    with ignore.open("a") as out:
        out.write("# the sandbox's simulated hosts, the example app's source and the test reports QA attaches\n")
        out.write("".join(f"{line}\n" for line in IGNORED if line not in present))
    app = project_dir / "app-source"
    shutil.copytree(bundled("examples") / "app", app, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _app_git(app, "init", "-q", "-b", "main")
    _app_git(app, "add", "-A")
    _app_git(app, "commit", "-q", "-m", "shop 1.0.0: health endpoint")


def _app_git(directory: Path, *args: str) -> None:
    # The example app's commits are made by its (fictional) developer, whatever the machine's git identity.
    subprocess.run(["git", "-C", str(directory), "-c", "user.name=dana", "-c", "user.email=dana@example.org", *args],
                   check=True, capture_output=True)


def stop_sandbox_apps(project_dir: Path) -> int:
    """Stop the example apps running from `project_dir`'s simulated hosts (found by command line, not only by
    pid file: an app whose pid file was overwritten must not be left behind); returns how many."""
    marker = f"{project_dir}/hosts/"
    stopped = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if marker in command and "app.py" in command:
                os.kill(int(proc.name), signal.SIGTERM)
                stopped += 1
        except OSError:
            continue
    sandbox = recorded_sandbox(project_dir)
    deadline = time.monotonic() + 5
    while stopped and sandbox and time.monotonic() < deadline and _answering(sandbox):
        time.sleep(0.1)
    return stopped


def _answering(sandbox: Sandbox) -> bool:
    for address in sandbox.addresses.values():
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex((address, sandbox.port)) == 0:
                return True
    return False
