"""What every verb's --help ends with: examples and the exit codes it can give.

Kept in one table so the contract reads the same in every verb; LazyVerbs attaches it as the epilog.
"""

from __future__ import annotations

import click

from relpromote.errors import ExitCode

MEANING: dict[ExitCode, str] = {
    ExitCode.OK: "done",
    ExitCode.FAILED: "the run failed and was rolled back (or changed nothing)",
    ExitCode.BAD_INPUT: "bad input or configuration",
    ExitCode.REFUSED: "refused by policy (gate, role, approval, freeze, rejected release)",
    ExitCode.BUSY: "busy: the environment is locked by another run",
    ExitCode.NEEDS_PERSON: "failed and the automatic rollback failed too: hosts need a person",
}

OK, FAILED, BAD, REFUSED, BUSY, PERSON = (
    ExitCode.OK, ExitCode.FAILED, ExitCode.BAD_INPUT, ExitCode.REFUSED, ExitCode.BUSY, ExitCode.NEEDS_PERSON,
)


# The verb's path (as typed after `relpromote`) → (examples, exit codes it can give).
VERB_HELP: dict[str, tuple[tuple[str, ...], tuple[ExitCode, ...]]] = {
    "relpromote": (("relpromote demo", "relpromote status --json", "relpromote promote 1.4.0 --to qa --identity ~/oscar.key"),
                   tuple(MEANING)),
    "keygen": (("relpromote keygen alice --out ~/.config/relpromote/identity.key",), (OK, BAD)),
    "node": (("relpromote node work --node-config /etc/relpromote/node.yml",), (OK, BAD, REFUSED)),
    "node work": (("relpromote node work --node-config /etc/relpromote/node.yml",), (OK, BAD, REFUSED)),
    "init": (("relpromote init shop-releases", "relpromote init shop-releases --sandbox"), (OK, BAD)),
    "build": (("relpromote build 1.4.0 --source ../shop --manifest release-1.4.0.yml",
               "relpromote build 1.4.0 --source ../shop --manifest release-1.4.0.yml --tag --json"), (OK, BAD, REFUSED)),
    "revise": (("relpromote revise 1.4.0 --drop CH-102 --new-version 1.4.1",), (OK, FAILED, BAD, REFUSED)),
    "promote": (("relpromote promote 1.4.0 --to qa",
                 "relpromote promote 1.4.1 --to deployment --check",
                 "relpromote promote 1.4.1 --to production --batch 25%"), (OK, FAILED, BAD, REFUSED, BUSY, PERSON)),
    "accept": (("relpromote accept 1.4.0 --env qa --evidence unit=unit.xml --evidence regression=reg.xml",), (OK, BAD, REFUSED)),
    "reject": (("relpromote reject 1.4.0 --env qa --change CH-102 --reason \"breaks invoices\"",), (OK, BAD, REFUSED)),
    "approve": (("relpromote approve 1.4.1 --env production --ticket CHG-2291 --expires 8h",), (OK, BAD, REFUSED)),
    "rollback": (("relpromote rollback --env production --reason \"checkout errors\"",
                  "relpromote rollback --env qa --version 1.3.0 --reason \"back to the known good one\""),
                 (OK, BAD, REFUSED, BUSY, PERSON)),
    "reconcile": (("relpromote reconcile --env qa", "relpromote reconcile --env production --json"), (OK, BAD, REFUSED, BUSY, PERSON)),
    "refresh-qa": (("relpromote refresh-qa --dry-run", "relpromote refresh-qa --json"), (OK, FAILED, BAD, REFUSED, BUSY)),
    "releases": (("relpromote releases", "relpromote releases --json"), (OK, BAD)),
    "show": (("relpromote show 1.4.0",), (OK, BAD)),
    "status": (("relpromote status", "relpromote status --env production --json"), (OK, BAD)),
    "history": (("relpromote history --env production", "relpromote history --version 1.4.0 --json",
                 "relpromote history --person carol --kind approval --since 7d"), (OK, BAD)),
    "lock": (("relpromote lock status --env qa", "relpromote lock release --env qa --lock-id ID"), (OK, BAD, REFUSED)),
    "lock status": (("relpromote lock status --env production", "relpromote lock status --env qa --json"), (OK, BAD)),
    "lock release": (("relpromote lock release --env qa --lock-id 3f9c0d1e --reason \"runner host rebooted\"",), (OK, BAD, REFUSED, BUSY)),
    "audit": (("relpromote audit verify", "relpromote audit checkpoint --out checkpoint.json"), (OK, FAILED, BAD, REFUSED)),
    "audit verify": (("relpromote audit verify", "relpromote audit verify --hosts production --expect-head checkpoint.json"),
                     (OK, FAILED, BAD)),
    "audit checkpoint": (("relpromote audit checkpoint --out ~/ledger-checkpoints/$(date +%F).json",), (OK, BAD, REFUSED)),
    "ledger": (("relpromote ledger init-db --url postgresql://ledger_owner@db.internal/relpromote --grant relpromote",
                "relpromote ledger migrate --url postgresql://relpromote@db.internal/relpromote"), (OK, FAILED, BAD, BUSY)),
    "ledger init-db": (("relpromote ledger init-db --url postgresql://ledger_owner@db.internal/relpromote --grant relpromote",
                        "relpromote ledger init-db --grant relpromote --sql"), (OK, BAD)),
    "ledger migrate": (("relpromote ledger migrate --url postgresql://relpromote@db.internal/relpromote",
                        "relpromote ledger migrate --url 'postgresql:///relpromote?service=ledger' --json"), (OK, FAILED, BAD, BUSY)),
    "people": (("relpromote people add dana --key dana.key.pub --role qa", "relpromote people list"), (OK, BAD)),
    "people add": (("relpromote people add dana --key \"ed25519:3q2+7w...\" --role release_manager --role operator",
                    "relpromote people add erin --key ~/erin.key.pub --role change_manager"), (OK, BAD)),
    "people list": (("relpromote people list", "relpromote people list --json"), (OK, BAD)),
    "authority": (("relpromote authority show", "relpromote authority approve --commit HEAD"), (OK, BAD, REFUSED)),
    "authority show": (("relpromote authority show", "relpromote authority show --json"), (OK, BAD)),
    "authority approve": (("relpromote authority approve", "relpromote authority approve --commit 3f2a9c1 --json"), (OK, BAD, REFUSED)),
    "verify": (("relpromote verify production", "relpromote verify qa --json"), (OK, BAD, REFUSED)),
    "hosts": (("relpromote hosts trust --env production",), (OK, BAD, REFUSED)),
    "hosts trust": (("relpromote hosts trust --env production", "relpromote hosts trust --env qa --yes --json"), (OK, BAD, REFUSED)),
    "demo": (("relpromote demo --workdir relpromote-demo", "relpromote demo --stop --workdir relpromote-demo"), (OK, FAILED, BAD)),
    "parity": (("relpromote parity deployment production", "relpromote parity deployment production --json"), (OK, BAD, REFUSED)),
    "doctor": (("relpromote doctor", "relpromote doctor --pin", "relpromote doctor --file ../toolchain.yml --json"), (OK, BAD, REFUSED)),
    "notes": (("relpromote notes 1.4.0", "relpromote notes 1.4.0 --format html --out notes-1.4.0.html"), (OK, BAD)),
    "evidence": (("relpromote evidence 1.4.0 --env production --out evidence-1.4.0.tar", "relpromote evidence verify evidence-1.4.0.tar"),
                 (OK, FAILED, BAD, REFUSED)),
    "evidence pack": (("relpromote evidence pack 1.4.0 --env production --out evidence-1.4.0.tar",), (OK, BAD, REFUSED)),
    "evidence verify": (("relpromote evidence verify evidence-1.4.0.tar", "relpromote evidence verify evidence-1.4.0.tar --expect-head 42:3fa9..."),
                        (OK, FAILED, BAD)),
    "metrics": (("relpromote metrics", "relpromote metrics --env production --since 90d --json"), (OK, BAD)),
    "announce": (("relpromote announce 1.4.0 --env production", "relpromote announce 1.4.0 --env production --channel ops-mail"),
                 (OK, FAILED, BAD, REFUSED)),
}

GLOBAL_NOTE = "Global options --config FILE, --identity KEYFILE and --json may come before or after the verb."


def epilog(path: str) -> str:
    examples, codes = VERB_HELP.get(path, ((), tuple(MEANING)))
    # "\b" keeps click from re-wrapping the paragraph that follows.
    parts = []
    if examples:
        parts.append("\b\nExamples:\n" + "\n".join(f"  {example}" for example in examples))
    parts.append("\b\nExit codes:\n" + "\n".join(f"  {int(code)}  {MEANING[code]}" for code in codes))
    parts.append(GLOBAL_NOTE)
    return "\n\n".join(parts)


def attach(command: click.Command, path: str) -> None:
    """Give the command (and a group's subcommands) the epilog of its path, unless it wrote its own."""
    if not command.epilog:
        command.epilog = epilog(path)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            attach(sub, f"{path} {name}")
