"""`relpromote people add NAME --key KEY --role ROLE ...` and `relpromote people list`."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from relpromote.cli._common import Session, pass_session
from relpromote.policy import DEFAULT_ROLES
from relpromote.project import config_path_from
from relpromote.usecases.people import add_person, list_people

ROLE_HELP = ", ".join(sorted({role for roles in DEFAULT_ROLES.values() for role in roles}))


@click.group()
def people() -> None:
    """Who may act: the people: list of relpromote.yml, edited for you (commit the change)."""


@people.command("add")
@click.argument("name")
@click.option("--key", required=True, metavar="KEY",
              help="Their public key: the `ed25519:...` line keygen printed, or its KEYFILE.pub.")
@click.option("--role", "roles", multiple=True, metavar="ROLE", help=f"A role (repeat for several): {ROLE_HELP}, or one the config's allow: names.")
@pass_session
def add(session: Session, name: str, key: str, roles: tuple[str, ...]) -> None:
    """Add a person with their public key and roles to the project's config."""
    added = add_person(config_path_from(session.config_option), name, key, list(roles))

    def human(console: Console) -> None:
        console.print(f"added {added.name} ({', '.join(added.roles)}) to {added.config}", markup=False)
        session.note(f"commit it (who may do what counts once committed): git add {added.config.name} && git commit -m 'people: {name}'")

    session.emit({"ok": True, "name": added.name, "key": added.key, "roles": added.roles, "config": str(added.config)}, human)


@people.command("list")
@pass_session
def list_command(session: Session) -> None:
    """The people of the project's config and their roles."""
    listed = list_people(config_path_from(session.config_option))

    def human(console: Console) -> None:
        table = Table("name", "roles", "key", box=None)
        for person in listed:
            table.add_row(person["name"], ", ".join(person["roles"]), person["key"][:20] + "…")
        console.print(table)

    session.emit({"ok": True, "people": listed}, human)
