"""The `relpromote` command: a thin shell over relpromote.usecases. One module per verb."""

from __future__ import annotations

import json
import sys

import click

from relpromote import __version__
from relpromote.cli._common import Session
from relpromote.errors import ExitCode, RelpromoteError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_option", metavar="FILE", help="Project config (else $RELPROMOTE_CONFIG, else ./relpromote.yml).")
@click.option("--identity", "identity_option", metavar="KEYFILE", help="Your ed25519 key (else $RELPROMOTE_IDENTITY, else ~/.config/relpromote/identity.key).")
@click.option("--json", "json_output", is_flag=True, help="Print the result as one JSON document on stdout; human text goes to stderr.")
@click.version_option(__version__, prog_name="relpromote")
@click.pass_context
def cli(ctx: click.Context, config_option: str | None, identity_option: str | None, json_output: bool) -> None:
    """Promote one immutable release through qa, deployment and production."""
    session = Session(config_option, identity_option, json_output)
    ctx.obj = session
    ctx.call_on_close(session.close)


def _register() -> None:
    from relpromote.cli import audit, build, demo, init, keygen, lock, promote, refresh, releases, revise, rollback, status, verdicts

    for module in (keygen, init, build, revise, promote, verdicts, rollback, refresh, releases, status, lock, audit, demo):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    json_output = "--json" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except RelpromoteError as exc:
        _fail(exc.message, exc.code, exc.detail, json_output)
    except click.exceptions.Abort:
        _fail("interrupted", ExitCode.FAILED, {}, json_output)
    except click.ClickException as exc:
        _fail(exc.format_message().splitlines()[0] + " (see --help)", ExitCode.BAD_INPUT, {}, json_output)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(0)


def _fail(message: str, code: int, detail: dict[str, object], json_output: bool) -> None:
    click.echo(f"relpromote: {message}", err=True)
    if json_output:
        click.echo(json.dumps({"ok": False, "exit_code": int(code), "error": message, **detail}, indent=2, default=str))
    sys.exit(int(code))
