"""`people add` / `people list`: who may act, edited in the project's config for the user.

The config is reviewed like code, so the edit is textual and narrow: only the top-level `people:`
block is rewritten, every other line (comments included) stays as the user wrote it, and the
result is validated before it replaces the file. The change counts once it is committed.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from relpromote.adapters.files import read_named_file
from relpromote.config import NAME_PATTERN, parse_config
from relpromote.errors import BadInput
from relpromote.identity import KEY_PREFIX, MAX_KEY_FILE_BYTES, verify_public_key
from relpromote.policy import DEFAULT_ROLES

PEOPLE_KEY = re.compile(r"^people:")


@dataclass(frozen=True)
class PersonAdded:
    name: str
    key: str
    roles: list[str]
    config: Path


def known_roles(config_text: str, source: str) -> list[str]:
    """The roles relpromote's acts know: the defaults of relpromote.policy and every role the config allows."""
    config = parse_config(config_text, source)
    roles = {role for defaults in DEFAULT_ROLES.values() for role in defaults}
    allowed = [config.allow.model_dump(exclude_none=True)]
    allowed += [environment.allow.model_dump(exclude_none=True) for environment in config.environments.values()]
    roles.update(role for allow in allowed for listed in allow.values() for role in listed)
    return sorted(roles)


def read_public_key(key: str) -> str:
    """`ed25519:<base64>` given inline, or read from a file holding it (keygen's KEYFILE.pub)."""
    if not key.startswith(KEY_PREFIX):
        path = Path(key).expanduser()
        try:
            text = read_named_file(path, MAX_KEY_FILE_BYTES).decode(errors="replace").strip()
        except OSError as exc:
            raise BadInput(f"{key}: not a public key line (ed25519:...) nor a readable file ({exc.strerror}); "
                           "pass the line `relpromote keygen` printed, or its KEYFILE.pub") from None
        if "PRIVATE KEY" in text:
            raise BadInput(f"{key}: this is a private key; pass its public key (KEYFILE.pub, or the line keygen printed)")
        key = text.split()[0] if text else ""
    if not verify_public_key(key):
        raise BadInput(f"{key[:60]}: not an ed25519 public key line; pass the line `relpromote keygen` printed")
    return key


def add_person(config_path: Path, name: str, key: str, roles: list[str]) -> PersonAdded:
    if not re.match(NAME_PATTERN, name):
        raise BadInput(f"'{name}' is not a valid person name; use lower-case letters, digits, '-' and '_'")
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{config_path}: cannot read the config ({exc.strerror})") from None
    public_key = read_public_key(key)
    known = known_roles(text, str(config_path))
    unknown = [role for role in roles if role not in known]
    if unknown or not roles:
        what = f"unknown role {', '.join(unknown)}" if unknown else "no --role given"
        raise BadInput(f"{what}; roles: {', '.join(known)}")
    data: dict[str, Any] = yaml.safe_load(text)
    people: list[dict[str, Any]] = list(data.get("people") or [])
    for person in people:
        if person.get("name") == name:
            raise BadInput(f"{name} is already listed in {config_path.name}; edit their roles there (a person keeps one key)")
        if person.get("key") == public_key:
            raise BadInput(f"this key already belongs to {person.get('name')}; each person has their own key")
    people.append({"name": name, "key": public_key, "roles": list(dict.fromkeys(roles))})
    new_text = replace_people_block(text, people)
    parse_config(new_text, str(config_path))
    _write_atomically(config_path, new_text)
    return PersonAdded(name, public_key, list(dict.fromkeys(roles)), config_path)


def replace_people_block(text: str, people: list[dict[str, Any]]) -> str:
    """`text` with its top-level `people:` block replaced (appended when there is none)."""
    lines = text.splitlines(keepends=True)
    block = "people:\n" + "".join(
        "  - " + yaml.safe_dump(person, default_flow_style=True, sort_keys=False, width=10_000).strip() + "\n" for person in people
    )
    start = next((i for i, line in enumerate(lines) if PEOPLE_KEY.match(line)), None)
    if start is None:
        return text + ("" if text.endswith("\n") or not text else "\n") + block
    end = start + 1
    # The block runs on while lines are indented, list items at column 0, or blank; comments inside it go with it.
    while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t-#"):
        end += 1
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1  # comments and blank lines after the last entry belong to what follows
    return "".join(lines[:start]) + block + "".join(lines[end:])


def list_people(config_path: Path) -> list[dict[str, Any]]:
    config = parse_config(config_path.read_text(encoding="utf-8"), str(config_path))
    return [person.model_dump(mode="json") for person in config.people]


def _write_atomically(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
