"""The hosts as witnesses of the ledger: what each promotion or rollback leaves on the hosts it
touched, and how `audit verify --hosts ENV` compares it with the ledger.

A host keeps the head (sequence number and hash) of the ledger as the run that last touched it
started. That entry must still be in the ledger with that hash, and a promotion or rollback entry
recorded after it must name the host; otherwise entries were removed (truncated) or rewritten.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from relpromote import events
from relpromote.adapters.runner import run_playbook
from relpromote.adapters.vault import vault_access
from relpromote.errors import RunFailed
from relpromote.ledger import Entry, Problem
from relpromote.project import Project
from relpromote.usecases.audit import AuditReport, head_problem
from relpromote.usecases.runs import environment_run

WITNESS_PLAYBOOK = "playbooks/witness.yml"
RUN_KINDS = (events.PROMOTION_FINISHED, events.ROLLBACK_FINISHED)


def witness_problem(entries: list[Entry], environment: str, host: str, witness: dict[str, Any]) -> Problem | None:
    """Why the ledger does not agree with what `host` witnessed, or None when it does."""
    try:
        seq, digest = int(witness["seq"]), str(witness["hash"])
    except (KeyError, TypeError, ValueError):
        return Problem(0, f"host {host} holds a witness file that is not relpromote's")
    problem = head_problem(entries, seq, digest, f"host {host}")
    if problem is not None:
        return problem
    recorded = any(
        e.seq > seq and e.kind in RUN_KINDS and e.payload.get("environment") == environment
        and any(isinstance(h, dict) and h.get("host") == host for h in e.payload.get("hosts") or [])
        for e in entries
    )
    if not recorded:
        last = entries[-1].seq if entries else 0
        return Problem(seq + 1, f"host {host} was changed by a run that started after entry #{seq}, "
                                f"but no promotion or rollback of it is recorded after #{seq} (the ledger ends at #{last}): "
                                "entries were removed, or that run never recorded its end")
    return None


def audit_witnesses(project: Project, environment: str, report: AuditReport, should_cancel: Callable[[], bool] | None = None) -> None:
    """Read every host's witness and add what disagrees with the ledger to `report`."""
    env = project.config.environment(environment)
    extravars = {"relpromote_environment": environment, "relpromote_hosts": env.hosts}
    with vault_access(env.vault) as access:
        run = run_playbook(environment_run(project, environment, WITNESS_PLAYBOOK, f"witness-{environment}", extravars, access),
                           should_cancel=should_cancel)
    if run.canceled:  # the witnesses were not all read: no verdict, neither ok nor truncated
        raise RunFailed(f"audit verify --hosts {environment} stopped on request before every host's witness was read")
    entries = project.ledger.entries()
    published: dict[str, Any] = run.custom_stats.get("relpromote_witness") or {}
    unread = [host for host in sorted(run.hosts) if not run.hosts[host].succeeded]
    if unread and len(unread) == len(run.hosts):
        # Not one witness read: nothing anchored the ledger's end, so no verdict on its completeness (an attacker who cut
        # the ledger short would only have to keep the hosts from answering).
        first = run.hosts[unread[0]]
        raise RunFailed(f"audit verify --hosts {environment}: no host's witness could be read ({unread[0]}: "
                        f"{' '.join(first.message.split())[:160]}); the ledger's completeness was not checked: reach the hosts "
                        "and run it again")
    for host in sorted(run.hosts):
        result = run.hosts[host]
        if not result.succeeded:
            report.notes.append(f"{host}: unreachable, its witness was not read ({result.message[:120]})")
            continue
        encoded = published.get(host) or ""
        if not encoded:
            report.notes.append(f"{host}: witnessed nothing yet (no promotion or rollback reached it since witnesses were kept)")
            continue
        try:
            witness = json.loads(base64.b64decode(encoded))
        except (ValueError, binascii.Error):
            witness = {}
        if not isinstance(witness, dict) or witness.get("project") not in (None, project.config.project):
            owner = witness.get("project") if isinstance(witness, dict) else "?"
            report.problems.append(Problem(0, f"host {host} holds a witness of another project ({owner})"))
            continue
        problem = witness_problem(entries, environment, host, witness)
        if problem is not None:
            report.problems.append(problem)
        else:
            report.witnesses.append({"host": host, "seq": witness["seq"], "what": "in the ledger, and the run is recorded"})
