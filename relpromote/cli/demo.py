"""`relpromote demo [--workdir DIR]`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from relpromote.cli._common import Session, json_event, pass_session
from relpromote.cli.status import status
from relpromote.usecases.demo import run_demo
from relpromote.usecases.sandbox import FIRST_PORT, stop_sandbox_apps


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("relpromote-demo"), show_default=True,
              help="Where to create the demo project (re-running the demo replaces an earlier demo there).")
@click.option("--stop", is_flag=True, help="Stop the example apps a demo left running in --workdir, and exit.")
@click.option("--port", "first_port", type=click.IntRange(1024, 65535), default=FIRST_PORT, show_default=True,
              help="The first port tried for the simulated hosts' apps; the demo takes the first one free on all of them.")
@pass_session
@click.pass_context
def demo(ctx: click.Context, session: Session, workdir: Path, stop: bool, first_port: int) -> None:
    """Run the whole process end to end on a built-in sandbox."""
    if stop:
        stopped = stop_sandbox_apps(workdir.resolve())
        session.emit({"stopped": stopped}, lambda c: c.print(f"stopped {stopped} demo app(s) in {workdir}", markup=False))
        return
    console = Console(highlight=False, markup=False, emoji=False)

    def say(line: str) -> None:
        if session.json_output:
            json_event("demo", message=line)
        else:
            console.print("[cyan]demo[/] " + escape(line), markup=True, soft_wrap=True)

    result = run_demo(workdir.resolve(), say, first_port)
    if session.json_output:
        session.emit({"workdir": str(result.workdir), "config": str(result.project.config_path), "sandbox": result.sandbox.as_data()},
                     lambda c: None)
        return
    hint = (f"cd {workdir} && relpromote history  (or: releases, show 1.1.0, audit verify); "
            f"stop its apps: relpromote demo --stop --workdir {workdir}")
    console.print(f"\n[bold]the demo project is in {escape(str(workdir))}[/]: try  {escape(hint)}", markup=True, soft_wrap=True)
    session.config_option = str(result.project.config_path)
    ctx.invoke(status, env_name=None)
