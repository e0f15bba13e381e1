"""`relpromote demo`: the whole process, end to end, on the sandbox (relpromote.usecases.sandbox:
six simulated hosts on this machine). The work directory is left a promotion project that every
other command can inspect.
"""

from __future__ import annotations

import shutil
import subprocess
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
from relpromote.usecases.sandbox import ADDRESS_BASE, FIRST_PORT, HOSTS, Sandbox, recorded_sandbox, sandbox_config, stop_sandbox_apps

MARKER = ".relpromote-demo"
PEOPLE = {
    "alice": ["release_manager", "change_manager"],  # a small team: she wears both hats
    "oscar": ["operator"],
    "quinn": ["qa"],
    "carol": ["change_manager"],
}

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


def prepare_workdir(workdir: Path) -> None:
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARKER).exists():
            raise BadInput(f"{workdir}: exists and is not a relpromote demo; pass --workdir with a new or empty directory")
        stop_sandbox_apps(workdir)
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
    config: dict[str, Any] = sandbox_config(yaml.safe_load((TEMPLATES / "relpromote.yml").read_text()))
    config["project"] = "shop"
    config["environments"]["qa"]["evidence"] = ["unit"]
    config["people"] = [{"name": n, "key": identities[n].public_key, "roles": roles} for n, roles in PEOPLE.items()]
    return config


def create_project(workdir: Path, say: Say, first_port: int = FIRST_PORT) -> DemoProject:
    prepare_workdir(workdir)
    (workdir / MARKER).write_text("created by relpromote demo; safe to delete (stop its apps first: relpromote demo --stop --workdir DIR)\n")
    keys = workdir / ".relpromote" / "demo-keys"
    identities = {name: generate_identity(keys / f"{name}.key") for name in PEOPLE}
    # Always its own repository, also where the folder lies in (and is ignored by) a clone of relpromote.
    result = init_project(workdir, yaml.safe_dump(_demo_config(identities), sort_keys=False), own_repository=True,
                          sandbox_port=first_port)
    sandbox = recorded_sandbox(workdir)
    assert result.committed and sandbox is not None  # init made the sandbox, in the demo's own repository
    say(f"promotion project in {workdir}: people {', '.join(PEOPLE)} (keys in .relpromote/demo-keys), "
        f"{sum(len(h) for h in HOSTS.values())} simulated hosts under hosts/, their apps on "
        f"{ADDRESS_BASE}.11-16 port {sandbox.port}")
    return DemoProject(workdir, Project.open(workdir / "relpromote.yml"), sandbox, identities, workdir / "app-source")


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


# ---- parity and doctor (issue 14): deployment drifts from production on one package; this machine against its toolchain ----
DEMO_PARITY = {
    "python_packages": ["shopkit"],
    "python_path": ["{{ release_base_dir }}/venv/lib/python3*/site-packages"],
    "packages": ["libc6"],
}


def _shopkit(host_dir: Path, version: str) -> None:
    site = host_dir / "opt" / "shop" / "venv" / "lib" / "python3.11" / "site-packages"
    shutil.rmtree(site, ignore_errors=True)
    info = site / f"shopkit-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: shopkit\nVersion: {version}\n")


def show_parity_and_doctor(demo: DemoProject, say: Say) -> None:
    from relpromote.usecases.doctor import doctor
    from relpromote.usecases.parity import check_parity

    for name in (*HOSTS["deployment"], *HOSTS["production"]):
        _shopkit(demo.workdir / "hosts" / name, "2.4.1")
    _shopkit(demo.workdir / "hosts" / "deploy-app-2", "2.5.0")  # someone upgraded the shop's toolkit on one mirror host by hand
    config_path = demo.project.config_path
    config = yaml.safe_load(config_path.read_text())
    # The simulated hosts share this machine's network: compare the apps' port only.
    config["parity"] = {**DEMO_PARITY, "ports": [str(demo.sandbox.port)]}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    _git(demo.workdir, "commit", "-q", "-m", "parity: what the production mirror must share with production", "relpromote.yml")
    demo.project.close()
    demo.project = Project.open(config_path)
    identity, oscar = demo.who("oscar")
    report = check_parity(demo.project, identity, oscar, "deployment", "production")
    say(f"{'REFUSED (exit 3)' if not report.within else 'OK'} oscar checked parity deployment production: {report.summary()} "
        "(recorded in the ledger; with parity.gate in the config, production would refuse until it mirrors again)")
    toolchain = demo.workdir / "toolchain.yml"
    result = doctor(toolchain, demo.project.config, demo.workdir / ".relpromote" / "demo-keys" / "alice.key", write_pin=True)
    _git(demo.workdir, "add", "toolchain.yml")
    _git(demo.workdir, "commit", "-q", "-m", "the team's toolchain, pinned from this machine")
    say(f"doctor on this machine: {result.summary()}; toolchain.yml pinned from it "
        f"({', '.join(f'{c.name} {c.have}' for c in result.checks[:4])})")


def run_demo(workdir: Path, say: Say, first_port: int = FIRST_PORT) -> DemoProject:
    demo = create_project(workdir, say, first_port)
    build_releases(demo, say)
    walk_the_process(demo, say)
    show_automatic_rollback(demo, say)
    show_parity_and_doctor(demo, say)
    return demo
