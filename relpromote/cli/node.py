"""`relpromote node work`: run, on an execution node, a run a controller streams to it (docs/execution-node.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from relpromote.usecases.node import DEFAULT_NODE_CONFIG, serve


@click.group()
def node() -> None:
    """Run a protected environment's promotions and rollbacks on its execution node."""


@node.command("work")
@click.option("--node-config", "config", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_NODE_CONFIG,
              show_default=True, help="The node's own config: pinned signers, vault password source, SSH key.")
def work(config: Path) -> None:
    """Read a signed run request and ansible-runner's transmit stream on stdin, check them, run the worker, stream back on stdout."""
    serve(config, sys.stdin.buffer, sys.stdout.buffer)
