"""Freeze windows: when an environment takes no promotions. Pure: a function of the windows and a time.

A window is a date range (`start`..`end`, the end day included) or a cron expression whose matching
minutes are frozen (`* 16-23 * * FRI`: Friday evenings). Cron is read by cronsim (names such as
MON-FRI and JAN, `L`, `#`, ranges and steps, as Debian's cron reads them); the `@daily`-style
shorthands are expanded here. Each window is read in its own `timezone` (an IANA name, UTC unless
given), so a freeze at 16:00 in Europe/Berlin follows Berlin's daylight saving time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from relpromote.config import FreezeWindow

SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
EXAMPLE = "'* 16-23 * * FRI' (minute hour day-of-month month day-of-week)"


def parse_cron(expression: str) -> str:
    """The five-field expression `expression` stands for; ValueError, saying why, if cron cannot read it."""
    from cronsim import CronSim, CronSimError

    text = expression.strip()
    expanded = SHORTHANDS.get(text.lower(), text)
    if expanded.startswith("@"):
        raise ValueError(f"cron {expression!r}: unknown shorthand; use one of {', '.join(SHORTHANDS)} or five fields like {EXAMPLE}")
    if len(expanded.split()) != 5:
        raise ValueError(f"cron {expression!r} needs 5 fields, e.g. {EXAMPLE}")
    try:
        CronSim(expanded, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValueError(f"cron {expression!r}: {str(exc).rstrip('.').lower()}; e.g. {EXAMPLE}") from None
    return expanded


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    """The time zone of an IANA name; ValueError for a name the system's zone database lacks."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC") from None


def cron_matches(expression: str, moment: datetime, timezone: str = "UTC") -> bool:
    """Whether the minute of `moment` (read in `timezone`) is one the expression names."""
    from cronsim import CronSim

    minute = moment.astimezone(zone(timezone)).replace(second=0, microsecond=0)
    following = next(CronSim(parse_cron(expression), minute - timedelta(seconds=1)))
    return following == minute


def _as_datetime(value: datetime | date, end: bool, where: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=where)
    moment = datetime.combine(value, time.min, tzinfo=where)
    return moment + timedelta(days=1) if end else moment  # a date range includes its last day


def active_freeze(windows: Sequence[FreezeWindow], now: datetime) -> FreezeWindow | None:
    """The first window `now` falls in, or None."""
    for window in windows:
        if window.cron is not None:
            if cron_matches(window.cron, now, window.timezone):
                return window
        elif window.start is not None and window.end is not None:
            where = zone(window.timezone)
            if _as_datetime(window.start, False, where) <= now < _as_datetime(window.end, True, where):
                return window
    return None
