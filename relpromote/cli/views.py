"""Read views: what became of each release and each run, as `releases`, `show`, `status` and `history` show it.

Pure functions of the ledger's entries and the folded state; the verbs only render them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from relpromote import events
from relpromote.ledger import Entry

if TYPE_CHECKING:  # `status` from its memo never loads the state's classes
    from relpromote.state import ProjectState

# Entries that record the outcome of a run, and how history names them in a narrow table.
VERB_OF_KIND = {
    events.RELEASE_BUILT: "build",
    events.RELEASE_REVISED: "revise",
    events.PROMOTION_FINISHED: "promote",
    events.VERDICT_ACCEPTED: "accept",
    events.VERDICT_REJECTED: "reject",
    events.APPROVAL_GRANTED: "approve",
    events.ROLLBACK_FINISHED: "rollback",
    events.LOCK_RELEASED: "lock release",
    events.REFRESH_FINISHED: "refresh",
    events.VERIFY_FINISHED: "verify",
    events.PROMOTION_STARTED: "promote (start)",
    events.ROLLBACK_STARTED: "rollback (start)",
    events.REFRESH_STARTED: "refresh (start)",
    events.PERSON_RENAMED: "rename",
    events.PARITY_CHECKED: "parity",
    events.ANNOUNCEMENT_FINISHED: "announce",
    events.HOSTS_TRUSTED: "trust hosts",
    events.AUTHORITY_RECORDED: "authority",
    events.AUTHORITY_APPROVED: "approve authority",
}


def _failure_reason(payload: dict[str, Any]) -> str | None:
    """Why a promotion did not succeed: the recorded one-line reason, else the first failed host's message."""
    if payload.get("reason"):
        return str(payload["reason"])
    if payload.get("result") in (None, "succeeded"):
        return None
    for host in payload.get("hosts") or []:
        if host.get("message"):
            return f"{host.get('host')}: {host['message']}"
    failed_tests = [e for e in payload.get("evidence") or [] if e.get("failed") or e.get("errors")]
    if failed_tests:
        return f"{failed_tests[0].get('kind')} tests failed"
    return None


def _rollback_reason(payload: dict[str, Any]) -> str | None:
    """Why the rollback was asked for, and for one that did not succeed, where and why it failed."""
    asked = payload.get("reason")
    if payload.get("result") in (None, "succeeded"):
        return asked
    failed = [h for h in payload.get("hosts") or [] if isinstance(h, dict) and not h.get("ok")]
    where = "; ".join(f"{h.get('host')}: {' '.join(str(h.get('message') or 'failed').split())}" for h in failed[:2])
    if len(failed) > 2:
        where += f"; and {len(failed) - 2} more"
    if not where:
        return asked
    return f"{where} (asked: {asked})" if asked else where


def outcome(entry: Entry) -> tuple[str | None, str | None]:
    """(result, reason) of one ledger entry; None where the entry has no such thing."""
    p = entry.payload
    if entry.kind == events.PROMOTION_FINISHED:
        return p.get("result"), _failure_reason(p)
    if entry.kind == events.ROLLBACK_FINISHED:
        return p.get("result"), _rollback_reason(p)
    if entry.kind == events.VERDICT_REJECTED:
        changes = p.get("changes") or []
        return "rejected", (f"{', '.join(changes)}: " if changes else "") + str(p.get("reason", ""))
    if entry.kind == events.VERDICT_ACCEPTED:
        return "accepted", p.get("note") or None
    if entry.kind == events.APPROVAL_GRANTED:
        return "approved", f"ticket {p.get('ticket')} until {str(p.get('expires_at', ''))[:16]}Z"
    if entry.kind == events.REFRESH_FINISHED:
        return p.get("result"), p.get("reason") or p.get("error")
    if entry.kind == events.VERIFY_FINISHED:
        return p.get("result"), p.get("reason")
    if entry.kind == events.LOCK_RELEASED:
        return "released", p.get("reason")
    if entry.kind in (events.AUTHORITY_RECORDED, events.AUTHORITY_APPROVED):
        said = "; ".join(str(c) for c in p.get("changes") or [])
        return ("approved" if entry.kind == events.AUTHORITY_APPROVED else "recorded"), f"authority {str(p.get('digest'))[:12]}" + (
            f": {said}" if said else "")
    return None, p.get("reason")


def history_row(entry: Entry) -> dict[str, Any]:
    result, reason = outcome(entry)
    version = entry.payload.get("version")
    return {
        "seq": entry.seq, "at": entry.recorded_at, "kind": entry.kind, "actor": entry.actor,
        "version": None if version is None else str(version), "environment": entry.payload.get("environment"),
        "result": result, "reason": reason, "payload": entry.payload,
    }


def release_standing(state: ProjectState, entries: Iterable[Entry], version: str) -> dict[str, Any]:
    """Where the release went and what became of it: promotions, rejections, failed verification, withdrawals."""
    promotions: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    failed_verification: list[dict[str, Any]] = []
    withdrawn: list[dict[str, Any]] = []
    for entry in entries:
        p = entry.payload
        if entry.kind == events.PROMOTION_FINISHED and p.get("version") == version and not p.get("check"):
            result, reason = outcome(entry)
            record = {"environment": p.get("environment"), "at": entry.recorded_at, "by": entry.actor, "result": result, "reason": reason}
            promotions.append(record)
            if p.get("verification_failed"):
                failed_verification.append(record)
        elif entry.kind == events.VERDICT_REJECTED and p.get("version") == version:
            rejected.append({"environment": p.get("environment"), "at": entry.recorded_at, "by": entry.actor,
                             "change_ids": list(p.get("changes") or []), "reason": p.get("reason")})
        elif (entry.kind == events.ROLLBACK_FINISHED and p.get("from_version") == version
              and p.get("result") == "succeeded" and p.get("version") != version):
            withdrawn.append({"environment": p.get("environment"), "at": entry.recorded_at, "by": entry.actor,
                              "reason": p.get("reason"), "back_to": p.get("version")})
    blocked = state.unusable(version)
    return {
        "promotions": promotions, "rejected": rejected, "failed_verification": failed_verification, "withdrawn": withdrawn,
        "promotable": blocked is None, "refused_because": None if blocked is None else f"{version} {blocked}",
    }


def standing_summary(standing: dict[str, Any]) -> str:
    """One short phrase per fact, for a table cell: "rejected in qa; withdrawn from production"."""
    parts = [f"rejected in {r['environment']}" + (f" ({', '.join(r['change_ids'])})" if r["change_ids"] else "") for r in standing["rejected"]]
    parts += [f"failed verification in {f['environment']}" for f in standing["failed_verification"]]
    verified = {(f["environment"], f["at"]) for f in standing["failed_verification"]}
    parts += [f"{p['result'].replace('_', ' ')} in {p['environment']}" for p in standing["promotions"]
              if p["result"] != "succeeded" and (p["environment"], p["at"]) not in verified]
    parts += [f"withdrawn from {w['environment']}" for w in standing["withdrawn"]]
    return "; ".join(dict.fromkeys(parts))


def current_blocked(state: ProjectState, environment: str) -> str | None:
    """Why the release an environment runs may not be promoted any more (rejected, failed verification), or None."""
    current = state.environments[environment].current
    if current is None:
        return None
    why = state.unusable(current)
    return None if why is None else f"{current} {why}"
