"""The `relpromote` command: a thin shell over relpromote.usecases. One module per verb."""

from __future__ import annotations

import importlib
import json
import signal
import sys

import click

from relpromote import __version__
from relpromote.cli.help import epilog
from relpromote.errors import ExitCode, RelpromoteError

# Each verb's module is imported only when that verb runs: a promotion does not pay for the demo's imports.
VERBS: dict[str, str] = {
    "keygen": "keygen:keygen",
    "init": "init:init",
    "build": "build:build",
    "revise": "revise:revise_command",
    "promote": "promote:promote_command",
    "accept": "verdicts:accept",
    "reject": "verdicts:reject",
    "approve": "verdicts:approve",
    "rollback": "rollback:rollback_command",
    "reconcile": "reconcile:reconcile_command",
    "refresh-qa": "refresh:refresh_qa_command",
    "releases": "releases:releases",
    "show": "releases:show",
    "status": "status:status",
    "history": "status:history",
    "verify": "verify:verify_command",
    "hosts": "hosts:hosts",
    "lock": "lock:lock",
    "audit": "audit:audit",
    "ledger": "ledger:ledger",
    "demo": "demo:demo",
    "people": "people:people",
    "authority": "authority:authority",
    "parity": "parity:parity_command",
    "doctor": "doctor:doctor_command",
    "notes": "notes:notes",
    "evidence": "evidence:evidence",
    "metrics": "metrics:metrics",
    "announce": "announce:announce",
    "node": "node:node",
}


# What `relpromote --help` lists, without importing every verb (and all it imports) to read its docstring.
# tests/cli/test_help_summaries.py keeps it equal to each verb's own short help.
SUMMARIES: dict[str, str] = {
    "keygen": "Create a new ed25519 identity; print the public key line for the config's people list.",
    "init": 'Scaffold a promotion project (config, inventories, playbooks, roles) in DIRECTORY.',
    "build": 'Package the source once, digest it (sha256), store it and record it; print the digest.',
    "revise": 'Build the next release without rejected changes: revert their commits on a release branch, build, link both.',
    "promote": 'Put VERSION live on every host of ENV.',
    "accept": 'Record that VERSION passed its tests in ENV.',
    "reject": 'Record that VERSION (or some of its changes) failed in ENV; it can never be promoted again.',
    "approve": 'Approve VERSION (these exact bytes) for ENV under a change ticket.',
    "rollback": 'Put every host of ENV back on its last accepted release, in seconds.',
    "reconcile": 'Bring every host of ENV to its recorded release, settling runs that never recorded their end.',
    "refresh-qa": "Refresh QA's database from production, with sensitive columns masked.",
    "releases": 'List the built releases, where each one is live, and what became of it.',
    "show": 'One release: its changes, where it is, and what became of it in each environment.',
    "status": 'The status board: which release each environment runs, and what needs attention.',
    "history": 'Every recorded decision and run: what, who, when, and how it ended (result and reason), in order.',
    "verify": "What runs on each host of ENV (link, file hashes, the app's version) against the ledger; exit 3 on drift.",
    "hosts": "The environments' hosts: pin their SSH host keys.",
    "lock": "Inspect an environment's lock, or release one a crashed run left.",
    "audit": 'Check the signed, hash-chained ledger and anchor its head.',
    "ledger": "Where the ledger lives: prepare a PostgreSQL ledger, move a SQLite ledger into it.",
    "demo": 'Run the whole process end to end on a built-in sandbox.',
    "people": 'Who may act: the people: list of relpromote.yml, edited for you (commit the change).',
    "authority": "Who may do what (people, roles, approval policy, freezes): which version is in force, and approving a change.",
    "parity": "How far ENV_A is from mirroring ENV_B: facts of both inventories' hosts, compared per group.",
    "doctor": "This machine against the project's pinned toolchain, and what relpromote needs; says what to change.",
    "notes": 'Release notes of VERSION: each change (what, who, how, why) and when it reached each environment.',
    "evidence": "An auditor's evidence pack of VERSION in ENV, verifiable offline without the project.",
    "metrics": 'Delivery metrics: deployment frequency, lead time for changes, change failure rate, time to restore.',
    "announce": 'Send the release notes of VERSION for ENV to the configured channels (mail, webhooks); record the outcome.',
    "node": "Run a protected environment's promotions and rollbacks on its execution node.",
}


