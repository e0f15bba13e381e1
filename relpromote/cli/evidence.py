"""`relpromote evidence VERSION --env ENV --out FILE` and `relpromote evidence verify FILE [--expect-head SEQ:HASH]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session
from relpromote.errors import RunFailed


class PackOrVerify(click.Group):
    """`evidence VERSION ...` makes a pack (the `pack` subcommand, named or not); `evidence verify FILE` checks one."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] in self.commands:
            return super().resolve_command(ctx, args)
        return "pack", self.commands["pack"], args


@click.group(cls=PackOrVerify)
def evidence() -> None:
    """An auditor's evidence pack of VERSION in ENV, verifiable offline without the project."""


@evidence.command()
@click.argument("version")
@click.option("--env", "env_name", required=True, metavar="ENV", help="The environment the release went live in (e.g. production).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Where to write the pack (a tar).")
@pass_session
def pack(session: Session, version: str, env_name: str, out: Path) -> None:
    """Write the evidence pack of VERSION in ENV to FILE (also `relpromote evidence VERSION --env ENV --out FILE`)."""
    from relpromote.usecases.evidence import make_pack

    data = make_pack(session.project, version, env_name, out)

    def human(console: Console) -> None:
        console.print(f"evidence of {version} in {env_name} written to {out} ({data['bytes']} bytes, head {data['head'][:20]}…); "
                      f"check it anywhere with `relpromote evidence verify {out}`", markup=False)

    session.emit(data, human)


@evidence.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--expect-head", metavar="SEQ:HASH|FILE", help="A ledger head kept elsewhere (a checkpoint) that the pack's chain must hold.")
@pass_session
def verify(session: Session, file: Path, expect_head: str | None) -> None:
    """Check a pack offline, without the project: every byte, hash, link, signature, signer, evidence file and approval."""
    from relpromote.usecases.evidence import check_pack

    report = check_pack(file, expect_head)
    data: dict[str, Any] = report.as_data()
    if not report.ok:
        raise RunFailed(f"{file}: refused: {report.problems[0]}", detail=data)

    def human(console: Console) -> None:
        console.print(f"{file}: verified: {data['version']} in {data['environment']} of {data['project']}", markup=False)
        for fact in report.facts:
            console.print(f"  {fact}", markup=False)

    session.emit(data, human)
