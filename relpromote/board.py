"""The status board as data: each environment's column, the timeline of promotions and rollbacks, and the releases
whose notes the page shows.

Pure: a function of the folded state, the trusted entries, the status rows (`relpromote status` computes what needs
attention: locks, runs in doubt, drift), the locks and freezes in force, and the time. The page itself is a Jinja2
template (relpromote/templates/status/board.html.j2, overridable in PROJECT/templates/status/).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from relpromote import events
from relpromote.ledger import Entry, format_time, parse_time
from relpromote.state import ProjectState

TIMELINE_LENGTH = 100


def previous_release(live_history: Sequence[str], current: str | None) -> str | None:
    """The release that was live before the current one (a re-promotion of the same release is not a change)."""
    for version in reversed(live_history[:-1] if live_history and live_history[-1] == current else live_history):
        if version != current:
            return version
    return None


def pending_approvals(state: ProjectState, environment: str, now: datetime) -> list[dict[str, Any]]:
    """Approvals for this environment that have not expired and whose release has not gone live there yet."""
    pending = []
    for approval in state.approvals:
        if approval.environment != environment or (approval.version, environment) in state.promoted:
            continue
        if parse_time(approval.expires_at) <= now:
            continue
        pending.append({"version": approval.version, "ticket": approval.ticket, "by": approval.approver, "at": approval.at,
                        "expires_at": approval.expires_at})
    return pending


def timeline(entries: Sequence[Entry], environments: Sequence[str], length: int = TIMELINE_LENGTH) -> list[dict[str, Any]]:
    """Promotions and rollbacks, newest first, with their results (checks left out)."""
    rows = []
    for entry in entries:
        p = entry.payload
        if entry.kind not in (events.PROMOTION_FINISHED, events.ROLLBACK_FINISHED) or p.get("check") or p.get("environment") not in environments:
            continue
        what = "rollback" if entry.kind == events.ROLLBACK_FINISHED else "promotion"
        rows.append({"seq": entry.seq, "at": entry.recorded_at, "what": what, "environment": p.get("environment"), "version": p.get("version"),
                     "from_version": p.get("from_version"), "by": entry.actor, "result": p.get("result"), "reason": p.get("reason"),
                     "automatic": bool(p.get("automatic"))})
    return list(reversed(rows))[:length]


def board(
    project: str, state: ProjectState, entries: Sequence[Entry], rows: Sequence[Mapping[str, Any]], locks: Mapping[str, Mapping[str, Any] | None],
    freezes: Mapping[str, str | None], protected: Mapping[str, bool], now: datetime,
) -> dict[str, Any]:
    """Everything the page shows; `rows` are `relpromote status`'s rows, one per environment, in promotion order."""
    columns = []
    for row in rows:
        name = str(row["environment"])
        env = state.environments[name]
        columns.append({
            "environment": name, "protected": protected.get(name, False), "release": env.current, "digest": env.current_digest,
            "since": env.since, "by": env.by, "previous": previous_release(env.live_history, env.current),
            "pending_approvals": pending_approvals(state, name, now), "lock": locks.get(name), "freeze": freezes.get(name),
            "in_doubt": list(row.get("in_doubt") or []), "drifted": list(row.get("drifted") or []),
            "last_verify": row.get("last_verify"), "attention": list(row.get("attention") or []),
            "blocked": row.get("current_blocked"),
        })
    live = list(dict.fromkeys(str(c["release"]) for c in columns if c["release"]))
    return {"project": project, "generated_at": format_time(now), "columns": columns,
            "timeline": timeline(entries, [str(c["environment"]) for c in columns]), "live_releases": live,
            "head": f"{state.head[0]}:{state.head[1]}"}
