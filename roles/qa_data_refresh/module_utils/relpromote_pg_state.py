"""QA's state and production's catalog: what a refresh reads before it acts (shipped with pg_masked_refresh)."""

from __future__ import annotations

import json
from typing import Any

from ansible.module_utils.relpromote_pg_run import (
    Children,
    Params,
    RefreshError,
    Server,
    Session,
    carry_key,
    ident,
    key_of,
    literal,
    qualified,
    utcnow,
)

SALT_SETTING = "relpromote.salt"
# Prepended to production sessions: even a bug in a plan cannot write, and sessions that wait on the
# shared snapshot are not cut by the server's idle timeouts. row_security=off makes a filtered read an
# error instead of a silently partial copy. jit=off: every statement of a refresh is one long scan whose masking
# expressions JIT compiles slower than the interpreter runs them (fake phones: 8 s instead of 2 s for 300k rows).
# No parallel workers: the refresh already runs `jobs` statements side by side, and a worker's rows cost CPU to pass
# back through the leader (a check's scan: twice the CPU for half the wall time), which production and QA pay.
PROD_OPTIONS = (
    "-c default_transaction_read_only=on -c statement_timeout=0 -c idle_in_transaction_session_timeout=0 -c row_security=off"
    " -c jit=off -c max_parallel_workers_per_gather=0"
)
QA_OPTIONS = "-c statement_timeout=0 -c synchronous_commit=off -c jit=off -c max_parallel_workers_per_gather=0"
MARKER_KEY = "relpromote_refresh"
# Written on every database a refresh creates (its new copy, as soon as it exists) and on the one its swap retires (in
# the swap's transaction), naming QA's database: the next refresh drops a `<db>__incoming_`/`<db>__retired_` database
# only when it holds this mark for `<db>`. A database of that name someone else made, another QA database sharing the
# prefix, or a copy made by hand holds none (only its owner or a superuser can comment on a database) and is left alone.
LEFTOVER_KEY = "relpromote_leftover"

CATALOG_SQL = r"""
SELECT coalesce(json_agg(t ORDER BY t.schema, t.name)::jsonb, '[]')
FROM (
  SELECT n.nspname AS schema, c.relname AS name, c.relpages AS pages,
         -- Row-level security that applies to this session's role (not BYPASSRLS, not the owner): with row_security=off
         -- every read of the table is an error, so the plan refuses it by name before anything runs.
         row_security_active(c.oid) AS row_security,
         (SELECT CASE WHEN rn.nspname = 'public' THEN rc.relname ELSE rn.nspname || '.' || rc.relname END
            FROM pg_class rc JOIN pg_namespace rn ON rn.oid = rc.relnamespace
           WHERE c.relispartition AND rc.oid = pg_partition_root(c.oid)) AS root,
         bool_and((bt.oid < 16384 AND bt.typtype IN ('b', 'r', 'm') AND (bt.typelem = 0 OR bt.typelem < 16384))
                  OR bt.typtype = 'e') AS binary_copy,
         json_agg(json_build_object(
             'name', a.attname,
             'type', format_type(a.atttypid, a.atttypmod),
             'base_type', bt.typname,
             'not_null', a.attnotnull,
             'max_length', information_schema._pg_char_max_length(bt.oid,
                 CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END),
             -- In a unique index (primary keys and expression indexes included: they depend on the column).
             'unique', EXISTS (SELECT 1 FROM pg_index i
                                WHERE i.indrelid = c.oid AND i.indisunique
                                  AND (a.attnum = ANY (i.indkey::int2[])
                                       OR EXISTS (SELECT 1 FROM pg_depend d
                                                   WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
                                                     AND d.refobjid = c.oid AND d.refobjsubid = a.attnum))),
             -- CHECK constraints of the table on this column, and of its domain (whose predicate says VALUE).
             'checks', (SELECT coalesce(json_agg(json_build_array(k.conname,
                                regexp_replace(regexp_replace(pg_get_constraintdef(k.oid), '^CHECK ', ''), ' NOT VALID$', ''))
                                ORDER BY k.conname), '[]')
                          FROM pg_constraint k
                         WHERE k.contype = 'c' AND ((k.conrelid = c.oid AND a.attnum = ANY (k.conkey))
                                                    OR (t.typtype = 'd' AND k.contypid = t.oid))))
           ORDER BY a.attnum) AS columns
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
    JOIN pg_type t ON t.oid = a.atttypid
    JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
   WHERE c.relkind = 'r'
     AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
   GROUP BY n.nspname, c.relname, c.oid, c.relispartition, c.relpages
) t
"""

