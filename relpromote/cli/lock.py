"""`relpromote lock status --env ENV` and `relpromote lock release --env ENV --lock-id ID`.

The environment used to be positional (`lock status qa`); that spelling still works, with a one-line
deprecation note on stderr, because runbooks and cron jobs were written with it.
"""

from __future__ import annotations

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session
from relpromote.errors import BadInput
from relpromote.usecases.locking import lock_status, release_lock


def _environment(session: Session, verb: str, option: str | None, positional: str | None) -> str:
    if option and positional and option != positional:
        raise BadInput(f"lock {verb}: two environments given ({positional} and --env {option}); give only --env ENV")
    if positional and not option:
        session.note(f"deprecated: `lock {verb} {positional}`; write `lock {verb} --env {positional}`")
    environment = option or positional
    if not environment:
        raise BadInput(f"lock {verb} needs --env ENV (see relpromote lock {verb} --help)")
    return environment


@click.group()
def lock() -> None:
    """Inspect an environment's lock, or release one a crashed run left."""


@lock.command("status")
@click.option("--env", "env_option", metavar="ENV", help="The environment whose lock to show.")
@click.argument("positional", metavar="", required=False)
@pass_session
def status(session: Session, env_option: str | None, positional: str | None) -> None:
    """Who holds ENV's lock, since when, under which id."""
    environment = _environment(session, "status", env_option, positional)
    held = lock_status(session.project, environment)

    def human(console: Console) -> None:
        if held is None:
            console.print(f"{environment} is free", markup=False)
        else:
            console.print(f"{environment} is locked by {held.holder} ({held.purpose}) since {held.since[:19]}Z, "
                          f"lock id {held.lock_id}, pid {held.pid} on {held.hostname}"
                          + ("; STALE: its holder's database session is gone" if held.alive is False else ""), markup=False)

    session.emit({"environment": environment, "locked": held is not None, "lock": held.as_data() if held else None}, human)


@lock.command("release")
@click.option("--env", "env_option", metavar="ENV", help="The environment whose lock to release.")
@click.argument("positional", metavar="", required=False)
@click.option("--lock-id", required=True, metavar="ID", help="The id `lock status` shows (so a live run's new lock is never released by mistake).")
@click.option("--reason", metavar="TEXT", help="Why (recorded in the ledger beside what was seen of the holder's process).")
@click.option("--force", is_flag=True, help="Release even though the holder's process still runs on this machine (needs --reason).")
@pass_session
def release(session: Session, env_option: str | None, positional: str | None, lock_id: str, reason: str | None, force: bool) -> None:
    """Release a lock left by a crashed run (recorded in the ledger); refused while its run is alive here."""
    environment = _environment(session, "release", env_option, positional)
    identity, actor = session.actor()
    held, seen = release_lock(session.project, identity, actor, environment, lock_id, reason, force)

    def human(console: Console) -> None:
        console.print(f"released {environment}'s lock {lock_id} (held by {held.holder} since {held.since[:19]}Z; {seen.seen})",
                      markup=False)

    session.emit({"environment": environment, "released": held.as_data(), "holder_process": seen.as_data(), "forced": force}, human)
