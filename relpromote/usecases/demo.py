"""`relpromote demo`: the whole process, end to end, on a built-in sandbox.

Leaves the work directory a promotion project that every other command can inspect.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from relpromote.errors import BadInput
from relpromote.identity import Identity, generate_identity
from relpromote.project import Project
from relpromote.resources import TEMPLATES, bundled
from relpromote.usecases.build import build_release, read_manifest
from relpromote.usecases.init import init_project

MARKER = ".relpromote-demo"
PEOPLE = {
    "alice": ["release_manager"],
    "oscar": ["operator"],
    "quinn": ["qa"],
    "carol": ["change_manager"],
}

Say = Callable[[str], None]


@dataclass
class DemoProject:
    workdir: Path
    project: Project
    identities: dict[str, Identity] = field(default_factory=dict)
    app_source: Path = Path()

    def as_(self, name: str) -> tuple[Identity, object]:
        identity = self.identities[name]
        return identity, self.project.actor(identity)


def prepare_workdir(workdir: Path) -> None:
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARKER).exists():
            raise BadInput(f"{workdir}: exists and is not a relpromote demo; pass --workdir with a new or empty directory")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)


def _git(directory: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(directory), "-c", "user.name=dana", "-c", "user.email=dana@example.org", *args],
        check=True, capture_output=True,
    )


def create_project(workdir: Path, say: Say) -> DemoProject:
    prepare_workdir(workdir)
    (workdir / MARKER).write_text("created by relpromote demo; safe to delete\n")
    keys = workdir / ".relpromote" / "demo-keys"
    identities = {name: generate_identity(keys / f"{name}.key") for name in PEOPLE}
    config = yaml.safe_load((TEMPLATES / "relpromote.yml").read_text())
    config["project"] = "shop"
    config["people"] = [{"name": n, "key": identities[n].public_key, "roles": roles} for n, roles in PEOPLE.items()]
    project_dir = workdir
    init_project(project_dir, yaml.safe_dump(config, sort_keys=False))
    say(f"created a promotion project in {project_dir} with people {', '.join(PEOPLE)} (keys in {keys})")

    app = workdir / "app-source"
    shutil.copytree(bundled("examples") / "app", app)
    subprocess.run(["git", "init", "-q", "-b", "main", str(app)], check=True)
    _git(app, "add", "-A")
    _git(app, "commit", "-q", "-m", "shop 1.0.0: health endpoint")
    demo = DemoProject(workdir, Project.open(project_dir / "relpromote.yml"), identities, app)
    return demo


def build_two_releases(demo: DemoProject, say: Say) -> None:
    manifests = bundled("examples") / "manifests"
    identity, actor = demo.identities["alice"], demo.project.actor(demo.identities["alice"])
    first = build_release(demo.project, identity, actor, "1.0.0", demo.app_source, read_manifest(manifests / "1.0.0.yml", "1.0.0"), tag=True)
    say(f"alice built 1.0.0 from commit {first.release.source['commit'][:12]}: sha256 {first.release.digest[:16]}…")
    (demo.app_source / "greeting.txt").write_text("Welcome back to the shop, friend\n")
    _git(demo.app_source, "commit", "-q", "-am", "CH-101: friendlier greeting")
    second = build_release(demo.project, identity, actor, "1.1.0", demo.app_source, read_manifest(manifests / "1.1.0.yml", "1.1.0"), tag=True)
    say(f"alice built 1.1.0 from commit {second.release.source['commit'][:12]}: sha256 {second.release.digest[:16]}…")
    again = build_release(demo.project, identity, actor, "1.1.0", demo.app_source, read_manifest(manifests / "1.1.0.yml", "1.1.0"))
    say(f"building 1.1.0 again from the same commit gives the same bytes: {again.outcome.value}, nothing recorded")


def run_demo(workdir: Path, say: Say) -> DemoProject:
    demo = create_project(workdir, say)
    build_two_releases(demo, say)
    return demo
