"""The plan's last check before anything is copied: masked values tried against production's CHECK constraints
(shipped with pg_masked_refresh). Reads only: a sample of each table's rows, masked with a throw-away salt."""

from __future__ import annotations

import json
import secrets

from ansible.module_utils.relpromote_pg_run import Children, Params, RefreshError, Server, literal
from ansible.module_utils.relpromote_pg_state import PROD_OPTIONS, SALT_SETTING

SAMPLE_ROWS = 1000


def probe(params: Params, bin_dir: str, children: Children, workdir: str) -> list[str]:
    """Every masked column whose masked values break one of its CHECK constraints, named with the rule to use."""
    source = params["source"]
    tables = [table for table in params["plan"]["tables"] if table.get("probes")]
    if not tables:
        return []
    prod = Server(bin_dir, children, workdir, "production", source, PROD_OPTIONS)
    misfits: list[str] = []
    try:
        for table in tables:
            failing = ", ".join(f"count(*) FILTER (WHERE NOT ({predicate}))" for _, _, predicate in table["probes"])
            script = (
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n"
                f"SELECT set_config({literal(SALT_SETTING)}, {literal(secrets.token_hex(16))}, false) \\g /dev/null\n"
                f"SELECT json_build_array({failing}) FROM (SELECT {table['probe_select']} "
                f"FROM ONLY {table['qualified']} LIMIT {SAMPLE_ROWS}) m;\nCOMMIT;\n"
            )
            try:
                out = prod.run(prod.psql_argv("-A", "-t"), source["database"],
                               f"trying the masking of {table['key']} on its constraints", stdin_text=script)
            except RefreshError as exc:  # a domain's CHECK fails in the cast itself
                misfits.append(f"masking.{table['key']}: masked values break a constraint ({exc.message}); "
                               "use format_pseudonym (keeps the format) or a rule whose values satisfy it")
                continue
            counts = json.loads(out.strip().splitlines()[-1])
            for (column, name, _), bad in zip(table["probes"], counts, strict=True):
                if bad:
                    misfits.append(
                        f"masking.{table['key']}.{column}: masked values break CHECK constraint {name} "
                        f"({bad} of the first {SAMPLE_ROWS} rows); use format_pseudonym (same length and character "
                        "classes, {format_pseudonym: N} keeps the first N characters) or a rule whose values satisfy it"
                    )
    finally:
        prod.close()
    return misfits