# The table each index and constraint belongs to, keyed like pg_restore --list names them ("classid:oid"); foreign
# keys are left out: they need the referenced table too.

def names_for(database: str, stamp: str) -> dict[str, str]:
    return {
        "incoming": f"{database}__incoming_{stamp}",
        "incoming_prefix": f"{database}__incoming_",
        "previous": f"{database}__previous",
        "retired": f"{database}__retired_{stamp}",
        "retired_prefix": f"{database}__retired_",
    }


def read_marker(control: Session, database: str) -> dict[str, Any] | None:
    """What the last refresh wrote on QA's database (a COMMENT, so it survives the rename)."""
    raw = control.ask(
        "SELECT coalesce((SELECT shobj_description(oid, 'pg_database') FROM pg_database "
        f"WHERE datname = {literal(database)}), '')"
    )
    try:
        marker = json.loads(raw).get(MARKER_KEY) if raw else None
    except (ValueError, AttributeError):
        return None
    return marker if isinstance(marker, dict) else None


CONTENT_SAMPLE_ROWS = 200
SAMPLED_TYPES = ("text", "varchar", "bpchar", "citext", "json", "jsonb", "_text", "_varchar")
EMAIL_RE = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
PHONE_RE = r"^\+?[0-9(][0-9 ()./-]{6,20}$"
CARD_RE = r"^[0-9]{13,19}$"


def _luhn(digits: str) -> str:
    return (f"(SELECT sum(CASE WHEN i % 2 = 0 THEN (2 * x) / 10 + (2 * x) % 10 ELSE x END) % 10 = 0 "
            f"FROM (SELECT i, substr(reverse({digits}), i, 1)::int AS x FROM generate_series(1, length({digits})) i) q)")


def content_sample_sql(table: Params) -> str:
    """Per text, JSON or text-array column: how many of the first rows look like an email address (anywhere in the
    value), a phone number, or a payment card number (13-19 digits passing the Luhn check)."""
    parts = []
    for column in table["columns"]:
        if column["base_type"] not in SAMPLED_TYPES:
            continue
        value = f"{ident(column['name'])}::text"
        digits = f"regexp_replace({value}, '[ -]', '', 'g')"
        card = f"CASE WHEN {digits} ~ {literal(CARD_RE)} THEN {_luhn(digits)} ELSE false END"
        phone = (f"{value} ~ {literal(PHONE_RE)} AND length(regexp_replace({value}, '[^0-9]', '', 'g')) BETWEEN 7 AND 15 "
                 f"AND NOT coalesce({card}, false)")
        parts.append(
            f"{literal(column['name'])}, json_build_object("
            f"'email', count(*) FILTER (WHERE {value} ~ {literal(EMAIL_RE)}), "
            f"'phone', count(*) FILTER (WHERE {phone}), "
            f"'card', count(*) FILTER (WHERE {card}))"
        )
    if not parts:
        return ""
    return (f"SELECT json_build_object({', '.join(parts)}) "
            f"FROM (SELECT * FROM ONLY {qualified(table['schema'], table['name'])} LIMIT {CONTENT_SAMPLE_ROWS}) s")


READER_SQL = r"""
SELECT json_build_object(
  'user', current_user, 'superuser', r.rolsuper, 'createrole', r.rolcreaterole, 'createdb', r.rolcreatedb,
  'replication', r.rolreplication, 'bypassrls', r.rolbypassrls, 'connection_limit', r.rolconnlimit,
  'read_all_data', pg_has_role(current_user, 'pg_read_all_data', 'USAGE'),
  'row_security_tables', (SELECT count(*) FROM pg_class WHERE relrowsecurity AND relkind IN ('r', 'p')),
  'powerful_roles', (SELECT coalesce(json_agg(rolname ORDER BY rolname), '[]') FROM pg_roles
                      WHERE rolname IN ('pg_write_all_data', 'pg_write_server_files', 'pg_execute_server_program',
                                        'pg_read_server_files', 'pg_signal_backend', 'pg_checkpoint', 'pg_create_subscription')
                        AND pg_has_role(current_user, oid, 'USAGE')),
  'temp', has_database_privilege(current_database(), 'TEMP'),
  'create_in_database', has_database_privilege(current_database(), 'CREATE'),
  'create_in_schemas', (SELECT coalesce(json_agg(nspname ORDER BY nspname), '[]') FROM pg_namespace
                         WHERE has_schema_privilege(oid, 'CREATE') AND nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema'),
  'writable_tables', (SELECT coalesce(json_agg(format('%I.%I', n.nspname, c.relname) ORDER BY 1), '[]') FROM (
                        SELECT c.relname, c.relnamespace FROM pg_class c
                         WHERE c.relkind IN ('r', 'p') AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
                         LIMIT 5) c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'),
  'large_objects', has_function_privilege('lo_create(oid)', 'EXECUTE') OR has_function_privilege('lo_creat(integer)', 'EXECUTE')
                   OR has_function_privilege('lo_from_bytea(oid, bytea)', 'EXECUTE'),
  'client_certificate', coalesce((SELECT client_dn IS NOT NULL FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)
) FROM pg_roles r WHERE r.rolname = current_user
"""


