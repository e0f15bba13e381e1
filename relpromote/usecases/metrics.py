"""`metrics [--env ENV] [--since WHEN]`: the delivery figures of each environment from the trusted ledger."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from relpromote.ledger import parse_moment, utc_now
from relpromote.metrics import Period, delivery_metrics
from relpromote.notes import counted
from relpromote.project import Project

DEFAULT_PERIOD = timedelta(days=30)


@cache
def commit_time(source: str, commit: str) -> datetime | None:
    """When a commit of the application's source was authored, or None (no such repository or commit)."""
    if not source or not Path(source).is_dir():
        return None
    result = subprocess.run(["git", "-C", source, "show", "-s", "--format=%aI", f"{commit}^{{commit}}"], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    return datetime.fromisoformat(result.stdout.strip())


def project_metrics(project: Project, environment: str | None, since: str | None) -> dict[str, Any]:
    names = [environment] if environment else list(project.config.promotion_path)
    if environment:
        project.config.environment(environment)  # an unknown name is bad input
    now = utc_now()
    period = Period(parse_moment(since, "--since", now=now) if since else now - DEFAULT_PERIOD, now)
    entries = counted(project.state(), project.ledger.entries())
    return {"since": period.since.isoformat(), "until": period.until.isoformat(),
            "environments": [delivery_metrics(entries, name, period, commit_time) for name in names]}
