"""What every command shares: global options, the acting project and identity, and output."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

if TYPE_CHECKING:  # the project (config, ledger, keys) is imported when a verb first needs it
    from relpromote.config import Person
    from relpromote.identity import Identity
    from relpromote.project import Project


@dataclass
class Session:
    config_option: str | None
    identity_option: str | None
    json_output: bool
    _project: Project | None = None

    @property
    def console(self) -> Console:
        """Human text: stdout normally, stderr when stdout carries the JSON result."""
        # Data (names, reasons, hosts' messages, table cells) is printed as it is: never read as rich markup or emoji
        # codes; a line that styles passes markup=True and escapes what it interpolates.
        return Console(file=sys.stderr if self.json_output else sys.stdout, highlight=False, soft_wrap=True, markup=False, emoji=False)

    @property
    def project(self) -> Project:
        if self._project is None:
            from relpromote.project import Project, config_path_from

            self._project = Project.open(config_path_from(self.config_option))
            for problem in self._project.notes:  # shared files of others' that the `group:` setting could not fix
                self.note(problem)
        return self._project

    def actor(self) -> tuple[Identity, Person]:
        from relpromote.project import load_actor

        return load_actor(self.project, self.identity_option)

    def emit(self, data: Any, human: Callable[[Console], None]) -> None:
        """The command's result: one JSON document with `ok` under --json (and no human text at all), else text."""
        if self.json_output:
            document = {"ok": True, **data} if isinstance(data, dict) else {"ok": True, "result": data}
            sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
        else:
            human(self.console)

    def note(self, text: str) -> None:
        """A remark for the person at the terminal, never mixed into what scripts read on stdout."""
        if self.json_output:
            json_event("note", message=text)
        else:
            Console(file=sys.stderr, highlight=False, soft_wrap=True, markup=False, emoji=False).print(text, style="dim")

    def close(self) -> None:
        if self._project is not None:
            self._project.close()


pass_session = click.make_pass_decorator(Session)


def json_event(event: str, **fields: Any) -> None:
    """One JSON object on one stderr line: under --json, the only thing stderr carries."""
    sys.stderr.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    sys.stderr.flush()


STOPPING = "stopping the run; hosts that switched go back to the recorded release"
NOT_INTERRUPTED = ("already stopping: the automatic rollback runs to its end and no signal interrupts it "
                   "(kill -9 would leave the hosts in doubt until `relpromote reconcile`)")
CHECK_STOPPING = "stopping the check (it changes nothing on the hosts); nothing is recorded"
RUNS_TO_ITS_END = ("a rollback is never stopped half-way: it runs to its end, whatever signals come "
                   "(kill -9 would leave the hosts in doubt until `relpromote reconcile`)")


@contextmanager
def interruptible(json_lines: bool = False, first: str = STOPPING, again: str = NOT_INTERRUPTED) -> Iterator[Callable[[], bool]]:
    """relpromote's own SIGINT/SIGTERM handling for the whole command: the first signal asks the run to stop cleanly
    (roll back, release the locks, record) instead of killing it; later ones are only acknowledged on the terminal,
    so that nothing ever interrupts a rollback. Ansible runs get a cancel callback and never install handlers."""
    asked = threading.Event()

    def ask(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        message = again if asked.is_set() else first
        if json_lines:
            json_event("signal", signal=name, message=message)
        else:
            sys.stderr.write(f"relpromote: {name} received{' again' if asked.is_set() else ''}: {message}\n")
            sys.stderr.flush()
        asked.set()

    previous = {sig: signal.signal(sig, ask) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield asked.is_set
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
