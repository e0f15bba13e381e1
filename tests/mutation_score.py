"""Print the mutation score per module from mutmut's results (mutants/**/*.meta), and the survivors.

    python tests/mutation_score.py [MODULE ...]   # dotted names, e.g. relpromote.artifact; none: all measured

Killed and timed-out mutants count as caught; mutants not checked yet are left out of the score.
Exit 1 when a measured module is under the target (90 %).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

TARGET = 90.0
CAUGHT = {1: "killed", 3: "killed", 36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", 37: "type check"}


def status(code: int | None) -> str:
    if code is None:
        return "not checked"
    if code in CAUGHT:
        return "caught"
    return {0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}.get(code, "suspicious")


def main(modules: list[str]) -> int:
    root = Path("mutants")
    rows = []
    below = False
    for meta in sorted(root.rglob("*.py.meta")):
        module = ".".join(meta.relative_to(root).with_suffix("").with_suffix("").parts)
        if modules and module not in modules:
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts = Counter(status(code) for code in codes.values())
        checked = sum(counts.values()) - counts["not checked"] - counts["skipped"]
        if not checked:
            continue
        score = 100.0 * counts["caught"] / checked
        below |= score < TARGET
        survivors = sorted(name for name, code in codes.items() if status(code) in ("survived", "no tests", "suspicious"))
        rows.append((module, score, counts, checked, survivors))
    if not rows:
        print("no mutants checked yet: run `make mutate` first")
        return 1
    for module, score, counts, checked, _ in rows:
        print(f"{module:55} {score:5.1f} %  caught {counts['caught']}/{checked}  survived {counts['survived']}  no tests {counts['no tests']}"
              f"  suspicious {counts['suspicious']}  not checked {counts['not checked']}")
    for _module, _, _, _, survivors in rows:
        for name in survivors:
            print(f"  survived: {name}")
    return 1 if below else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:  # `| head`: the reader has seen enough
        sys.stderr.close()
        sys.exit(1)
