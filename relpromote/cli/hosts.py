"""`relpromote hosts trust --env ENV [--yes]`: pin the hosts' SSH keys after a person confirmed their fingerprints."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session
from relpromote.errors import BadInput
from relpromote.usecases.hosts import trust


@click.group()
def hosts() -> None:
    """The environments' hosts: pin their SSH host keys."""


def _show(console: Console, found: dict[str, Any]) -> None:
    for host in found["hosts"]:
        before = ", ".join(k["fingerprint"] for k in host["pinned_before"]) or "nothing"
        console.print(f"{host['host']} ({host['pattern']}): {host['state']}" + (f", pinned before: {before}" if host["state"] == "changed" else ""),
                      markup=False)
        for key in host["keys"]:
            console.print(f"    {key['type']:<24} {key['fingerprint']}", markup=False)


@hosts.command("trust")
@click.option("--env", "environment", required=True, metavar="ENV", help="The environment whose hosts' keys to pin.")
@click.option("--yes", "yes", is_flag=True, help="Trust the keys shown without asking (only after comparing them out of band).")
@pass_session
def trust_command(session: Session, environment: str, yes: bool) -> None:
    """Fetch each host's SSH keys, show their fingerprints to confirm, pin them in the inventory's known_hosts, record who."""
    identity, actor = session.actor()

    def confirm(found: dict[str, Any]) -> bool:
        if not session.json_output:  # under --json the document carries every fingerprint
            _show(Console(file=sys.stderr, highlight=False, soft_wrap=True, markup=False, emoji=False), found)
        if yes:
            return True
        if session.json_output or not sys.stdin.isatty():
            raise BadInput("compare these fingerprints with the hosts' (e.g. ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub "
                           "on each host), then run again with --yes")
        return click.confirm("Trust these keys for every run against " + environment + "?", default=False, err=True)

    result = trust(session.project, identity, actor, environment, confirm)

    def human(console: Console) -> None:
        if result["trusted"]:
            console.print(f"pinned in {result['known_hosts']}: {', '.join(result['trusted'])}; commit it "
                          "(production approvals cover the inventory)", markup=False)
        else:
            console.print(f"every host of {environment} presents the keys {result['known_hosts']} pins; nothing changed", markup=False)

    session.emit(result, human)
