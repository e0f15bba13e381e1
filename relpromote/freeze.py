"""Freeze windows: when an environment takes no promotions. Pure: a function of the windows and a time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relpromote.config import FreezeWindow

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


def parse_cron(expression: str) -> tuple[frozenset[int], ...]:
    """Parse `minute hour dom month dow` (numbers, `*`, ranges, lists, `/step`); 7 and 0 are Sunday."""
    parts = expression.split()
    if len(parts) != 5:
        raise ValueError(f"cron {expression!r} needs 5 fields: minute hour day-of-month month day-of-week")
    parsed = []
    for text, (name, low, high) in zip(parts, FIELDS, strict=True):
        values: set[int] = set()
        for item in text.split(","):
            body, _, step_text = item.partition("/")
            step = int(step_text) if step_text.isdigit() else 1
            if step_text and not step_text.isdigit():
                raise ValueError(f"cron {expression!r}: bad step in {name} field {item!r}")
            if body == "*":
                first, last = low, high
            elif "-" in body:
                a, _, b = body.partition("-")
                if not (a.isdigit() and b.isdigit()):
                    raise ValueError(f"cron {expression!r}: bad range in {name} field {item!r}")
                first, last = int(a), int(b)
            elif body.isdigit():
                first = last = int(body)
            else:
                raise ValueError(f"cron {expression!r}: cannot read {name} field {item!r}")
            if not (low <= first <= last <= high):
                raise ValueError(f"cron {expression!r}: {name} must be within {low}-{high}")
            values.update(range(first, last + 1, step))
        if name == "day of week" and 7 in values:
            values.add(0)
        parsed.append(frozenset(values))
    return tuple(parsed)


def cron_matches(expression: str, moment: datetime) -> bool:
    minute, hour, dom, month, dow = parse_cron(expression)
    moment = moment.astimezone(UTC)
    weekday = (moment.weekday() + 1) % 7  # cron: Sunday is 0
    return moment.minute in minute and moment.hour in hour and moment.day in dom and moment.month in month and weekday in dow


def _as_datetime(value: datetime | date, end: bool) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    moment = datetime.combine(value, time.min, tzinfo=UTC)
    return moment + timedelta(days=1) if end else moment  # a date range includes its last day


def active_freeze(windows: Sequence[FreezeWindow], now: datetime) -> FreezeWindow | None:
    for window in windows:
        if window.cron is not None:
            if cron_matches(window.cron, now):
                return window
        elif window.start is not None and window.end is not None and _as_datetime(window.start, False) <= now < _as_datetime(window.end, True):
            return window
    return None
