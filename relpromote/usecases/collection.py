"""Assemble and build the Ansible collection relpromote.release from the roles and playbooks relpromote ships.

    python -m relpromote.usecases.collection DIR      # DIR/ansible_collections/relpromote/release, then the tarball in DIR

The collection's own files (galaxy.yml, meta/runtime.yml, README, changelog) are in collection/; the roles and
playbooks are read from where the CLI uses them (relpromote.resources.bundled), and placed and rewritten as
relpromote.collection says. `ansible-galaxy collection build` makes the tarball that `ansible-galaxy collection install`
installs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from relpromote import collection
from relpromote.errors import BadInput
from relpromote.resources import bundled

SKIPPED = ("__pycache__", ".molecule")


def assemble(out: Path, source: Path | None = None) -> Path:
    """Write the collection's tree under `out` (ansible_collections/relpromote/release, replaced if there) and return it.
    `source`: a folder holding collection/, roles/ and playbooks/ (default: those relpromote ships)."""
    where = (lambda name: source / name) if source is not None else bundled
    root = out / "ansible_collections" / collection.NAMESPACE / collection.NAME
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(where("collection"), root, ignore=shutil.ignore_patterns(*SKIPPED, "*.pyc"))
    roles = where("roles")
    placed: list[collection.Placed] = []
    for role in collection.ROLES:
        files = [path for path in sorted((roles / role).rglob("*"))
                 if path.is_file() and not set(path.parts) & set(SKIPPED) and path.suffix != ".pyc"]
        placed += collection.role_files(role, [str(path.relative_to(roles / role)) for path in files])
    origin = {item.source: roles.parent / item.source for item in placed}
    # A role's link to another role's file (release_rollback's module_utils) is that file: one place, once.
    same = [(a.source, b.source) for a in placed for b in placed
            if a.target == b.target and a.source < b.source and origin[a.source].resolve() == origin[b.source].resolve()]
    wrong = collection.clashes(placed, same)
    if wrong:
        raise BadInput(f"the collection would hold two different files at one place: {'; '.join(wrong)}")
    utils = sorted({Path(item.target).stem for item in placed if item.target.startswith("plugins/module_utils/")})
    plugins = sorted({Path(item.target).stem for item in placed if item.target.startswith(("plugins/modules/", "plugins/action/"))})
    written: set[str] = set()
    for item in placed:
        if item.target in written:
            continue  # the same file (a role's link to another role's), kept once
        written.add(item.target)
        target = root / item.target
        target.parent.mkdir(parents=True, exist_ok=True)
        text = origin[item.source].read_text(encoding="utf-8")
        if item.target.endswith(".py") and item.target.startswith("plugins/"):
            if item.target == "plugins/action/_host_python.py":
                text = collection.host_python_for_collection(text)
            text = collection.python_for_collection(text, utils, action=item.target.startswith("plugins/action/"))
        elif item.target.endswith(".yml") and "/tasks/" in item.target:
            text = collection.tasks_for_collection(text, plugins)
        target.write_text(text, encoding="utf-8")
    playbooks = where("playbooks")
    (root / "playbooks").mkdir(exist_ok=True)
    for stem in collection.PLAYBOOKS:
        text = (playbooks / f"{stem}.yml").read_text(encoding="utf-8")
        (root / "playbooks" / f"{stem}.yml").write_text(collection.playbook_for_collection(text, plugins), encoding="utf-8")
    return root


def build(out: Path, source: Path | None = None) -> Path:
    """Assemble the collection under `out` and build its tarball there with ansible-galaxy; the tarball's path."""
    root = assemble(out, source)
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    command = [str(galaxy) if galaxy.exists() else "ansible-galaxy", "collection", "build", "--force", "--output-path", str(out), str(root)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    if done.returncode != 0:
        raise BadInput(f"ansible-galaxy collection build failed: {(done.stderr or done.stdout).strip()[-500:]}")
    tarballs = sorted(out.glob(f"{collection.NAMESPACE}-{collection.NAME}-*.tar.gz"), key=lambda path: path.stat().st_mtime)
    return tarballs[-1]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m relpromote.usecases.collection DIR", file=sys.stderr)
        return 2
    print(build(Path(args[0]).absolute()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
