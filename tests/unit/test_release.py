from __future__ import annotations

import pytest

from relpromote.errors import Refused
from relpromote.release import BuildOutcome, Release, decide_build

EXISTING = Release("1.0.0", "a" * 64, 10, "alice", "t", {"changes": []}, {})


def test_first_build_is_new() -> None:
    assert decide_build(None, "1.0.0", "a" * 64) is BuildOutcome.NEW


def test_same_bytes_is_a_no_op() -> None:
    assert decide_build(EXISTING, "1.0.0", "a" * 64) is BuildOutcome.SAME


def test_other_bytes_for_a_built_version_are_refused() -> None:
    with pytest.raises(Refused, match="a version is immutable"):
        decide_build(EXISTING, "1.0.0", "b" * 64)
