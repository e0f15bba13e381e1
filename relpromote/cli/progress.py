"""Progress of an Ansible run on the terminal, fed by ansible-runner's event handler.

Human mode: one line per host and task that changed, failed or was unreachable, as it happens.
--json mode: the same events as JSON lines on stderr (stdout carries only the final result).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape

SHOWN = {
    "runner_on_ok": ("ok", "green"),
    "runner_on_failed": ("failed", "red"),
    "runner_on_unreachable": ("unreachable", "red"),
    "runner_on_skipped": ("skipped", "dim"),
}


class Progress:
    def __init__(self, json_lines: bool, title: str) -> None:
        self.json_lines = json_lines
        # Text from hosts, playbooks and inventories is printed as it is: never read as rich markup or emoji codes.
        self.console = Console(file=sys.stderr if json_lines else sys.stdout, highlight=False, soft_wrap=True, markup=False, emoji=False)
        self.title = title

    def __call__(self, event: Mapping[str, Any]) -> None:
        name = event.get("event", "")
        data = event.get("event_data") or {}
        if name not in SHOWN and name not in ("playbook_on_play_start", "playbook_on_stats"):
            return
        host = data.get("host", "")
        task = str(data.get("task", "")).strip()
        result = data.get("res") or {}
        changed = bool(result.get("changed")) if isinstance(result, dict) else False
        if self.json_lines:
            record = {"event": name, "host": host, "task": task, "changed": changed, "at": event.get("created")}
            if name in ("runner_on_failed", "runner_on_unreachable") and isinstance(result, dict):
                record["msg"] = str(result.get("msg", ""))[:300]
            sys.stderr.write(json.dumps(record) + "\n")
            return
        if name == "playbook_on_play_start":
            self.console.print(f"[bold]{escape(self.title)}[/]: {escape(str(data.get('name', '')))}", markup=True, soft_wrap=True)
        elif name in SHOWN:
            status, style = SHOWN[name]
            if name == "runner_on_ok" and changed:
                status, style = "changed", "yellow"
            elif name in ("runner_on_ok", "runner_on_skipped"):
                return  # quiet about what did not move
            message = ""
            if name != "runner_on_ok" and isinstance(result, dict):
                message = f": {str(result.get('msg', '')).splitlines()[0][:160]}" if result.get("msg") else ""
            self.console.print(f"  {escape(f'{host:<20}')} [{style}]{status:<11}[/] {escape(f'{task}{message}')}", markup=True, soft_wrap=True)
