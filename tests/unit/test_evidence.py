from __future__ import annotations

from pathlib import Path

import pytest

from relpromote.errors import BadInput
from relpromote.evidence import junit_report, read_evidence, split_evidence_argument

PYTEST_STYLE = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4">
<testcase name="a"/><testcase name="b"><failure message="boom"/></testcase>
<testcase name="c"><skipped/></testcase><testcase name="d"><error message="x"/></testcase>
</testsuite></testsuites>"""


def test_counts_from_a_junit_file(tmp_path: Path) -> None:
    (tmp_path / "regression.xml").write_bytes(PYTEST_STYLE)
    item = read_evidence(str(tmp_path / "regression.xml"))
    assert (item["kind"], item["tests"], item["passed"], item["failed"], item["errors"], item["skipped"]) == ("regression", 4, 1, 1, 1, 1)


def test_explicit_kind() -> None:
    assert split_evidence_argument("functional=reports/out.xml") == ("functional", Path("reports/out.xml"))


def test_not_junit(tmp_path: Path) -> None:
    (tmp_path / "unit.xml").write_text("not xml")
    with pytest.raises(BadInput, match="not JUnit XML"):
        read_evidence(str(tmp_path / "unit.xml"))
    (tmp_path / "unit.xml").write_text("<testsuite/>")
    with pytest.raises(BadInput, match="no test cases"):
        read_evidence(str(tmp_path / "unit.xml"))


def test_generated_report_round_trips(tmp_path: Path) -> None:
    (tmp_path / "smoke.xml").write_bytes(junit_report("smoke", [("ok", None), ("bad", "wrong version")]))
    item = read_evidence(str(tmp_path / "smoke.xml"))
    assert item["tests"] == 2 and item["failed"] == 1
