"""The roles and playbooks as the Ansible collection relpromote.release: what goes where, and how a file changes on the way.

The roles and playbooks stay where the CLI and its projects use them (roles/, playbooks/); the collection is assembled
from them (relpromote.usecases.collection). A collection keeps each plugin once, at its top (plugins/modules,
plugins/action, plugins/module_utils, plugins/filter), where every role of the collection finds it; a role's own
library/, module_utils/, action_plugins/ and filter_plugins/ move there. Modules import their module_utils by the
collection's name (a collection module cannot import `ansible.module_utils.<ours>`), and the action plugins that run
module_utils with the host's Python directly (_host_python.py) register them under that name too. Pure: text in, text out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

NAMESPACE = "relpromote"
NAME = "release"
FQCN = f"{NAMESPACE}.{NAME}"
UTILS_PACKAGE = f"ansible_collections.{NAMESPACE}.{NAME}.plugins.module_utils"

# The roles of the collection: the three of issue 16 and those its playbooks call.
ROLES = ("release_deploy", "release_rollback", "qa_data_refresh", "parity_facts", "toolchain_check")
# The playbooks relpromote runs against an environment, runnable as relpromote.release.<stem>. The test playbooks
# (smoke_test, system_test) are examples a project adapts: they stay the project's.
PLAYBOOKS = ("promote", "rollback", "verify", "host_unlock", "witness", "parity_facts", "refresh_qa_data", "toolchain_check")

# A role's plugin folder -> the collection's.
PLUGIN_FOLDERS = {
    "library": "plugins/modules",
    "module_utils": "plugins/module_utils",
    "action_plugins": "plugins/action",
    "filter_plugins": "plugins/filter",
}


@dataclass(frozen=True)
class Placed:
    """One file of the collection: where it comes from (relative to the checkout) and where it goes."""

    source: str
    target: str


def collection_playbook(playbook: str, collection: str = FQCN) -> str | None:
    """The collection's name for a project playbook (`playbooks/promote.yml` -> `relpromote.release.promote`), or None
    when the collection has no such playbook (a project's own test playbooks)."""
    match = re.fullmatch(r"playbooks/([a-z_]+)\.yml", playbook)
    return f"{collection}.{match.group(1)}" if match and match.group(1) in PLAYBOOKS else None


def python_for_collection(text: str, utils: Iterable[str], *, action: bool = False) -> str:
    """A role's Python file as the collection ships it: its imports of our module_utils by the collection's name; in an
    action plugin also the module it falls back to, and the folder its module's source is read from."""
    names = "|".join(sorted(re.escape(name) for name in utils))
    if names:
        text = re.sub(rf"\bansible\.module_utils\.({names})\b", rf"{UTILS_PACKAGE}.\1", text)
        text = re.sub(rf"\bfrom ansible\.module_utils import ({names})\b", rf"from {UTILS_PACKAGE} import \1", text)
    if action:
        text = re.sub(r'"ansible\.legacy\.([a-z_]+)"', rf'"{FQCN}.\1"', text)
        text = text.replace('os.path.dirname(utils), "library"', 'os.path.dirname(utils), "modules"')
    return text


def host_python_for_collection(text: str) -> str:
    """_host_python.py as the collection ships it: the module_utils it sends to the host are registered under the
    collection's package (their imports name it), with a stub for every package above it."""
    parts = UTILS_PACKAGE.split(".")
    packages = ", ".join(f'"{".".join(parts[: index + 1])}"' for index in range(len(parts)))
    text = text.replace('("ansible", "ansible.module_utils")', f"({packages})")
    text = text.replace('"ansible.module_utils."', f'"{UTILS_PACKAGE}."').replace('"ansible.module_utils"', f'"{UTILS_PACKAGE}"')
    return text


def role_files(role: str, files: Iterable[str]) -> list[Placed]:
    """Where each file of `role` (paths relative to roles/<role>) goes in the collection."""
    placed = []
    for relative in sorted(files):
        folder, _, rest = relative.partition("/")
        if folder in PLUGIN_FOLDERS and rest:
            placed.append(Placed(f"roles/{role}/{relative}", f"{PLUGIN_FOLDERS[folder]}/{rest}"))
        else:
            placed.append(Placed(f"roles/{role}/{relative}", f"roles/{role}/{relative}"))
    return placed


def clashes(placed: Iterable[Placed], same: Iterable[tuple[str, str]] = ()) -> list[str]:
    """Targets that two different sources would fill (two roles with a module of one name), except pairs known to be
    one file (`same`: a role's link to another role's file)."""
    known = {frozenset(pair) for pair in same}
    seen: dict[str, str] = {}
    wrong = []
    for item in placed:
        before = seen.setdefault(item.target, item.source)
        if before != item.source and frozenset((before, item.source)) not in known:
            wrong.append(f"{item.target}: {before} and {item.source}")
    return wrong


def playbook_for_collection(text: str, plugins: Iterable[str] = ()) -> str:
    """A playbook as the collection ships it: the roles, modules and action plugins it calls by their collection names."""
    roles = "|".join(ROLES)
    text = re.sub(rf"^([ \t]*- role: )({roles})[ \t]*$", rf"\g<1>{FQCN}.\2", text, flags=re.MULTILINE)
    return tasks_for_collection(text, plugins)


def tasks_for_collection(text: str, plugins: Iterable[str]) -> str:
    """A tasks file (or playbook) with the collection's roles, modules and action plugins called by their collection names.

    A module is a key of a task, at the indent of the task's first key (`- name: ...`), with its arguments below it;
    a key of that name deeper down (set_stats data, a variable) stays as it is."""
    wanted = set(plugins)
    # include_role/import_role of a role of the collection
    text = re.sub(rf"^([ \t]+name: )({'|'.join(ROLES)})[ \t]*$", rf"\g<1>{FQCN}.\2", text, flags=re.MULTILINE)
    lines = text.splitlines(keepends=True)
    task_indent = -1
    for index, line in enumerate(lines):
        item = re.match(r"^([ \t]*)- ", line)
        if item:
            task_indent = len(item.group(1)) + 2
            continue
        key = re.match(r"^([ \t]*)([a-z_]+):[ \t]*(#.*)?$", line.rstrip("\n"))
        if key and len(key.group(1)) == task_indent and key.group(2) in wanted:
            lines[index] = f"{key.group(1)}{FQCN}.{line[len(key.group(1)):]}"
    return "".join(lines)
