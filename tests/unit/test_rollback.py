"""relpromote/rollback.py: which release an environment goes back to (from real ledger entries), and
which hosts an automatic rollback moves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relpromote.adapters.runner import HostResult
from relpromote.errors import BadInput, Refused
from relpromote.promotion import HostOutcome
from relpromote.rollback import (
    SWITCH_TASK,
    VERIFICATION_TASKS,
    RollbackGroup,
    RollbackReport,
    automatic_rollback_groups,
    may_have_switched,
    rollback_target,
    verification_failed,
)
from tests.unit.real_ledger import Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    built = Ledger(tmp_path / "ledger.db")
    for version in ("1.0.0", "2.0.0", "3.0.0"):
        built.build(version)
    return built


def target(ledger: Ledger, requested: str | None = None, environment: str = "qa") -> str:
    return rollback_target(ledger.state(), environment, requested).version


def test_an_environment_running_nothing_has_nothing_to_roll_back(ledger: Ledger) -> None:
    with pytest.raises(BadInput, match="qa runs no recorded release; nothing to roll back"):
        target(ledger)


def test_the_default_target_is_the_last_release_live_before_the_current_one(ledger: Ledger) -> None:
    for version in ("1.0.0", "2.0.0", "3.0.0"):
        ledger.promote(version, "qa")
    assert target(ledger) == "2.0.0"


def test_the_default_skips_withdrawn_rejected_and_failed_releases(ledger: Ledger) -> None:
    ledger.build("4.0.0")
    for version in ("1.0.0", "2.0.0", "3.0.0"):
        ledger.promote(version, "qa")
    ledger.rollback("qa", to="2.0.0", from_version="3.0.0")  # 3.0.0 withdrawn
    ledger.promote("4.0.0", "qa")
    assert target(ledger) == "2.0.0", "3.0.0 was withdrawn: never a default target"
    ledger.reject("2.0.0", "qa")
    assert target(ledger) == "1.0.0", "a rejected release is skipped"
    ledger.promote("1.0.0", "qa", result="rolled_back", verification_failed=True)
    with pytest.raises(BadInput, match="qa has no earlier accepted release to go back to; name one with --version"):
        target(ledger)


def test_the_default_never_picks_a_release_whose_promotion_failed(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa")
    ledger.promote("2.0.0", "qa", result="failed")
    ledger.promote("3.0.0", "qa", result="interrupted")
    ledger.promote("2.0.0", "qa", limit="qa-app-1")
    with pytest.raises(BadInput, match="no earlier accepted release"):
        target(ledger)  # only 1.0.0 ever ran here, and it is current


def test_a_named_release_must_have_been_live_in_that_environment(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "deployment")  # live elsewhere
    ledger.promote("2.0.0", "qa", result="failed")  # tried here, never live
    ledger.promote("3.0.0", "qa", check=True)
    ledger.promote("1.0.0", "qa", limit="qa-app-1")
    ledger.build("4.0.0")
    ledger.promote("4.0.0", "qa")
    for never in ("1.0.0", "2.0.0", "3.0.0"):
        with pytest.raises(Refused, match=re.escape(f"{never} was never live in qa; roll back only to a release that ran there")):
            target(ledger, never)


def test_a_named_release_that_is_current_or_unknown_is_bad_input(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa")
    with pytest.raises(BadInput, match=re.escape("qa already runs 1.0.0; name an earlier release with --version")):
        target(ledger, "1.0.0")
    with pytest.raises(BadInput, match=re.escape("unknown version 9.9.9")):
        target(ledger, "9.9.9")


def test_a_named_release_that_was_rejected_or_failed_verification_is_refused(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa")
    ledger.promote("2.0.0", "qa")
    ledger.promote("3.0.0", "qa")
    ledger.reject("1.0.0", "qa", "totals wrong")
    with pytest.raises(Refused, match=r"1\.0\.0 was rejected in qa \(totals wrong\); roll back to another release"):
        target(ledger, "1.0.0")
    ledger.promote("2.0.0", "deployment", result="rolled_back", verification_failed=True)
    with pytest.raises(Refused, match=r"2\.0\.0 failed verification \(in deployment, rolled back\)"):
        target(ledger, "2.0.0")


def test_a_named_withdrawn_release_may_be_chosen_on_purpose(ledger: Ledger) -> None:
    ledger.promote("1.0.0", "qa")
    ledger.promote("2.0.0", "qa")
    ledger.rollback("qa", to="1.0.0", from_version="2.0.0")
    assert target(ledger, "2.0.0") == "2.0.0"


def host(name: str, previous: str | None = None, switched: bool = False, published: bool = True, tasks: tuple[str, ...] = (),
         failed: int = 0, unreachable: int = 0, failed_task: str = "", current: str | None = None) -> HostOutcome:
    result = HostResult(name, failed=failed, unreachable=unreachable, tasks=tasks, failed_task=failed_task)
    now = current if current is not None else ("2.0.0" if switched else previous) if published else None
    return HostOutcome(name, previous, now, switched, result, published)


def test_switched_hosts_go_back_to_the_recorded_release_whatever_they_ran_before() -> None:
    groups = automatic_rollback_groups([host("b", "1.0.0", True), host("a", "1.0.0", True), host("c", "0.9.0", True), host("d", None, True)], "1.0.0")
    assert groups == [RollbackGroup("1.0.0", ("a", "b", "c", "d"))]
    assert automatic_rollback_groups([host("a", "1.0.0", True)], None) == [RollbackGroup("", ("a",))], "nothing recorded: out of service"


def test_a_host_a_killed_run_left_on_the_target_goes_back_though_it_did_not_switch() -> None:
    # The link already pointed at 2.0.0 (a killed run), so this run did not switch it, but it restarted the app there.
    left = host("left", "2.0.0", switched=False, current="2.0.0")
    on_record = host("fine", "1.0.0", switched=False)
    assert automatic_rollback_groups([left, on_record], "1.0.0") == [RollbackGroup("1.0.0", ("left",))]


def test_a_host_that_started_the_switch_and_never_reported_is_rolled_back_too() -> None:
    vanished = host("gone", published=False, unreachable=1, tasks=("Unpack the release", SWITCH_TASK))
    assert may_have_switched(vanished)
    groups = automatic_rollback_groups([vanished, host("ok", "0.9.0", True)], "0.9.0")
    assert groups == [RollbackGroup("0.9.0", ("gone", "ok"))]
    assert automatic_rollback_groups([vanished], None) == [RollbackGroup("", ("gone",))]


def test_hosts_that_cannot_have_switched_are_left_alone() -> None:
    before_switch = host("early", published=False, failed=1, tasks=("Unpack the release",))
    reported = host("said-so", "1.0.0", switched=False, published=True, tasks=(SWITCH_TASK,))
    assert not may_have_switched(before_switch) and not may_have_switched(reported)
    assert automatic_rollback_groups([before_switch, reported], "1.0.0") == []


def test_verification_failed_means_the_release_not_the_infrastructure() -> None:
    assert verification_failed([host("a", failed=1, failed_task=VERIFICATION_TASKS[0])], tests_failed=False)
    assert verification_failed([host("a")], tests_failed=True)
    assert not verification_failed([host("a", unreachable=1, failed_task=SWITCH_TASK)], tests_failed=False)


def test_a_rollback_report_names_who_needs_a_person() -> None:
    report = RollbackReport(False, ({"host": "a", "ok": True}, {"host": "b", "ok": False}))
    assert report.need_a_person == ["b"]
    assert report.as_data() == {"succeeded": False, "hosts": [{"host": "a", "ok": True}, {"host": "b", "ok": False}], "need_a_person": ["b"]}
