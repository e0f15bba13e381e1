"""`relpromote keygen NAME --out KEYFILE`."""

from __future__ import annotations

import re
from pathlib import Path

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session
from relpromote.config import NAME_PATTERN
from relpromote.errors import BadInput
from relpromote.identity import generate_identity
from relpromote.policy import DEFAULT_ROLES

ROLE_HELP = ", ".join(sorted({role for roles in DEFAULT_ROLES.values() for role in roles}))


@click.command()
@click.argument("name")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Where to write the private key (0600).")
@pass_session
def keygen(session: Session, name: str, out: Path) -> None:
    """Create a new ed25519 identity; print the public key line for the config's people list."""
    if not re.match(NAME_PATTERN, name):
        raise BadInput(f"'{name}' is not a valid person name; use lower-case letters, digits, '-' and '_'")
    out = out.expanduser()
    try:
        identity = generate_identity(out)
        out.with_name(out.name + ".pub").write_text(f"{identity.public_key} {name}\n")
    except OSError as exc:
        raise BadInput(f"{out}: cannot write the key there ({exc.strerror}); pass --out with a path you can write to") from None
    line = f'- {{name: {name}, key: "{identity.public_key}", roles: []}}'

    def human(console: Console) -> None:
        console.print(line, markup=False)
        session.note(f"private key written to {out} (0600), public key to {out}.pub; add the person with "
                     f"`relpromote people add {name} --key {out}.pub --role ROLE` (roles: {ROLE_HELP}) or paste the line above "
                     "under people: and give it roles")

    session.emit({"name": name, "key": identity.public_key, "keyfile": str(out), "public_keyfile": f"{out}.pub", "people_line": line}, human)

