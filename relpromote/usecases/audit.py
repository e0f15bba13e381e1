"""`audit verify` and `audit checkpoint`: the whole ledger judged offline, and its head anchored outside it.

Every entry is checked (sequence, link, hash, signature, the signer's key is the key the config gives
that person, the signer's role under the config the entry recorded, that config commit in git). The
ledger's head is anchored outside the ledger file in two ways: a signed checkpoint (`SEQ:HASH`) kept
elsewhere and checked with `--expect-head`, and the witness every promotion and rollback writes onto
the hosts it touched (checked with `--hosts ENV`). Truncating the ledger cannot hide from either.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relpromote.errors import BadInput
from relpromote.identity import Identity, verify_signature
from relpromote.ledger import GENESIS_HASH, Entry, Problem, canonical_json, format_time, utc_now
from relpromote.project import Project

HEAD_PATTERN = re.compile(r"^(\d+):([0-9a-f]{64})$")


@dataclass
class AuditReport:
    entries: int
    head_seq: int
    head_hash: str
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    witnesses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_data(self) -> dict[str, Any]:
        first = self.problems[0] if self.problems else None
        return {
            "ok": self.ok, "entry_count": self.entries, "head": f"{self.head_seq}:{self.head_hash}",
            "first_bad_seq": first.seq if first else None, "reason": first.reason if first else "",
            "problems": [p.as_data() for p in self.problems], "notes": self.notes, "witnesses": self.witnesses,
        }


def parse_head(text: str) -> tuple[int, str]:
    match = HEAD_PATTERN.match(text.strip())
    if match is None:
        raise BadInput(f"--expect-head {text!r}: give SEQ:HASH as `relpromote audit checkpoint` printed it (e.g. 42:3fa9…, 64 hex digits)")
    return int(match.group(1)), match.group(2)


def head_problem(entries: list[Entry], seq: int, digest: str, source: str) -> Problem | None:
    """Why the ledger does not contain the head `source` witnessed, or None when it does."""
    if seq == 0:
        return None if digest == GENESIS_HASH else Problem(0, f"{source} names entry #0 with a hash other than the genesis")
    last = entries[-1].seq if entries else 0
    found = next((e for e in entries if e.seq == seq), None)
    if found is None:
        return Problem(seq, f"{source} witnessed entry #{seq}, but the ledger ends at #{last}: entries were removed (truncated)")
    if found.hash != digest:
        return Problem(seq, f"{source} witnessed entry #{seq} as {digest[:12]}…, the ledger has {found.hash[:12]}…: the ledger was rewritten")
    return None


def audit_ledger(project: Project, expect_head: str | None = None) -> AuditReport:
    entries = project.ledger.entries()
    state = project.state()
    report = AuditReport(len(entries), state.head[0], state.head[1], list(state.ignored))
    if expect_head is not None:
        seq, digest, source = _expected_head(project, expect_head)
        problem = head_problem(entries, seq, digest, source)
        if problem is not None:
            report.problems.append(problem)
    uncommitted = [e.seq for e in entries if isinstance(e.payload.get("config"), dict) and not e.payload["config"].get("committed")]
    if uncommitted:
        report.notes.append(f"{len(uncommitted)} entries were made under an uncommitted config (first #{uncommitted[0]}); "
                            "their roles were judged by the current config")
    authority = state.authority
    if authority is not None:
        if authority.required:
            # Decisions made under an authority no approver approved in time: they count nowhere that requires one.
            report.problems = sorted([*report.problems, *authority.unapproved], key=lambda problem: problem.seq)
        for step in authority.timeline:
            how = f"the root, trusted on first use (recorded by {step.by})" if step.root else f"approved by {step.by}"
            report.notes.append(f"#{step.seq}: authority {step.digest[:12]} came into force, {how}")
    renamed = [e for e in entries if e.kind == "person.renamed" and e.seq not in {p.seq for p in report.problems}]
    for entry in renamed:
        report.notes.append(f"#{entry.seq}: {entry.payload.get('from')} is now {entry.payload.get('to')} (same key)")
    return report


def _expected_head(project: Project, expect: str) -> tuple[int, str, str]:
    """SEQ:HASH, or a checkpoint file whose signature and signer are checked first."""
    path = Path(expect).expanduser()
    if HEAD_PATTERN.match(expect.strip()) or not path.is_file():
        seq, digest = parse_head(expect)
        return seq, digest, "the expected head"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        body = {k: data[k] for k in ("project", "seq", "hash", "taken_at", "signer", "public_key")}
        signature = data["signature"]
    except (OSError, ValueError, KeyError, TypeError):
        raise BadInput(f"{path}: not a checkpoint written by `relpromote audit checkpoint --out`") from None
    signer = project.config.person_by_key(str(body["public_key"]))
    if signer is None or signer.name != body["signer"]:
        raise BadInput(f"{path}: signed with a key the config does not give {body['signer']}; this checkpoint proves nothing")
    if not verify_signature(str(body["public_key"]), canonical_json(body), str(signature)):
        raise BadInput(f"{path}: the checkpoint's signature does not verify; it was edited")
    if body["project"] != project.config.project:
        raise BadInput(f"{path}: a checkpoint of project {body['project']}, not {project.config.project}")
    seq, digest = parse_head(f"{body['seq']}:{body['hash']}")
    return seq, digest, f"checkpoint {path.name} (signed by {body['signer']} at {str(body['taken_at'])[:16]})"


def checkpoint(project: Project, identity: Identity, signer: str) -> dict[str, Any]:
    """The ledger's head now, signed: keep it outside the ledger (a ticket, another machine) and check it later."""
    seq, digest = project.state().head
    body = {"project": project.config.project, "seq": seq, "hash": digest, "taken_at": format_time(utc_now()),
            "signer": signer, "public_key": identity.public_key}
    return {**body, "signature": identity.sign(canonical_json(body)), "head": f"{seq}:{digest}"}
