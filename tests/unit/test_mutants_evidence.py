"""relpromote/evidence.py, pinned exactly (issue 18's mutation score): how the kind of a report is told, every count
of a JUnit report (errors declared by several suites, odd declarations), each refusal's whole message, the size bound
and the report relpromote writes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from relpromote import evidence
from relpromote.errors import BadInput


@pytest.mark.parametrize(("argument", "kind", "path"), [
    ("reports/Unit-tests.xml", "unit", "reports/Unit-tests.xml"),
    ("smoke.v2.xml", "smoke", "smoke.v2.xml"),
    ("dir.d/regression", "regression", "dir.d/regression"),
    ("perf=a=b.xml", "perf", "a=b.xml"),
    ("e2e_x-1=out.xml", "e2e_x-1", "out.xml"),
    ("k" + "x" * 62 + "=f", "k" + "x" * 62, "f"),
])
def test_the_kind_is_the_name_before_the_first_dot_or_dash_or_given(argument: str, kind: str, path: str) -> None:
    assert evidence.split_evidence_argument(argument) == (kind, Path(path))


@pytest.mark.parametrize("argument", ["=unit.xml", "Unit=x.xml", "1unit=x", "u" * 64 + "=f", "a b=f", ".xml", "_x.xml", "unit\n=f"])
def test_a_kind_that_cannot_be_told_is_refused_with_the_fix(argument: str) -> None:
    with pytest.raises(BadInput) as refused:
        evidence.split_evidence_argument(argument)
    assert refused.value.message == f"--evidence {argument}: cannot tell the kind of evidence; write it as KIND=FILE, e.g. unit=reports/unit.xml"


def test_a_kind_without_a_file_is_refused_with_the_fix() -> None:
    with pytest.raises(BadInput) as refused:
        evidence.split_evidence_argument("unit=")
    assert refused.value.message == "--evidence unit=: no file after '='; write it as KIND=FILE, e.g. unit=reports/unit.xml"


def counts(xml: str) -> dict[str, int]:
    return evidence.junit_counts(xml.encode(), "r.xml")


def test_every_count_of_every_suite() -> None:
    xml = ('<testsuites>'
           '<testsuite name="a" errors="2"><testcase name="1"/><testcase name="2"><error/></testcase><testcase name="3"><skipped/></testcase></testsuite>'
           '<testsuite name="b" errors="1"><testcase name="4"><failure/></testcase><testcase name="5"/></testsuite>'
           '<other/></testsuites>')
    assert counts(xml) == {"tests": 5, "passed": 2, "failed": 1, "errors": 3, "skipped": 1}


@pytest.mark.parametrize(("declared", "errors"), [("", 1), ("x", 1), ("-4", 1), ("0", 1), ("1", 1), ("3", 3)])
def test_errors_a_suite_declares_count_only_beyond_its_cases(declared: str, errors: int) -> None:
    xml = f'<testsuite name="s" errors="{declared}"><testcase name="a"><error/></testcase><testcase name="b"/></testsuite>'
    assert counts(xml)["errors"] == errors


def test_declared_errors_read_as_a_count() -> None:
    assert [evidence._declared(v) for v in (None, "", "2", "-1", "x", "0")] == [0, 0, 2, 0, 0, 0]


def test_each_refusal_of_a_report_names_the_file_and_the_fix() -> None:
    with pytest.raises(BadInput) as broken:
        counts("<testsuite")
    assert broken.value.message.startswith("r.xml: not JUnit XML (") and broken.value.message.endswith("); pass the XML report your test runner wrote")
    with pytest.raises(BadInput) as other:
        counts("<html/>")
    assert other.value.message == "r.xml: <html> is not a JUnit report; pass a file with <testsuites> or <testsuite>"
    with pytest.raises(BadInput) as dtd:
        counts('<!DOCTYPE t [<!ENTITY a "b">]><testsuite/>')
    assert dtd.value.message.startswith("r.xml: refused: ") and dtd.value.message.endswith("; a JUnit report needs no DTD or entities")


@pytest.mark.parametrize(("item", "problem"), [
    ({"failed": 2, "errors": 0, "passed": 5, "tests": 7, "skipped": 0}, "evidence unit (u.xml) has 2 failed and 0 errored tests"),
    ({"failed": 0, "errors": 0, "passed": 0, "tests": 3, "skipped": 3},
     "evidence unit (u.xml): no test passed (3 of 3 skipped); evidence must show tests that ran"),
    ({"failed": 0, "errors": 0, "tests": 0, "skipped": 0}, "evidence unit (u.xml) holds no test cases; evidence must show tests that ran"),
    ({"failed": 0, "errors": 0, "passed": 1, "tests": 1, "skipped": 0}, None),
])
def test_the_problem_of_each_kind_of_report(item: dict[str, int], problem: str | None) -> None:
    assert evidence.evidence_problem({"kind": "unit", "file": "u.xml", **item}) == problem


def test_a_report_is_read_once_with_its_digest_and_bytes(tmp_path: Path) -> None:
    data = b'<testsuite name="u"><testcase name="a"/></testsuite>'
    (tmp_path / "unit.xml").write_bytes(data)
    item, kept = evidence.read_evidence_file(str(tmp_path / "unit.xml"))
    assert kept == data
    assert item == {"kind": "unit", "file": "unit.xml", "sha256": hashlib.sha256(data).hexdigest(), "tests": 1, "passed": 1, "failed": 0,
                    "errors": 0, "skipped": 0}
    assert evidence.read_evidence(f"smoke={tmp_path / 'unit.xml'}")["kind"] == "smoke"


def test_a_file_larger_than_a_report_is_refused_before_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "unit.xml"
    with open(big, "wb") as handle:
        handle.truncate(evidence.MAX_EVIDENCE_BYTES + 1)
    with pytest.raises(BadInput) as refused:
        evidence.read_evidence(str(big))
    assert refused.value.message == f"{big}: 64 MiB is larger than a test report can be (limit 64 MiB); pass the JUnit XML file"
    os.unlink(big)
    data = b'<testsuite name="u"><testcase name="a"/></testsuite>'
    big.write_bytes(data)
    monkeypatch.setattr(evidence, "MAX_EVIDENCE_BYTES", len(data))
    assert evidence.read_evidence(str(big))["passed"] == 1, "exactly the limit is read"


def test_a_missing_report_says_why(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as missing:
        evidence.read_evidence(str(tmp_path / "unit.xml"))
    assert missing.value.message == f"{tmp_path / 'unit.xml'}: cannot read the evidence (No such file or directory); pass an existing JUnit XML file"


def test_the_report_relpromote_writes() -> None:
    report = evidence.junit_report("smoke", [("ok", None), ("bad", "x" * 600), ("empty", "")])
    assert report.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="smoke"')
    assert evidence.junit_counts(report, "s") == {"tests": 3, "passed": 2, "failed": 1, "errors": 0, "skipped": 0}
    assert b'classname="smoke"' in report and b'message="' + b"x" * 500 + b'"' in report and b"x" * 501 not in report


def test_several_failures_and_errors_in_one_suite_all_count() -> None:
    xml = ('<testsuite name="s"><testcase name="a"><failure/></testcase><testcase name="b"><failure/></testcase>'
           '<testcase name="c"><error/></testcase><testcase name="d"><error/></testcase><testcase name="e"/></testsuite>')
    assert counts(xml) == {"tests": 5, "passed": 1, "failed": 2, "errors": 2, "skipped": 0}


def test_a_report_file_that_is_not_junit_is_named_by_its_path(tmp_path: Path) -> None:
    (tmp_path / "unit.xml").write_text("<html/>")
    with pytest.raises(BadInput) as refused:
        evidence.read_evidence(str(tmp_path / "unit.xml"))
    assert refused.value.message == f"{tmp_path / 'unit.xml'}: <html> is not a JUnit report; pass a file with <testsuites> or <testsuite>"


def test_the_report_names_each_case() -> None:
    report = evidence.junit_report("smoke", [("health answers", None)])
    assert b'<testcase name="health answers" classname="smoke"' in report
