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