def reader_findings(facts: Params) -> dict[str, list[str]]:
    """What production's reader can do beyond reading. `refused`: it can write (or more): never a refresh's source;
    `findings`: what an administrator should take away; `notes`: what PostgreSQL does not let anyone take away."""
    who = facts.get("user", "the reader")
    refused: list[str] = []
    findings: list[str] = []
    notes: list[str] = []
    if facts.get("superuser"):
        refused.append(f"{who} is a superuser: it can write, drop and run programs on the server")
    if facts.get("createrole"):
        refused.append(f"{who} has CREATEROLE: it can create roles and grant itself their rights")
    if facts.get("replication"):
        refused.append(f"{who} has REPLICATION: it can stream the whole cluster and create replication slots")
    if facts.get("powerful_roles"):
        refused.append(f"{who} is a member of {', '.join(facts['powerful_roles'])}")
    if facts.get("writable_tables"):
        refused.append(f"{who} can write to tables (e.g. {', '.join(facts['writable_tables'])}): revoke INSERT, UPDATE, "
                       "DELETE, TRUNCATE")
    if facts.get("create_in_database"):
        refused.append(f"{who} can create schemas in the database: REVOKE CREATE ON DATABASE ... FROM {who} (and PUBLIC)")
    if facts.get("create_in_schemas"):
        refused.append(f"{who} can create objects in schema(s) {', '.join(facts['create_in_schemas'])}: "
                       "REVOKE CREATE ON SCHEMA ... FROM PUBLIC")
    if not facts.get("superuser"):
        if facts.get("createdb"):
            findings.append(f"{who} has CREATEDB: ALTER ROLE {who} NOCREATEDB")
        if facts.get("bypassrls") and not int(facts.get("row_security_tables") or 0):
            findings.append(f"{who} has BYPASSRLS: not needed while no table has row-level security (the refresh reads "
                            f"with row security off and fails on a filtered table instead): ALTER ROLE {who} NOBYPASSRLS")
        if not facts.get("read_all_data"):
            findings.append(f"{who} is not a member of pg_read_all_data: GRANT pg_read_all_data TO {who}")
        if facts.get("temp"):
            findings.append(f"{who} can create temporary tables: REVOKE TEMP ON DATABASE ... FROM PUBLIC (grant it back to "
                            "the roles that need it)")
        if facts.get("large_objects"):
            findings.append(f"{who} can create large objects (they persist and use disk until vacuumlo): REVOKE EXECUTE ON "
                            "FUNCTION lo_creat(integer), lo_create(oid), lo_from_bytea(oid, bytea), lo_import(text), "
                            "lo_import(text, oid) FROM PUBLIC (grant them to the application roles that use large objects)")
        if int(facts.get("connection_limit", -1)) < 0:
            findings.append(f"{who} has no connection limit: ALTER ROLE {who} CONNECTION LIMIT 8 (the refresh needs jobs + 3)")
        if not facts.get("client_certificate"):
            notes.append(f"{who} logs in with a password, and PostgreSQL lets every role change its own password "
                         "(no grant or setting prevents it): authenticate it with a client certificate (pg_hba.conf "
                         "method cert), or rely on the next refresh failing to log in with the vault's password")
    return {"refused": refused, "findings": findings, "notes": notes}


def qa_lock(control: Session, database: str) -> None:
    """Two refreshes of one QA database must not drop each other's copy: a session lock on QA's server, which the
    server releases by itself when the session ends, however this process ends."""
    if control.ask(f"SELECT pg_try_advisory_lock(hashtext({literal('relpromote.refresh:' + database)}))") != "t":
        raise RefreshError(f"another refresh of {database} is running on this server", busy=True)


def database_exists(control: Session, database: str) -> bool:
    return control.ask(f"SELECT count(*) FROM pg_database WHERE datname = {literal(database)}") == "1"


def leftover_mark(database: str, what: str) -> dict[str, Any]:
    """The mark that makes a database a leftover the next refresh of QA's `database` drops (see LEFTOVER_KEY)."""
    return {LEFTOVER_KEY: {"of": database, "as": what, "at": utcnow().isoformat()}}


