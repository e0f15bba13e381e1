"""`relpromote demo`: the whole process, end to end, on a built-in sandbox.

The sandbox: six simulated hosts (two per environment), each a folder under DIR/hosts/ reached
with Ansible's local connection, each running the example app on its own loopback address. The
work directory is left a promotion project that every other command can inspect.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from relpromote.config import Person
from relpromote.errors import BadInput, Refused, RunFailed
from relpromote.evidence import junit_report
from relpromote.identity import Identity, generate_identity
from relpromote.project import Project
from relpromote.resources import TEMPLATES, bundled
from relpromote.usecases import verdicts
from relpromote.usecases.build import build_release, read_manifest
from relpromote.usecases.init import init_project
from relpromote.usecases.promote import PromoteRequest, promote
from relpromote.usecases.rollback import rollback

MARKER = ".relpromote-demo"
PEOPLE = {
    "alice": ["release_manager", "change_manager"],  # a small team: she wears both hats
    "oscar": ["operator"],
    "quinn": ["qa"],
    "carol": ["change_manager"],
}
HOSTS = {"qa": ("qa-app-1", "qa-app-2"), "deployment": ("deploy-app-1", "deploy-app-2"), "production": ("prod-app-1", "prod-app-2")}
ADDRESS_BASE = "127.0.79"  # loopback addresses of the simulated hosts; tests use 127.0.77.x
DEMO_PORT = 8080  # the first port tried; the demo takes the first one free on all six addresses
PORT_TRIES = 200

Say = Callable[[str], None]


@dataclass
class DemoProject:
    workdir: Path
    project: Project
    sandbox: Sandbox
    identities: dict[str, Identity] = field(default_factory=dict)
    app_source: Path = Path()

    def who(self, name: str) -> tuple[Identity, Person]:
        identity = self.identities[name]
        return identity, self.project.actor(identity)


@dataclass(frozen=True)
class Sandbox:
    """Where the simulated hosts' apps listen: one loopback address per host, one port for all, chosen at
    run time (the first port from `first_port` free on every address) and kept in the demo project."""

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
        try:
            probe.bind((address, port))  # no SO_REUSEADDR: a port in any use, even TIME_WAIT, counts as taken
        except OSError:
            return False
    return True


def choose_sandbox(first_port: int = DEMO_PORT, tries: int = PORT_TRIES) -> Sandbox:
    addresses = host_addresses()
    for port in range(first_port, min(first_port + tries, 65536)):
        if all(_port_free(address, port) for address in addresses.values()):
            return Sandbox(addresses, port)
    raise BadInput(
        f"no port in {first_port}-{first_port + tries - 1} is free on all of {ADDRESS_BASE}.11-16; "
        "stop earlier demos (`relpromote demo --stop --workdir DIR`) or pass --port with another first port"
    )


def recorded_sandbox(workdir: Path) -> Sandbox | None:
    """The addresses a demo in `workdir` chose, from its marker file (None when there is no demo there)."""
    try:
        data = yaml.safe_load((workdir / MARKER).read_text())
        return Sandbox({str(k): str(v) for k, v in data["addresses"].items()}, int(data["port"]))
    except (OSError, yaml.YAMLError, TypeError, KeyError, ValueError, AttributeError):
        return None


def stop_demo_apps(workdir: Path) -> int:
    """Stop the example apps running from `workdir`'s simulated hosts (found by command line, not only by pid
    file: an app whose pid file was overwritten must not be left behind); returns how many."""
    marker = f"{workdir}/hosts/"
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
    sandbox = recorded_sandbox(workdir)
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


def prepare_workdir(workdir: Path) -> None:
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARKER).exists():
            raise BadInput(f"{workdir}: exists and is not a relpromote demo; pass --workdir with a new or empty directory")
        stop_demo_apps(workdir)
        shutil.rmtree(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{workdir}: cannot create the demo folder ({exc.strerror}); pass --workdir with a folder you can write to") from None


def _git(directory: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(directory), "-c", "user.name=dana", "-c", "user.email=dana@example.org", *args],
        check=True, capture_output=True,
    )


def _demo_config(identities: dict[str, Identity]) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((TEMPLATES / "relpromote.yml").read_text())
    config["project"] = "shop"
    config["environments"]["qa"].update(evidence=["unit"], tests=[{"kind": "smoke", "playbook": "playbooks/smoke_test.yml"}])
    config["environments"]["deployment"].update(evidence=["system"], tests=[{"kind": "system", "playbook": "playbooks/system_test.yml"}])
    config["people"] = [{"name": n, "key": identities[n].public_key, "roles": roles} for n, roles in PEOPLE.items()]
    return config


def _write_sandbox_inventories(workdir: Path, sandbox: Sandbox) -> None:
    addresses = sandbox.addresses
    for environment, names in HOSTS.items():
        folder = workdir / "inventories" / environment
        inventory = {"all": {"children": {"app": {"hosts": {n: {"release_service_host": addresses[n]} for n in names}}}}}
        header = "# Simulated hosts of the demo: folders under hosts/, local connection.\n"
        (folder / "hosts.yml").write_text(header + yaml.safe_dump(inventory, sort_keys=False))
        settings = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "release_base_dir": f"{workdir}/hosts/{{{{ inventory_hostname }}}}/opt/shop",
            "release_keep": 3,
            "release_service_port": sandbox.port,
            "release_health_timeout": 8,
        }
        (folder / "group_vars" / "all.yml").write_text(yaml.safe_dump(settings, sort_keys=False))


def create_project(workdir: Path, say: Say, first_port: int = DEMO_PORT) -> DemoProject:
    prepare_workdir(workdir)
    sandbox = choose_sandbox(first_port)
    marker = {"created_by": "relpromote demo; safe to delete (stop its apps first: relpromote demo --stop --workdir DIR)",
              **sandbox.as_data()}
    (workdir / MARKER).write_text(yaml.safe_dump(marker, sort_keys=False))
    keys = workdir / ".relpromote" / "demo-keys"
    identities = {name: generate_identity(keys / f"{name}.key") for name in PEOPLE}
    # Always its own repository, also where the folder lies in (and is ignored by) a clone of relpromote.
    init_project(workdir, yaml.safe_dump(_demo_config(identities), sort_keys=False), own_repository=True)
    _write_sandbox_inventories(workdir, sandbox)
    with (workdir / ".gitignore").open("a") as ignore:
        ignore.write("# the demo's simulated hosts and the test reports QA attaches as evidence\nhosts/\nevidence/\n" + MARKER + "\n")
    _git(workdir, "add", "-A")
    _git(workdir, "commit", "-q", "-m", "demo: simulated hosts for qa, deployment and production")
    say(f"promotion project in {workdir}: people {', '.join(PEOPLE)} (keys in .relpromote/demo-keys), "
        f"{sum(len(h) for h in HOSTS.values())} simulated hosts under hosts/, their apps on "
        f"{ADDRESS_BASE}.11-16 port {sandbox.port}")

    app = workdir / "app-source"
    shutil.copytree(bundled("examples") / "app", app)
    subprocess.run(["git", "init", "-q", "-b", "main", str(app)], check=True)
    _git(app, "add", "-A")
    _git(app, "commit", "-q", "-m", "shop 1.0.0: health endpoint")
    return DemoProject(workdir, Project.open(workdir / "relpromote.yml"), sandbox, identities, app)


def build_releases(demo: DemoProject, say: Say) -> None:
    manifests = bundled("examples") / "manifests"
    identity, actor = demo.who("alice")
    first = build_release(demo.project, identity, actor, "1.0.0", demo.app_source, read_manifest(manifests / "1.0.0.yml", "1.0.0"), tag=True)
    say(f"alice built 1.0.0 from commit {first.release.source['commit'][:12]}: sha256 {first.release.digest[:16]}…")
    (demo.app_source / "greeting.txt").write_text("Welcome back to the shop, friend\n")
    _git(demo.app_source, "commit", "-q", "-am", "CH-101: friendlier greeting")
    second = build_release(demo.project, identity, actor, "1.1.0", demo.app_source, read_manifest(manifests / "1.1.0.yml", "1.1.0"), tag=True)
    say(f"alice built 1.1.0 from commit {second.release.source['commit'][:12]}: sha256 {second.release.digest[:16]}…")
    again = build_release(demo.project, identity, actor, "1.1.0", demo.app_source, read_manifest(manifests / "1.1.0.yml", "1.1.0"))
    say(f"building 1.1.0 again from the same commit gives the same bytes: {again.outcome.value}, nothing recorded")
    (demo.app_source / "checkout.txt").write_text("one-page checkout\n")
    _git(demo.app_source, "add", "checkout.txt")
    _git(demo.app_source, "commit", "-q", "-m", "CH-103: one-page checkout")
    third = build_release(demo.project, identity, actor, "1.2.0", demo.app_source, read_manifest(manifests / "1.2.0.yml", "1.2.0"), tag=True)
    say(f"alice built 1.2.0 from commit {third.release.source['commit'][:12]}: sha256 {third.release.digest[:16]}…")


def _promote(demo: DemoProject, say: Say, who: str, version: str, environment: str) -> None:
    identity, actor = demo.who(who)
    outcome = promote(demo.project, identity, actor, PromoteRequest(version, environment))
    tests = ", ".join(f"{e['kind']} {e['passed']}/{e['tests']}" for e in outcome.as_data()["evidence"])
    say(f"{who} promoted {version} to {environment}: {len(outcome.switched)} of {len(outcome.hosts)} hosts switched, "
        f"{outcome.changed} changes, {outcome.duration:.1f}s" + (f"; automated tests: {tests}" if tests else ""))


def _refused(say: Say, what: str, attempt: Callable[[], object]) -> None:
    try:
        attempt()
    except Refused as refusal:
        say(f"REFUSED (exit 3) {what}: {refusal.message}")
    else:
        raise AssertionError(f"the demo expected a refusal: {what}")


def walk_the_process(demo: DemoProject, say: Say) -> None:
    project = demo.project
    _promote(demo, say, "oscar", "1.0.0", "qa")
    unit = demo.workdir / "evidence" / "unit.xml"
    unit.parent.mkdir(exist_ok=True)
    unit.write_bytes(junit_report("unit", [("test_health_answers_version", None), ("test_greeting", None), ("test_export", None)]))
    identity, quinn = demo.who("quinn")
    verdicts.accept(project, identity, quinn, "1.0.0", "qa", [f"unit={unit}"], "functional and regression runs green")
    say("quinn accepted 1.0.0 in qa with unit test evidence (the smoke tests were recorded by the promotion)")

    oscar_identity, oscar = demo.who("oscar")
    _refused(say, "oscar tries to skip qa with 1.1.0",
             lambda: promote(project, oscar_identity, oscar, PromoteRequest("1.1.0", "deployment")))
    _promote(demo, say, "oscar", "1.0.0", "deployment")
    verdicts.accept(project, identity, quinn, "1.0.0", "deployment", [], "system tests green on the production mirror")
    say("quinn accepted 1.0.0 in deployment (system test evidence from the promotion)")

    alice_identity, alice = demo.who("alice")
    _refused(say, "alice, who built 1.0.0, tries to approve it",
             lambda: verdicts.approve(project, alice_identity, alice, "1.0.0", "production", "CHG-1001", "4h"))
    carol_identity, carol = demo.who("carol")
    verdicts.approve(project, carol_identity, carol, "1.0.0", "production", "CHG-1001", "4h")
    say("carol (change manager) approved 1.0.0 for production under CHG-1001, valid 4h, bound to its sha256")
    _promote(demo, say, "alice", "1.0.0", "production")

    _promote(demo, say, "oscar", "1.1.0", "qa")
    _promote(demo, say, "oscar", "1.1.0", "qa")
    say("re-promoting the live version changed nothing on the hosts")
    _accept_with_unit_evidence(demo, say, "1.1.0")
    _promote(demo, say, "oscar", "1.1.0", "deployment")
    verdicts.accept(project, identity, quinn, "1.1.0", "deployment", [], "system tests green")
    verdicts.approve(project, carol_identity, carol, "1.1.0", "production", "CHG-1002", "4h")
    say("quinn accepted 1.1.0 in deployment; carol approved it for production under CHG-1002")
    _promote(demo, say, "alice", "1.1.0", "production")
    result = rollback(project, alice_identity, alice, "production", None, "customers report checkout errors after 1.1.0")
    say(f"alice rolled production back by hand: {result['from_version']} → {result['version']} on {len(result['hosts'])} hosts "
        f"in {result['duration_s']:.1f}s (the release was still on the hosts: a link switch, a restart, a health check)")


def show_automatic_rollback(demo: DemoProject, say: Say) -> None:
    project = demo.project
    _promote(demo, say, "oscar", "1.2.0", "qa")
    _accept_with_unit_evidence(demo, say, "1.2.0")
    # deploy-app-2 holds production-like data that 1.2.0's new session format chokes on.
    (demo.workdir / "hosts" / "deploy-app-2" / "opt" / "shop" / "BROKEN-1.2.0").write_text("simulated fault: 1.2.0 fails here\n")
    oscar_identity, oscar = demo.who("oscar")
    try:
        promote(project, oscar_identity, oscar, PromoteRequest("1.2.0", "deployment"))
    except RunFailed as failure:
        say(f"FAILED (exit 1) oscar promoted 1.2.0 to deployment: {failure.message}")
    else:
        raise AssertionError("the demo expected 1.2.0 to fail its health check in deployment")
    _refused(say, "oscar tries 1.2.0 again", lambda: promote(project, oscar_identity, oscar, PromoteRequest("1.2.0", "deployment")))
    say(f"the apps answer: curl {demo.sandbox.url('prod-app-1')}  (production, 1.0.0)  "
        f"curl {demo.sandbox.url('qa-app-1')}  (qa, 1.2.0)")


def _accept_with_unit_evidence(demo: DemoProject, say: Say, version: str) -> None:
    unit = demo.workdir / "evidence" / f"unit-{version}.xml"
    unit.parent.mkdir(exist_ok=True)
    unit.write_bytes(junit_report("unit", [("test_health_answers_version", None), ("test_greeting", None)]))
    identity, quinn = demo.who("quinn")
    verdicts.accept(demo.project, identity, quinn, version, "qa", [f"unit={unit}"], "")
    say(f"quinn accepted {version} in qa with unit test evidence")


def run_demo(workdir: Path, say: Say, first_port: int = DEMO_PORT) -> DemoProject:
    demo = create_project(workdir, say, first_port)
    build_releases(demo, say)
    walk_the_process(demo, say)
    show_automatic_rollback(demo, say)
    return demo
