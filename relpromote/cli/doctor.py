"""`relpromote doctor [--file FILE] [--pin]`: this machine against the project's pinned toolchain; exit 3 on a mismatch."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from relpromote.cli._common import Session, pass_session
from relpromote.errors import BadInput, Refused
from relpromote.usecases.doctor import DoctorReport, doctor, toolchain_path


def print_report(console: Console, report: DoctorReport) -> None:
    console.print(f"{report.toolchain_file}:", markup=False)
    for check in report.checks:
        have = check.have or "missing"
        if check.matches:
            console.print(f"  ok  {check.name}: {have} (want {check.want})", markup=False)
        else:
            console.print(f"  NO  {check.name}: {have} (want {check.want}): {check.fix}", markup=False, style="red")
    if report.pinned:
        console.print(f"wrote {report.toolchain_file}: review it, add the tools your team names, and commit it", markup=False)


@click.command("doctor")
@click.option("--file", "file", metavar="FILE", help="The toolchain file (default: toolchain.yml beside relpromote.yml, or here or above).")
@click.option("--pin", is_flag=True, help="First write the toolchain file from this machine (OS, Python, ansible-core, collections, git, ssh).")
@pass_session
def doctor_command(session: Session, file: str | None, pin: bool) -> None:
    """This machine against the project's pinned toolchain, and what relpromote needs; says what to change."""
    from relpromote.project import identity_path_from

    try:
        project = session.project
    except BadInput:
        if session.config_option:
            raise  # a config named on purpose must be readable
        project = None  # outside a project: the toolchain file is looked for here and above; no vault to check
    path = toolchain_path(file, project.root if project else None, Path.cwd())
    report = doctor(path, project.config if project else None, identity_path_from(session.identity_option), pin)
    if not report.matches:
        if not session.json_output:
            print_report(session.console, report)
        raise Refused(report.summary(), detail={"doctor": report.as_data()})
    session.emit({"doctor": report.as_data()}, lambda console: print_report(console, report))
