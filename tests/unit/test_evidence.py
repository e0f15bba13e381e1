from __future__ import annotations

from pathlib import Path

import pytest

from relpromote.errors import BadInput
from relpromote.evidence import evidence_problem, junit_report, read_evidence, split_evidence_argument

PYTEST_STYLE = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4">
<testcase name="a"/><testcase name="b"><failure message="boom"/></testcase>
<testcase name="c"><skipped/></testcase><testcase name="d"><error message="x"/></testcase>
</testsuite></testsuites>"""


def evidence(tmp_path: Path, name: str, xml: str | bytes) -> dict[str, object]:
    path = tmp_path / name
    path.write_bytes(xml.encode() if isinstance(xml, str) else xml)
    return read_evidence(str(path))


def test_counts_from_a_junit_file(tmp_path: Path) -> None:
    item = evidence(tmp_path, "regression.xml", PYTEST_STYLE)
    assert (item["kind"], item["tests"], item["passed"], item["failed"], item["errors"], item["skipped"]) == ("regression", 4, 1, 1, 1, 1)
    assert evidence_problem(item) == "evidence regression (regression.xml) has 1 failed and 1 errored tests"


def test_a_passing_report_passes(tmp_path: Path) -> None:
    item = evidence(tmp_path, "unit.xml", '<testsuite name="u"><testcase name="a"/><testcase name="b"><skipped/></testcase></testsuite>')
    assert (item["tests"], item["passed"], item["skipped"]) == (2, 1, 1)
    assert evidence_problem(item) is None


def test_errors_without_failures_do_not_pass(tmp_path: Path) -> None:
    item = evidence(tmp_path, "unit.xml", '<testsuite name="u"><testcase name="a"/><testcase name="b"><error message="setup"/></testcase></testsuite>')
    assert (item["failed"], item["errors"]) == (0, 1)
    assert evidence_problem(item) == "evidence unit (unit.xml) has 0 failed and 1 errored tests"


def test_errors_declared_by_the_suite_outside_any_case_count(tmp_path: Path) -> None:
    # A suite whose set-up failed: the runner counts the error on the suite, not on a test case.
    item = evidence(tmp_path, "system.xml", '<testsuites><testsuite name="s" tests="1" errors="1"><testcase name="a"/></testsuite></testsuites>')
    assert (item["passed"], item["errors"]) == (1, 1)
    assert evidence_problem(item) == "evidence system (system.xml) has 0 failed and 1 errored tests"


def test_nothing_passed_does_not_accept(tmp_path: Path) -> None:
    skipped = evidence(tmp_path, "unit.xml", '<testsuite name="u"><testcase name="a"><skipped/></testcase><testcase name="b"><skipped/></testcase></testsuite>')
    assert evidence_problem(skipped) == "evidence unit (unit.xml): no test passed (2 of 2 skipped); evidence must show tests that ran"
    empty = evidence(tmp_path, "regression.xml", '<testsuites><testsuite name="r" tests="0"/></testsuites>')
    assert evidence_problem(empty) == "evidence regression (regression.xml) holds no test cases; evidence must show tests that ran"


def test_nested_suites_are_counted(tmp_path: Path) -> None:
    inner = '<testsuite name="inner"><testcase name="a"/><testcase name="b"><failure/></testcase></testsuite>'
    xml = f'<testsuites><testsuite name="outer">{inner}</testsuite></testsuites>'
    item = evidence(tmp_path, "unit.xml", xml)
    assert (item["tests"], item["passed"], item["failed"]) == (2, 1, 1)


def test_explicit_kind() -> None:
    assert split_evidence_argument("functional=reports/out.xml") == ("functional", Path("reports/out.xml"))
    with pytest.raises(BadInput, match="no file after '='"):
        split_evidence_argument("unit=")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("not xml", "not JUnit XML"),
        ("<html><body/></html>", "<html> is not a JUnit report"),
        ('<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaa">]><testsuite><testcase name="&a;"/></testsuite>', "refused: "),
        ('<?xml version="1.0"?><!DOCTYPE t SYSTEM "http://example.org/t.dtd"><testsuite/>', "refused: "),
    ],
)
def test_not_junit(tmp_path: Path, content: str, reason: str) -> None:
    with pytest.raises(BadInput, match=reason) as caught:
        evidence(tmp_path, "unit.xml", content)
    assert "\n" not in caught.value.message


def test_billion_laughs_is_refused_before_expansion(tmp_path: Path) -> None:
    entities = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    with pytest.raises(BadInput, match="refused: "):
        evidence(tmp_path, "unit.xml", f'<?xml version="1.0"?><!DOCTYPE t [{entities}]><testsuite><testcase name="&a9;"/></testsuite>')


def test_missing_or_unreadable_evidence(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"cannot read the evidence \(No such file or directory\)"):
        read_evidence(str(tmp_path / "unit.xml"))
    with pytest.raises(BadInput, match=r"cannot read the evidence \(Is a directory\)"):
        read_evidence(f"unit={tmp_path}")


def test_generated_report_round_trips(tmp_path: Path) -> None:
    item = evidence(tmp_path, "smoke.xml", junit_report("smoke", [("ok", None), ("bad", "wrong <version>")]))
    assert (item["tests"], item["passed"], item["failed"]) == (2, 1, 1)
