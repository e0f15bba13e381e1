from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from relpromote.config import FreezeWindow, parse_config
from relpromote.errors import BadInput
from relpromote.freeze import active_freeze, cron_matches, parse_cron

FRIDAY_1730 = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)


def test_cron_fields() -> None:
    assert cron_matches("* 16-23 * * 5", FRIDAY_1730)
    assert not cron_matches("* 16-23 * * 1-4", FRIDAY_1730)
    assert not cron_matches("*/20 * * * *", FRIDAY_1730.replace(minute=31))
    assert cron_matches("*/20 * * * *", FRIDAY_1730.replace(minute=40))
    assert cron_matches("0,30 17 27 11 *", FRIDAY_1730)
    assert cron_matches("* * * * 7", datetime(2026, 11, 29, 1, 0, tzinfo=UTC))  # 7 is Sunday too


def test_names_and_shorthands() -> None:
    assert cron_matches("* 16-23 * * MON-FRI", FRIDAY_1730)
    assert not cron_matches("* * * * SAT,SUN", FRIDAY_1730)
    assert cron_matches("* * * NOV *", FRIDAY_1730)
    assert cron_matches("* * * * FRI#4", FRIDAY_1730)  # the fourth Friday of November 2026
    assert cron_matches("@daily", datetime(2026, 11, 27, 0, 0, 59, tzinfo=UTC))
    assert not cron_matches("@daily", datetime(2026, 11, 27, 0, 1, tzinfo=UTC))
    assert cron_matches("@hourly", FRIDAY_1730.replace(minute=0))
    assert parse_cron("@weekly") == "0 0 * * 0"


def test_time_zone_of_a_window_follows_daylight_saving() -> None:
    # 16:00-23:59 in Berlin is 15:00 UTC in winter (CET) and 14:00 UTC in summer (CEST).
    assert cron_matches("* 16-23 * * FRI", datetime(2026, 11, 27, 15, 0, tzinfo=UTC), "Europe/Berlin")
    assert not cron_matches("* 16-23 * * FRI", datetime(2026, 11, 27, 14, 59, tzinfo=UTC), "Europe/Berlin")
    assert cron_matches("* 16-23 * * FRI", datetime(2026, 7, 3, 14, 0, tzinfo=UTC), "Europe/Berlin")
    assert not cron_matches("* 16-23 * * FRI", datetime(2026, 7, 3, 13, 59, tzinfo=UTC), "Europe/Berlin")
    # Friday 23:30 in New York is already Saturday in UTC.
    assert cron_matches("* 16-23 * * FRI", datetime(2026, 11, 28, 4, 30, tzinfo=UTC), "America/New_York")


def test_active_freeze_names_the_window() -> None:
    evening = FreezeWindow(reason="no Friday evening changes", cron="* 16-23 * * FRI", timezone="Europe/Berlin")
    year_end = FreezeWindow(reason="year-end", start=date(2026, 12, 20), end=date(2027, 1, 2), timezone="Pacific/Auckland")
    windows = [evening, year_end]
    assert active_freeze(windows, datetime(2026, 11, 27, 15, 0, tzinfo=UTC)) is evening
    assert active_freeze(windows, datetime(2026, 11, 27, 14, 0, tzinfo=UTC)) is None
    # Dates are read in the window's zone: 2026-12-20 00:00 in Auckland (UTC+13) is 12-19 11:00 UTC.
    assert active_freeze(windows, datetime(2026, 12, 19, 11, 0, tzinfo=UTC)) is year_end
    assert active_freeze(windows, datetime(2026, 12, 19, 10, 59, tzinfo=UTC)) is None
    # ... and the end day is included: 2027-01-02 ends at 01-03 00:00 Auckland time = 01-02 11:00 UTC.
    assert active_freeze(windows, datetime(2027, 1, 2, 10, 59, tzinfo=UTC)) is year_end
    assert active_freeze(windows, datetime(2027, 1, 2, 11, 0, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("* * *", "needs 5 fields"),
        ("0 * * * * *", "needs 5 fields"),
        ("61 * * * *", "bad minute"),
        ("* * * 13 *", "bad month"),
        ("a * * * *", "bad minute"),
        ("* * * * */x", "bad day-of-week"),
        ("* * * * FUNDAY", "bad day-of-week"),
        ("@reboot", "unknown shorthand"),
        ("0 0 31 2 *", "bad day-of-month"),
    ],
)
def test_bad_cron(bad: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_cron(bad)


CONFIG = """\
project: shop
promotion_path: [qa]
environments:
  qa:
    inventory: inventories/qa
    freeze:
      - {WINDOW}
"""


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        ('{reason: x, cron: "* * * * FUNDAY"}', "environments.qa.freeze.0: cron '* * * * FUNDAY': bad day-of-week"),
        ('{reason: x, cron: "* 16-23 * * FRI", timezone: Mars/Olympus}', "unknown time zone 'Mars/Olympus'"),
        ("{reason: x, start: 2026-12-20}", "give either start and end, or cron"),
        ('{reason: x, start: 2026-12-20, end: 2027-01-02, cron: "@daily"}', "give either start and end, or cron"),
    ],
)
def test_config_refuses_a_bad_window(window: str, reason: str) -> None:
    with pytest.raises(BadInput, match=None) as caught:
        parse_config(CONFIG.replace("{WINDOW}", window), "relpromote.yml")
    assert reason in caught.value.message
    assert "\n" not in caught.value.message