class LazyVerbs(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(VERBS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUMMARIES.get(name, "")) for name in VERBS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = VERBS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command: click.Command = getattr(importlib.import_module(f"relpromote.cli.{module_name}"), attribute)
        from relpromote.cli.help import attach

        attach(command, cmd_name)
        return command


@click.group(cls=LazyVerbs, context_settings={"help_option_names": ["-h", "--help"]}, epilog=epilog("relpromote"))
@click.option("--config", "config_option", metavar="FILE", help="Project config (else $RELPROMOTE_CONFIG, else relpromote.yml here or above).")
@click.option("--identity", "identity_option", metavar="KEYFILE",
              help="Your ed25519 key (else $RELPROMOTE_IDENTITY, else ~/.config/relpromote/identity.key).")
@click.option("--json", "json_output", is_flag=True,
              help="Print the result as one JSON document (with ok: true|false) on stdout; stderr carries only JSON event lines.")
@click.version_option(__version__, prog_name="relpromote")
@click.pass_context
def cli(ctx: click.Context, config_option: str | None, identity_option: str | None, json_output: bool) -> None:
    """Promote one immutable release through qa, deployment and production."""
    from relpromote.cli._common import Session

    session = Session(config_option, identity_option, json_output)
    ctx.obj = session
    ctx.call_on_close(session.close)


GLOBAL_FLAGS = ("--json",)
GLOBAL_VALUED = ("--config", "--identity")


def normalise_argv(argv: list[str]) -> list[str]:
    """Move the global options to the front, wherever they were typed (`relpromote status --json`).

    Stops at `--`: what follows is an argument, never an option. `--opt VALUE` and `--opt=VALUE` both work.
    """
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            rest.extend(argv[index:])
            break
        name = arg.split("=", 1)[0]
        if arg in GLOBAL_FLAGS:
            front.append(arg)
        elif name in GLOBAL_VALUED and "=" in arg:
            front.extend([name, arg.split("=", 1)[1]])
        elif arg in GLOBAL_VALUED:
            if index + 1 >= len(argv):
                raise click.UsageError(f"option {arg} needs a value")
            front.extend([arg, argv[index + 1]])
            index += 1
        else:
            rest.append(arg)
        index += 1
    return front + rest


class Interrupted(BaseException):
    """SIGINT or SIGTERM outside a run's own handler. A BaseException like KeyboardInterrupt, so that cleanup (finally,
    `except BaseException`) runs and no `except Exception` swallows it; not KeyboardInterrupt itself, which click meets
    with a bare line on stderr (under --json stderr carries JSON lines only)."""


def _terminated(signum: int, frame: object) -> None:
    # Ctrl-C, a scheduler's timeout, `kill`: cleanup runs and the answer is "interrupted" (exit 1, one JSON document under
    # --json). Runs put their own handler in place while they last (cli._common.interruptible).
    raise Interrupted(signal.Signals(signum).name)


def main() -> None:
    argv = sys.argv[1:]
    json_output = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _terminated)
    try:
        cli.main(args=normalise_argv(argv), prog_name="relpromote", standalone_mode=False)
    except RelpromoteError as exc:
        _fail(exc.message, exc.code, exc.detail, json_output)
    except (click.exceptions.Abort, Interrupted):
        _fail("interrupted", ExitCode.FAILED, {}, json_output)
    except click.exceptions.NoArgsIsHelpError as exc:
        if json_output:
            _fail("no command given (see --help)", ExitCode.BAD_INPUT, {}, json_output)
        click.echo(exc.ctx.get_help() if exc.ctx else "see relpromote --help")
        sys.exit(int(ExitCode.BAD_INPUT))
    except click.ClickException as exc:
        _fail(exc.format_message().splitlines()[0] + " (see --help)", ExitCode.BAD_INPUT, {}, json_output)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(0)


def _fail(message: str, code: int, detail: dict[str, object], json_output: bool) -> None:
    message = " ".join(message.split())  # every error is one line, whatever Ansible or a host said
    if json_output:
        from relpromote.cli._common import json_event

        # stderr carries only JSON lines under --json; the document on stdout is the result.
        json_event("error", exit_code=int(code), message=message)
        document = {"ok": False, "exit_code": int(code), "error": message, **detail}
        document["ok"] = False
        click.echo(json.dumps(document, indent=2, default=str))
    else:
        click.echo(f"relpromote: {message}", err=True)
    sys.exit(int(code))
