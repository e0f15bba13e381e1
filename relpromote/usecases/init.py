"""Scaffold a promotion project: config, per-environment inventories, playbooks, roles.

Promotions record the git commit they ran from, and protected environments are promoted only
from a committed project, so the project is put under git at once. Where it lands decides how:

- outside any git work tree: the project becomes its own repository, scaffold committed;
- inside someone's repository (an infrastructure repo is a normal home for it): nothing is
  committed in their repository; the caller is told in one line what to commit;
- inside a repository that ignores the folder, or when asked (the demo): its own repository.

With a sandbox, the inventories point at simulated hosts on this machine (relpromote.usecases.sandbox),
so the whole process can be tried by hand before there are real hosts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from relpromote.config import DEFAULT_CONFIG_NAME, parse_config
from relpromote.errors import BadInput
from relpromote.resources import TEMPLATES, bundled
from relpromote.usecases.sandbox import SANDBOX_FILE, TESTS, choose_sandbox, sandbox_config, write_sandbox

GITIGNORE = "# relpromote's local state: ledger, artifact store, run directories\n.relpromote/\napp-source/\n"
COPIED = ("inventories", "playbooks", "roles", "ansible.cfg")


@dataclass(frozen=True)
class InitResult:
    directory: Path
    written: list[str]
    repository: Path  # the git work tree that holds the project
    committed: bool  # the scaffold was committed (in its own repository)
    next_step: str  # one line: what the user does next about git


def init_project(
    directory: Path, config_text: str | None = None, own_repository: bool = False, sandbox_port: int | None = None
) -> InitResult:
    """Create the project in `directory`; `own_repository` makes it a git repository of its own wherever it lies;
    `sandbox_port` (the first port to try) points its inventories at simulated hosts on this machine."""
    directory = directory.absolute()
    if (directory / DEFAULT_CONFIG_NAME).exists():
        raise BadInput(f"{directory / DEFAULT_CONFIG_NAME}: a project is already here; pick another DIR")
    text = config_text if config_text is not None else (TEMPLATES / DEFAULT_CONFIG_NAME).read_text()
    if sandbox_port is not None and config_text is None:
        text = _with_sandbox_tests(text)
    parse_config(text, DEFAULT_CONFIG_NAME)
    for name in COPIED:
        if (directory / name).exists():
            raise BadInput(f"{directory / name}: already exists; init needs a new or empty directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{directory}: cannot create the project folder ({exc.strerror}); pick a DIR you can write to") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise BadInput(f"{directory}: not writable; pick a DIR you can write to")
    written = []
    for name in COPIED:
        source, target = bundled(name), directory / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".molecule"))
        else:
            shutil.copy2(source, target)
        written.append(name)
    (directory / DEFAULT_CONFIG_NAME).write_text(text)
    (directory / ".gitignore").write_text(GITIGNORE)
    written += [DEFAULT_CONFIG_NAME, ".gitignore"]
    if sandbox_port is not None:
        write_sandbox(directory, choose_sandbox(sandbox_port))
        written += ["app-source/", SANDBOX_FILE]
    return _put_under_git(directory, written, own_repository)


def _with_sandbox_tests(text: str) -> str:
    """The template with the sandbox's automated tests added to its environments, its comments kept."""
    config = sandbox_config(yaml.safe_load(text))
    for environment in TESTS:
        settings = config["environments"][environment]
        block = "".join(f"    {key}: {json.dumps(settings[key])}\n" for key in ("tests", "evidence") if key in settings)
        anchor = f"    inventory: inventories/{environment}"
        line_end = text.index("\n", text.index(anchor)) + 1
        text = text[:line_end] + block + text[line_end:]
    return text


def _git(directory: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, check=check)
    except FileNotFoundError:
        raise BadInput("git is not installed; relpromote records the commit every promotion ran from (apt-get install git)") from None
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise BadInput(f"{directory}: git {args[0]} failed: {last[0]}") from None


def enclosing_work_tree(directory: Path) -> Path | None:
    """The top of the git work tree `directory` lies in, if any."""
    found = _git(directory, "rev-parse", "--show-toplevel", check=False)
    return Path(found.stdout.strip()) if found.returncode == 0 and found.stdout.strip() else None


def _put_under_git(directory: Path, written: list[str], own_repository: bool) -> InitResult:
    enclosing = enclosing_work_tree(directory)
    ignored = enclosing is not None and _git(enclosing, "check-ignore", "-q", str(directory), check=False).returncode == 0
    if enclosing is not None and not own_repository and not ignored:
        relative = directory.relative_to(enclosing).as_posix() if directory != enclosing else "."
        hint = (f"the project lies in the git repository {enclosing}; nothing was committed there: commit it with "
                f"`git -C {enclosing} add {relative} && git -C {enclosing} commit -m 'relpromote project'` "
                "(production is promoted only from committed files)")
        return InitResult(directory, written, enclosing, False, hint)
    _git(directory, "init", "-q", "-b", "main")
    _git(directory, "add", "-A", ".")
    # The user's own git identity when they have one; a neutral author otherwise (a fresh machine has none).
    author = [] if _git(directory, "config", "user.email", check=False).stdout.strip() else [
        "-c", "user.name=relpromote init", "-c", "user.email=relpromote@localhost"]
    _git(directory, *author, "commit", "-q", "-m", "relpromote init: promotion project scaffold")
    why = f" (the repository at {enclosing} ignores this folder)" if ignored and not own_repository else ""
    hint = f"the project is its own git repository{why}, scaffold committed; commit every change you make to it"
    return InitResult(directory, written, directory, True, hint)
