"""Test evidence: JUnit XML reports, reduced to what a verdict needs (counts, and the file's digest).

Reports are read by junitparser over defusedxml: a report is input from outside, so entity
expansion, external entities and DTDs are refused before anything is parsed. `evidence_problem`
says why a report does not let a release be accepted: a test failed or errored (even when nothing
failed), or no test passed at all (an empty suite, or every test skipped).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from relpromote.adapters.files import read_named_file
from relpromote.errors import BadInput

KIND = re.compile(r"[a-z][a-z0-9_-]{0,62}")  # the whole kind: fullmatch (a "$" would let "unit\n" through)
# A JUnit report of a large suite is a few MiB; this bounds what is read into memory.
MAX_EVIDENCE_BYTES = 64 << 20


def split_evidence_argument(argument: str) -> tuple[str, Path]:
    """`KIND=FILE`, or `FILE` whose name (before the first '.' or '-') is the kind: unit.xml -> unit."""
    if "=" in argument:
        kind, _, path = argument.partition("=")
    else:
        path = argument
        kind = re.split(r"[.\-]", Path(argument).name, maxsplit=1)[0].lower()
    if not KIND.fullmatch(kind):
        raise BadInput(f"--evidence {argument}: cannot tell the kind of evidence; write it as KIND=FILE, e.g. unit=reports/unit.xml")
    if not path:
        raise BadInput(f"--evidence {argument}: no file after '='; write it as KIND=FILE, e.g. unit=reports/unit.xml")
    return kind, Path(path)


def junit_counts(data: bytes, source: str) -> dict[str, int]:
    """Tests, passed, failed, errors and skipped of a JUnit XML report (`<testsuites>` or one `<testsuite>`)."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring
    from junitparser import JUnitXml, JUnitXmlError

    try:
        root = fromstring(data, forbid_dtd=True)
    except ParseError as exc:
        raise BadInput(f"{source}: not JUnit XML ({exc}); pass the XML report your test runner wrote") from None
    except DefusedXmlException as exc:
        raise BadInput(f"{source}: refused: {exc}; a JUnit report needs no DTD or entities") from None
    try:
        report = JUnitXml.fromroot(root)  # type: ignore[arg-type]  # it takes an ElementTree element, as its docstring says
    except JUnitXmlError:
        raise BadInput(f"{source}: <{root.tag}> is not a JUnit report; pass a file with <testsuites> or <testsuite>") from None
    totals = {"tests": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    elements = [root] if root.tag == "testsuite" else [element for element in root if element.tag == "testsuite"]
    for suite, element in zip(report, elements, strict=True):
        errors_before = totals["errors"]
        for case in suite:
            totals["tests"] += 1
            if case.is_failure:
                totals["failed"] += 1
            elif case.is_error:
                totals["errors"] += 1
            elif case.is_skipped:
                totals["skipped"] += 1
            else:
                totals["passed"] += 1
        # Errors outside any test case (a suite that could not be set up) still count.
        totals["errors"] = max(totals["errors"], errors_before + _declared(element.get("errors")))
    return totals


def _declared(value: str | None) -> int:
    try:
        return max(0, int(value)) if value else 0
    except ValueError:
        return 0


def evidence_problem(item: Mapping[str, Any]) -> str | None:
    """Why this evidence does not let a release be accepted, or None when it shows tests that ran and passed."""
    name = f"evidence {item['kind']} ({item['file']})"
    if item["failed"] or item["errors"]:
        return f"{name} has {item['failed']} failed and {item['errors']} errored tests"
    if not item.get("passed"):
        if not item["tests"]:
            return f"{name} holds no test cases; evidence must show tests that ran"
        return f"{name}: no test passed ({item['skipped']} of {item['tests']} skipped); evidence must show tests that ran"
    return None


def read_evidence(argument: str) -> dict[str, Any]:
    return read_evidence_file(argument)[0]


def read_evidence_file(argument: str) -> tuple[dict[str, Any], bytes]:
    """The report's counts and digest, and the very bytes they were read from (the ones to keep: a pipe reads once, and
    a file may change after it was read)."""
    kind, path = split_evidence_argument(argument)
    try:
        size = path.stat().st_size
        if size > MAX_EVIDENCE_BYTES:
            raise BadInput(f"{path}: {size >> 20} MiB is larger than a test report can be (limit {MAX_EVIDENCE_BYTES >> 20} MiB); pass the JUnit XML file")
        data = read_named_file(path, MAX_EVIDENCE_BYTES)  # stat's size says nothing of a pipe or /dev/zero
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the evidence ({exc.strerror}); pass an existing JUnit XML file") from None
    return {"kind": kind, "file": path.name, "sha256": hashlib.sha256(data).hexdigest(), **junit_counts(data, str(path))}, data


def junit_report(suite: str, cases: list[tuple[str, str | None]]) -> bytes:
    """A JUnit XML report of (name, failure message or None) cases: what automated tests record."""
    from junitparser import Failure, TestCase, TestSuite

    report = TestSuite(suite)
    for name, failure in cases:
        case = TestCase(name, classname=suite)
        if failure:
            case.result = [Failure(failure[:500])]
        report.add_testcase(case)
    text: bytes = report.tostring()  # type: ignore[no-untyped-call]  # junitparser leaves it unannotated
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + text
