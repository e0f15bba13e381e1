"""The last step of a refresh: the prepared database becomes QA's, all or nothing (shipped with pg_masked_refresh).

A task of its own, after the copy: ansible-playbook only starts it while relpromote still runs (relpromote ends
every process of a run when it is stopped or dies), and it renames only after checking, once more, that its
controller still reads its output. A refresh stopped at any earlier point leaves QA's database as it was.

The database the swap retires (the previous refresh's `__previous`) is renamed `<db>__retired_<time>`, not dropped:
PostgreSQL's DROP DATABASE forces an immediate checkpoint, which right after the copy writes out the whole new database
while QA waits (1-2 s for 1 M rows). The next refresh drops it as it starts (relpromote_pg_copy: before it creates its
new database, so QA's server never holds more than three copies), when the checkpoint has little left to write. The
rename marks it as a refresh's leftover in the same transaction (relpromote_pg_state.LEFTOVER_KEY): the next refresh
drops only databases so marked, never one that merely carries the name.
"""

from __future__ import annotations

import time
from typing import Any

from ansible.module_utils.relpromote_pg_run import (
    Children,
    Params,
    RefreshError,
    Server,
    Session,
    ident,
    literal,
    require_controller,
    utcnow,
)
from ansible.module_utils.relpromote_pg_state import (
    QA_OPTIONS,
    database_exists,
    mark_leftover_sql,
    names_for,
    qa_lock,
    read_marker,
)

SWAP_ATTEMPTS = 5


def swap(params: Params, bin_dir: str, children: Children, workdir: str) -> dict[str, Any]:
    """Rename QA's database to __previous and the prepared one to QA's; returns the refresh's final summary."""
    clock = time.monotonic()
    target, prepared = params["target"], dict(params["prepared"])
    qa_db, incoming = target["database"], str(prepared.get("incoming") or "")
    names = names_for(qa_db, utcnow().strftime("%Y%m%dT%H%M%S"))
    if not incoming.startswith(names["incoming_prefix"]):
        raise RefreshError(f"{incoming!r} is not a prepared copy of {qa_db}")
    qa = Server(bin_dir, children, workdir, "qa", target, QA_OPTIONS)
    control = Session(qa, target["maintenance_database"], "QA control session")
    try:
        qa_lock(control, qa_db)
        marker = read_marker(control, incoming) if database_exists(control, incoming) else None
        if not marker or marker.get("run") != prepared.get("run"):
            raise RefreshError(f"the prepared database {incoming} is gone or not this run's; QA is unchanged, run the refresh again")
        qa_exists = database_exists(control, qa_db)
        previous_exists = database_exists(control, names["previous"])
        busy = [qa_db] + ([names["previous"]] if previous_exists else [])
        # A swap is the one commit QA must not lose in a crash; QA_OPTIONS turn synchronous_commit off.
        statements = [
            "SET synchronous_commit = on;",
            "BEGIN;",
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname IN ({', '.join(literal(name) for name in busy)}) AND pid <> pg_backend_pid();",
        ]
        if previous_exists:
            statements.append(f"ALTER DATABASE {ident(names['previous'])} RENAME TO {ident(names['retired'])};")
            # In the same transaction: a database is the next refresh's to drop only when a refresh marked it.
            statements.append(mark_leftover_sql(names["retired"], qa_db, "retired") + ";")
        if qa_exists:
            statements.append(f"ALTER DATABASE {ident(qa_db)} RENAME TO {ident(names['previous'])};")
        statements += [f"ALTER DATABASE {ident(incoming)} RENAME TO {ident(qa_db)};", "COMMIT;"]
        error = ""
        for _attempt in range(SWAP_ATTEMPTS):
            require_controller()  # the handshake: relpromote still waits for this result
            # A client of QA may reconnect between the terminate and the rename; the rename then fails, the whole
            # transaction rolls back and the retry starts from the same state.
            try:
                qa.run(qa.psql_argv("-A", "-t"), target["maintenance_database"], "swapping the databases",
                       stdin_text="\n".join(statements) + "\n")
                break
            except RefreshError as exc:
                error = exc.message
                time.sleep(0.5)
        else:
            raise RefreshError(f"could not swap in the new database: {error}")
    finally:
        control.close()
        qa.close()
    seconds = round(time.monotonic() - clock, 3)
    summary = {key: value for key, value in prepared.items() if key not in ("incoming", "run", "qa_exists")}
    summary.update(
        result="refreshed",
        previous_database=names["previous"] if qa_exists else None,
        # Dropped by the next refresh as it starts (see the module's docstring).
        retired_database=names["retired"] if previous_exists else None,
        duration_seconds=round(float(prepared.get("duration_seconds") or 0) + seconds, 3),
        phases={**dict(prepared.get("phases") or {}), "swap": seconds},
    )
    return summary
