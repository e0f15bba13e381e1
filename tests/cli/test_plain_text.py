"""What people type that others read at a terminal (a rejection's reason, an acceptance's note, a ticket) is plain text:
an escape sequence in it could erase or rewrite what `history` and `show` display. Refused in one line, nothing recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_evidence_store import _live_in_qa
from tests.helpers import one_line_error


@pytest.mark.parametrize("args", [
    ["reject", "1.0.0", "--env", "qa", "--reason", "\x1b[2K\rall good"],
    ["accept", "1.0.0", "--env", "qa", "--note", "green\x1b[1A\x1b[2K"],
    ["approve", "1.0.0", "--env", "qa", "--ticket", "CHG-1\x1b]8;;https://evil.test\x1b\\"],
    ["lock", "release", "--env", "qa", "--lock-id", "abc", "--force", "--reason", "\x1b[2Kcrashed"],
    ["rollback", "--env", "qa", "--reason", "\x1b[2K\rfine"],
    ["promote", "1.0.0", "--to", "qa", "--break-glass", "\x1b[2Kurgent"],
], ids=["reject --reason", "accept --note", "approve --ticket", "lock release --reason", "rollback --reason", "promote --break-glass"])
def test_control_characters_in_what_people_type_are_refused(tmp_path: Path, args: list[str]) -> None:
    project = _live_in_qa(tmp_path)
    entries = len(project.json("history")["entries"])
    who = {"reject": "quinn", "accept": "quinn", "approve": "carol", "lock": "oscar"}.get(args[0], "alice")
    result = project.run(*args, identity=who)
    assert result.returncode == 2 and "control character U+001B" in one_line_error(result), result.stderr
    assert len(project.json("history")["entries"]) == entries


MARKUP = "[/oops] [bold]x[/bold] :thumbs_up: [link=https://evil.test]here[/link]"


def test_rich_markup_and_emoji_codes_in_a_reason_are_shown_as_typed(tmp_path: Path) -> None:
    """A reason is data, not markup: `[/oops]` made rich raise (a traceback in status, show, history, releases), `[bold]`
    and `:thumbs_up:` were rendered instead of shown."""
    project = _live_in_qa(tmp_path)
    project.env["COLUMNS"] = "400"  # no folding: the reason stays on one line
    project.run("reject", "1.0.0", "--env", "qa", "--reason", MARKUP, identity="quinn", check=True)
    for verb in (["status"], ["show", "1.0.0"], ["history"], ["releases"]):
        result = project.run(*verb)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (verb, result.stderr)
        if verb != ["releases"]:  # releases says "rejected in qa", without the reason
            assert MARKUP in result.stdout, (verb, result.stdout)


def test_task_names_and_host_messages_in_a_runs_progress_are_shown_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    """What a playbook names and a host answers reaches the terminal during a run: as markup, `[/x]` raised inside
    ansible-runner's event handler in the middle of a promotion."""
    from relpromote.cli.progress import Progress

    progress = Progress(json_lines=False, title="promotion [/x]")
    progress({"event": "playbook_on_play_start", "event_data": {"name": "Promote [red]"}})
    progress({"event": "runner_on_failed", "event_data": {"host": "web[1]", "task": "Drain [/x] :smile:",
                                                          "res": {"msg": "[bold]no room[/bold] :fire:"}}})
    out = capsys.readouterr().out
    assert "promotion [/x]: Promote [red]" in out, out
    assert "web[1]" in out and "Drain [/x] :smile:: [bold]no room[/bold] :fire:" in out, out
