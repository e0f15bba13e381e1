"""`relpromote lock status ENV` and `relpromote lock release ENV --lock-id ID`."""

from __future__ import annotations

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session
from relpromote.usecases.locking import lock_status, release_lock


@click.group()
def lock() -> None:
    """Inspect an environment's lock, or release one a crashed run left."""


@lock.command("status")
@click.argument("environment")
@pass_session
def status(session: Session, environment: str) -> None:
    """Who holds ENV's lock, since when, under which id."""
    held = lock_status(session.project, environment)

    def human(console: Console) -> None:
        if held is None:
            console.print(f"{environment} is free", markup=False)
        else:
            console.print(f"{environment} is locked by {held.holder} ({held.purpose}) since {held.since[:19]}Z, "
                          f"lock id {held.lock_id}, pid {held.pid} on {held.hostname}", markup=False)

    session.emit({"environment": environment, "locked": held is not None, "lock": held.as_data() if held else None}, human)


@lock.command("release")
@click.argument("environment")
@click.option("--lock-id", required=True, metavar="ID")
@click.option("--reason", default="the run that held it is gone", metavar="TEXT")
@pass_session
def release(session: Session, environment: str, lock_id: str, reason: str) -> None:
    """Release a lock left by a crashed run (recorded in the ledger)."""
    identity, actor = session.actor()
    held = release_lock(session.project, identity, actor, environment, lock_id, reason)

    def human(console: Console) -> None:
        console.print(f"released {environment}'s lock {lock_id} (held by {held.holder} since {held.since[:19]}Z)", markup=False)

    session.emit({"environment": environment, "released": held.as_data()}, human)

