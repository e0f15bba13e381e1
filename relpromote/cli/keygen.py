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


@click.command()
@click.argument("name")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Where to write the private key (0600).")
@pass_session
def keygen(session: Session, name: str, out: Path) -> None:
    """Create a new ed25519 identity; print the public key line for the config's people list."""
    if not re.match(NAME_PATTERN, name):
        raise BadInput(f"'{name}' is not a valid person name; use lower-case letters, digits, '-' and '_'")
    identity = generate_identity(out.expanduser())
    line = f'- {{name: {name}, key: "{identity.public_key}", roles: []}}'

    def human(console: Console) -> None:
        console.print(line, markup=False)
        session.note(f"private key written to {out} (0600); add the line above to people: and give it roles")

    session.emit({"name": name, "key": identity.public_key, "keyfile": str(out), "people_line": line}, human)