def mark_leftover_sql(name: str, database: str, what: str) -> str:
    return f"COMMENT ON DATABASE {ident(name)} IS {literal(json.dumps(leftover_mark(database, what), sort_keys=True))}"


def leftovers(control: Session, database: str) -> list[str]:
    """The databases an earlier refresh of `database` left to be dropped: named as its new copies and retired copies
    are, and marked by it for `database` (LEFTOVER_KEY). Nothing else is ever dropped."""
    names = names_for(database, "")
    raw = control.ask(
        "SELECT coalesce(json_agg(json_build_array(datname, shobj_description(oid, 'pg_database')) ORDER BY datname)::jsonb,"
        " '[]') FROM pg_database "
        f"WHERE starts_with(datname, {literal(names['incoming_prefix'])}) "
        f"OR starts_with(datname, {literal(names['retired_prefix'])})"
    )
    return [str(name) for name, comment in json.loads(raw) if _marked_for(comment, database)]


def _marked_for(comment: Any, database: str) -> bool:
    try:
        mark = json.loads(comment).get(LEFTOVER_KEY) if isinstance(comment, str) else None
    except (ValueError, AttributeError):
        return False
    return isinstance(mark, dict) and bool(mark.get("of") == database)


def drop_database(control: Session, database: str) -> None:
    # FORCE (PostgreSQL 13+) ends the sessions of a killed run that the server has not noticed yet.
    control.do(f"DROP DATABASE IF EXISTS {ident(database)} WITH (FORCE)")


def count_sql(tables: list[tuple[str, str]]) -> str:
    return "SELECT json_build_array({})".format(", ".join(f"(SELECT count(*) FROM ONLY {qualified(s, n)})" for s, n in tables))


def columns_sql(table: str) -> str:
    return (
        "SELECT coalesce(json_agg(attname ORDER BY attnum)::jsonb, '[]') FROM pg_attribute "
        f"WHERE attrelid = {literal(table)}::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''"
    )


def inspect(params: Params, bin_dir: str, children: Children, workdir: str) -> dict[str, Any]:
    """Production's catalog (and row counts), QA's database, its last refresh and leftovers. Reads only."""
    source, target = params["source"], params["target"]
    prod = Server(bin_dir, children, workdir, "production", source, PROD_OPTIONS)
    qa = Server(bin_dir, children, workdir, "qa", target, QA_OPTIONS)
    sessions: list[Session] = []
    try:
        reader = prod.session(source["database"], "reading production's catalog")
        sessions.append(reader)
        reader.do("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        reader_report = reader_findings(json.loads(reader.ask(READER_SQL)))
        if reader_report["refused"] and not params.get("check_reader"):
            raise RefreshError("production's reader role is refused as the refresh's source: "
                               + "; ".join(reader_report["refused"]) + "; give it only pg_read_all_data (see README)",
                               error={"kind": "reader_refused", **reader_report})
        tables = json.loads(reader.ask(CATALOG_SQL)) if not params.get("check_reader") else []
        if params["count_rows"] and tables:
            counts = json.loads(reader.ask(count_sql([(t["schema"], t["name"]) for t in tables])))
            for table, count in zip(tables, counts, strict=True):
                table["rows"] = int(count)
            for table in tables:  # the dry run also looks at a sample of what text columns hold
                query = content_sample_sql(table)
                if query:
                    table["content"] = json.loads(reader.ask(query))
        reader.do("COMMIT")
        control = qa.session(target["maintenance_database"], "reading QA's state")
        sessions.append(control)
        exists = database_exists(control, target["database"])
        carried: dict[str, int] = {}
        if exists and params["count_rows"] and params["carry_over"]:
            current = qa.session(target["database"], "counting QA's carried-over tables")
            sessions.append(current)
            for entry in params["carry_over"]:
                schema, name = carry_key(entry).split(".", 1)
                if current.ask(f"SELECT to_regclass({literal(qualified(schema, name))}) IS NOT NULL") == "t":
                    carried[key_of(schema, name)] = int(current.ask(f"SELECT count(*) FROM ONLY {qualified(schema, name)}"))
        qa_state = {
            "database": target["database"],
            "exists": exists,
            "last_refresh": read_marker(control, target["database"]) if exists else None,
            "leftovers": leftovers(control, target["database"]),
            "carried_over": carried,
        }
        return {"catalog": {"database": source["database"], "tables": tables}, "qa": qa_state, "reader": reader_report}
    finally:
        for session in sessions:
            session.close()
        prod.close()
        qa.close()


