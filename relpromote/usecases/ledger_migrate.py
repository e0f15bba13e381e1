"""`relpromote ledger migrate --url postgresql://…` and `relpromote ledger init-db`: move a SQLite ledger into
PostgreSQL as it is, and prepare the database that will hold it.

The entries are copied unchanged (same sequence numbers, times, payloads, hashes and signatures: nothing is
re-signed, so the chain is the one the people signed), into an empty ledger only, in one transaction. Before,
the SQLite ledger must verify as `audit verify` checks it; after, the PostgreSQL ledger is read back and
verified the same way, and must hold exactly what was copied, up to the same head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from relpromote.adapters.config_history import committed_config
from relpromote.errors import BadInput, RunFailed
from relpromote.ledger import GENESIS_HASH, Entry, Problem
from relpromote.policy import trusted_state
from relpromote.project import Project, sqlite_path

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass
class Migration:
    entries: int
    head: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_data(self) -> dict[str, Any]:
        return {"entry_count": self.entries, "head": self.head, "verified": self.ok,
                "problems": [p.as_data() for p in self.problems]}


def migrate_ledger(project: Project, to_url: str) -> Migration:
    """Copy the project's SQLite ledger into the empty PostgreSQL ledger at `to_url` and verify it there."""
    if not to_url.startswith(POSTGRES_SCHEMES):
        raise BadInput(f"--url {to_url.split(':')[0]}:…: migrate moves the ledger into PostgreSQL; give --url postgresql://…")
    if sqlite_path(project.config.ledger.url, project.root) is None:
        raise BadInput(f"this project's ledger is not in SQLite ({project.config.ledger.url.split('?')[0]}); migrate moves a SQLite ledger")
    from relpromote.adapters.pg_ledger import PgLedger, connection_settings

    connection_settings(to_url)  # a password in clear is refused before anything is read
    for environment in project.config.environments:
        held = project.ledger.current(environment)
        if held is not None:
            raise held.busy()  # a run is under way: its end would be recorded in the old ledger
    source = project.ledger.entries()
    before = trusted_state(source, project.config, committed_config(project.config_path)).ignored
    if before:
        raise RunFailed(f"the SQLite ledger does not verify (entry {before[0].line()}); nothing was copied: restore it from a copy "
                        "that verifies (relpromote audit verify names every bad entry)")
    target = PgLedger(to_url)
    try:
        target.copy_in(source)
        moved = target.entries()
    finally:
        target.close()
    problems = list(trusted_state(moved, project.config, committed_config(project.config_path)).ignored)
    if not problems:
        problems = _differences(source, moved)
    head = f"{moved[-1].seq}:{moved[-1].hash}" if moved else f"0:{GENESIS_HASH}"
    return Migration(len(moved), head, problems)


def _differences(source: list[Entry], moved: list[Entry]) -> list[Problem]:
    """Where the copy is not the original, entry by entry (Entry equality covers every signed field)."""
    for original, copy in zip(source, moved, strict=False):
        if original != copy:
            return [Problem(original.seq, "the copy differs from the SQLite entry")]
    if len(source) != len(moved):
        return [Problem(min(len(source), len(moved)) + 1, f"the copy holds {len(moved)} entries, the SQLite ledger {len(source)}")]
    return []
