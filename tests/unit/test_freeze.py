from __future__ import annotations

from datetime import UTC, datetime

import pytest

from relpromote.freeze import cron_matches, parse_cron


def test_cron_fields() -> None:
    friday_1730 = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)
    assert cron_matches("* 16-23 * * 5", friday_1730)
    assert not cron_matches("* 16-23 * * 1-4", friday_1730)
    assert not cron_matches("*/20 * * * *", friday_1730)
    assert cron_matches("0,30 17 27 11 *", friday_1730)
    assert cron_matches("* * * * 7", datetime(2026, 11, 29, 1, 0, tzinfo=UTC))  # 7 is Sunday too


@pytest.mark.parametrize("bad", ["* * *", "61 * * * *", "* * * 13 *", "a * * * *", "* * * * */x"])
def test_bad_cron(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_cron(bad)
