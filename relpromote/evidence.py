"""Test evidence: JUnit XML reports, reduced to what a verdict needs (counts, and the file's digest)."""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from relpromote.errors import BadInput

KIND = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def split_evidence_argument(argument: str) -> tuple[str, Path]:
    """`KIND=FILE`, or `FILE` whose name (before the first '.' or '-') is the kind: unit.xml -> unit."""
    if "=" in argument:
        kind, _, path = argument.partition("=")
    else:
        path = argument
        kind = re.split(r"[.\-]", Path(argument).name, maxsplit=1)[0].lower()
    if not KIND.match(kind):
        raise BadInput(f"--evidence {argument}: cannot tell the kind of evidence; write it as KIND=FILE, e.g. unit=reports/unit.xml")
    return kind, Path(path)


def junit_counts(data: bytes, source: str) -> dict[str, int]:
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise BadInput(f"{source}: not JUnit XML ({exc}); pass the XML report your test runner wrote") from None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite") if root.tag == "testsuites" else []
    if not suites:
        raise BadInput(f"{source}: no <testsuite> in it; pass a JUnit XML report")
    totals = {"tests": 0, "failed": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        cases = suite.iter("testcase")
        for case in cases:
            totals["tests"] += 1
            if case.find("failure") is not None:
                totals["failed"] += 1
            elif case.find("error") is not None:
                totals["errors"] += 1
            elif case.find("skipped") is not None:
                totals["skipped"] += 1
    if totals["tests"] == 0:
        raise BadInput(f"{source}: the report holds no test cases; evidence must show tests that ran")
    totals["passed"] = totals["tests"] - totals["failed"] - totals["errors"] - totals["skipped"]
    return totals


def read_evidence(argument: str) -> dict[str, Any]:
    kind, path = split_evidence_argument(argument)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the evidence ({exc.strerror}); pass an existing JUnit XML file") from None
    return {"kind": kind, "file": path.name, "sha256": hashlib.sha256(data).hexdigest(), **junit_counts(data, str(path))}


def junit_report(suite: str, cases: list[tuple[str, str | None]]) -> bytes:
    """A JUnit XML report of (name, failure message or None) cases: what automated tests record."""
    root = ElementTree.Element("testsuite", name=suite, tests=str(len(cases)), failures=str(sum(1 for _, f in cases if f)))
    for name, failure in cases:
        case = ElementTree.SubElement(root, "testcase", name=name, classname=suite)
        if failure:
            ElementTree.SubElement(case, "failure", message=failure[:500])
    report: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return report
