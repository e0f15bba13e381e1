"""`relpromote announce VERSION --env ENV [--channel NAME ...]`."""

from __future__ import annotations

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session
from relpromote.errors import RunFailed


@click.command()
@click.argument("version")
@click.option("--env", "env_name", required=True, metavar="ENV", help="The environment the announcement is about.")
@click.option("--channel", "channels", multiple=True, metavar="NAME", help="Only this channel of the config (repeatable); default: all.")
@pass_session
def announce(session: Session, version: str, env_name: str, channels: tuple[str, ...]) -> None:
    """Send the release notes of VERSION for ENV to the configured channels (mail, webhooks); record the outcome."""
    from relpromote.usecases.announce import announce as send

    identity, person = session.actor()
    data = send(session.project, identity, person, version, env_name, channels)
    failed = [c for c in data["channels"] if c["result"] == "failed"]
    if failed:
        more = f" (and {len(failed) - 1} more channels)" if len(failed) > 1 else ""
        raise RunFailed(f"announcement of {version} for {env_name}: channel {failed[0]['channel']} failed after {failed[0]['attempts']} "
                        f"attempts: {failed[0]['error']}{more}; recorded as #{data['seq']}; run the same command to send it again",
                        detail=data)

    def human(console: Console) -> None:
        for channel in data["channels"]:
            console.print(f"{channel['channel']} ({channel['kind']}): sent after {channel['attempts']} attempt(s)", markup=False)
        console.print(f"recorded as #{data['seq']}: {data['subject']}", markup=False)

    session.emit(data, human)
