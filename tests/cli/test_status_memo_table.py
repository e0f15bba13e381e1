"""history's table (relpromote.cli.status.print_table) writes the bytes rich wrote for the same lines as one Text.

print_table hands rich the segments of its lines instead of one Text of 3,000 lines for rich to split again (the cost
of `history` on a long ledger); the reference below is the Text it printed before. Same bytes for plain output, for
colour terminals and for NO_COLOR, with cells that hold control codes, tabs, line breaks, wide characters and text
long enough to wrap.
"""

from __future__ import annotations

import io
import textwrap

import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from relpromote.cli.status import print_table

HEADER = ["#", "when", "who", "what", "env", "outcome"]
ROWS: list[tuple[list[str], str | None]] = [
    (["1", "2026-11-30 10:00", "alice", "build 1.0.0", "-", ""], None),
    (["2", "2026-11-30 10:05", "oscar", "promote 1.0.0", "qa", "succeeded"], None),
    (["3", "2026-11-30 10:06", "oscar", "promote 1.0.1", "production", "failed: " + "web-01: the health check did not answer " * 4], "red"),
    (["10", "2026-11-30 11:00", "quinn", "reject 1.0.1", "qa", "rejected: CH-1, CH-2: the cart total is wrong—again"], "red"),
    (["11", "2026-11-30 11:01", "ma\x07llory\r", "accept\t1.0.1", "qa", "bell\x07 and\rcarriage\x0b return\x0c and\x08 back"], None),
    (["12", "2026-11-30 11:02", "dana", "rollback to 1.0.0", "produc\ntion", "tab\there and\tthere; " * 5], "red"),
    (["13", "2026-11-30 11:03", "山田", "approve 1.0.2", "production", "approved: 変更 ticket CHG-7 until 2026-12-07 🚀 " * 3], None),
    (["14", "2026-11-30 11:04", "eve", "verify", "qa", "   leading spaces, then a-very-long-hyphenated-word-that-cannot-break-anywhere-at-all-x"], None),
    (["15", "2026-11-30 11:05", "eve", "verify", "qa", "     "], "red"),
    (["16", "2026-11-30 11:06", "eve", "verify", "qa", "ends with spaces     "], None),
    (["17", "2026-11-30 11:07", "eve", "verify", "qa", "\x1b[31mnot red\x1b[0m, an escape stays as text"], None),
]


def reference(console: Console, header: list[str], rows: list[tuple[list[str], str | None]], min_last: int = 16) -> None:
    """print_table as it was: one Text of every line, printed by rich."""
    fixed = [max(cell_len(cells[column]) for cells in [header, *(cells for cells, _ in rows)]) for column in range(len(header) - 1)]
    indent = sum(fixed) + 2 * len(fixed)
    last = max(min_last, console.width - indent)
    text = Text()
    for cells, style in [(header, "bold"), *rows]:
        lead = "  ".join(cell.rjust(fixed[0]) if column == 0 else cell + " " * (fixed[column] - cell_len(cell))
                         for column, cell in enumerate(cells[:-1]))
        wrapped = textwrap.wrap(cells[-1], last, break_on_hyphens=False) or [""]
        lines = [f"{lead}  {wrapped[0]}".rstrip(), *(" " * indent + more.rstrip() for more in wrapped[1:])]
        text.append("\n".join(lines) + "\n", style=style)
    console.print(text, end="", soft_wrap=True)


@pytest.mark.parametrize("width", [40, 80, 120, 300])
@pytest.mark.parametrize("kind", ["plain", "colour", "no-colour"])
def test_print_table_writes_what_rich_wrote_for_one_text(width: int, kind: str) -> None:
    outputs = []
    for printer in (reference, print_table):
        stream = io.StringIO()
        console = Console(file=stream, width=width, highlight=False, soft_wrap=True, force_terminal=kind != "plain",
                          color_system=None if kind == "plain" else "truecolor", no_color=kind == "no-colour")
        printer(console, HEADER, ROWS)
        outputs.append(stream.getvalue())
    assert outputs[0] == outputs[1]
    assert ("\x1b[1m" in outputs[1]) == (kind != "plain") and "\x07" not in outputs[1] and "\r" not in outputs[1]  # bold header
    assert ("\x1b[31m 3  2026" in outputs[1]) == (kind == "colour")  # red rows
