"""Production's data into a new QA database, masked, and the proof that it is complete and leaks nothing: the
phases of a refresh before its swap (shipped with pg_masked_refresh)."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ansible.module_utils.relpromote_pg_run import (
    Children,
    Command,
    Finisher,
    Job,
    Params,
    Pipeline,
    RefreshError,
    Scheduler,
    Server,
    Session,
    Starter,
    carry_key,
    ident,
    key_of,
    literal,
    qualified,
    utcnow,
)
from ansible.module_utils.relpromote_pg_state import (
    CATALOG_SQL,
    MARKER_KEY,
    PROD_OPTIONS,
    QA_OPTIONS,
    SALT_SETTING,
    columns_sql,
    count_sql,
    database_exists,
    drop_database,
    leftover_mark,
    leftovers,
    mark_leftover_sql,
    names_for,
    qa_lock,
    read_marker,
)

REPAIR_ROUNDS = 5
# Below this size (8 kB pages) splitting a table between sessions costs more than it saves.
CHUNK_MIN_PAGES = 2000
# Index builds sort in memory instead of in temp files: post-data is most of the restore's own time.
MAINTENANCE_WORK_MEM = "256MB"
RESTORE_OPTIONS = f"-c maintenance_work_mem={MAINTENANCE_WORK_MEM}"

LEAK_SCHEMA = "relpromote_leak_check"
LEAK_TABLE = f"{LEAK_SCHEMA}.hashes"
LEAK_MIN_LENGTH = 5  # shorter values (codes, "n/a") would match by chance

# The schema text QA receives with the schema: view definitions, defaults and generated columns, comments, function
# bodies, constraints, policies, index expressions and predicates, triggers, rules, enum labels. Object names are not
# read (a name that equals a production value is unlikely, and a false finding would fail every refresh).
SCHEMA_TEXT_SQL = """
SELECT pg_describe_object('pg_class'::regclass, c.oid, 0), pg_get_viewdef(c.oid) FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND {user}
UNION ALL SELECT 'default of ' || pg_describe_object('pg_class'::regclass, d.adrelid, d.adnum), pg_get_expr(d.adbin, d.adrelid)
  FROM pg_attrdef d WHERE d.oid >= 16384
UNION ALL SELECT 'comment on ' || pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description
  FROM pg_description d WHERE d.objoid >= 16384
UNION ALL SELECT pg_describe_object('pg_proc'::regclass, p.oid, 0), CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid >= 16384 AND {user}
UNION ALL SELECT pg_describe_object('pg_constraint'::regclass, k.oid, 0), pg_get_constraintdef(k.oid)
  FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace WHERE k.contype IN ('c', 'x') AND {user}
UNION ALL SELECT pg_describe_object('pg_policy'::regclass, p.oid, 0),
                 concat_ws(' ', pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
  FROM pg_policy p
UNION ALL SELECT pg_describe_object('pg_class'::regclass, i.indexrelid, 0), pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE (i.indpred IS NOT NULL OR i.indexprs IS NOT NULL) AND {user}
UNION ALL SELECT pg_describe_object('pg_trigger'::regclass, t.oid, 0), pg_get_triggerdef(t.oid)
  FROM pg_trigger t WHERE NOT t.tgisinternal
UNION ALL SELECT pg_describe_object('pg_rewrite'::regclass, r.oid, 0), pg_get_ruledef(r.oid)
  FROM pg_rewrite r WHERE r.rulename <> '_RETURN' AND r.oid >= 16384
UNION ALL SELECT pg_describe_object('pg_type'::regclass, e.enumtypid, 0), e.enumlabel FROM pg_enum e WHERE e.enumtypid >= 16384
""".replace("{user}", "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'relpromote_leak_check')")
# Candidates in a text: every run of 1 to SCHEMA_WINDOW words (characters other than spaces and the punctuation below;
# . @ _ + stay inside a word), as written between them, at most SCHEMA_CANDIDATE_LENGTH characters, also without a
# sentence's final dot; SQL's doubled quotes read as one.
SCHEMA_WINDOW = 8
SCHEMA_CANDIDATE_LENGTH = 256
SCHEMA_WORD_RE = r"""([][[:space:]!"#$%&'()*,/:;<=>?\\^`{|}~-]*)([^][[:space:]!"#$%&'()*,/:;<=>?\\^`{|}~-]+)"""

POST_DATA_OWNERS_SQL = """
SELECT coalesce(jsonb_object_agg(k, v), '{}') FROM (
  SELECT 'pg_class'::regclass::oid || ':' || i.indexrelid AS k,
         CASE WHEN n.nspname = 'public' THEN r.relname ELSE n.nspname || '.' || r.relname END AS v
    FROM pg_index i JOIN pg_class r ON r.oid = i.indrelid JOIN pg_namespace n ON n.oid = r.relnamespace
  UNION ALL
  SELECT 'pg_constraint'::regclass::oid || ':' || c.oid,
         CASE WHEN n.nspname = 'public' THEN r.relname ELSE n.nspname || '.' || r.relname END
    FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
   WHERE c.contype IN ('p', 'u', 'x', 'c')
) owners
"""


# ---- the refresh ----
class Refresh:
    """One refresh, step by step; `run()` returns the summary or raises with QA's database untouched."""

    def __init__(self, warn: Callable[[str], None], params: Params, bin_dir: str, children: Children, workdir: str) -> None:
        self.warn = warn
        self.run_token = secrets.token_hex(8)
        self.params = params
        self.plan: Params = params["plan"]
        self.jobs: int = params["jobs"]
        self.children = children
        self.workdir = workdir
        self.started_at = utcnow()
        self.clock = time.monotonic()
        source, target = params["source"], params["target"]
        self.source_db: str = source["database"]
        self.qa_db: str = target["database"]
        self.maintenance_db: str = target["maintenance_database"]
        self.owner: str = target["owner"]
        self.prod = Server(bin_dir, children, workdir, "production", source, PROD_OPTIONS)
        self.qa = Server(bin_dir, children, workdir, "qa", target, QA_OPTIONS)
        self.names = names_for(self.qa_db, self.started_at.strftime("%Y%m%dT%H%M%S"))
        self.incoming = self.names["incoming"]
        self.incoming_created = False
        self.sessions: list[Session] = []
        self.snapshot = ""
        self.snapshot_time = ""
        self.fingerprint_seed = secrets.randbits(62)  # per run: the hashes mean nothing once the run is over
        self.pages: dict[str, int] = {}
        self.qa_counts: dict[str, list[int]] = {}  # table key -> rows, then the null/fixed checks' offending values
        self.collisions: dict[str, int] = {}
        self.leak_sources: list[str] = []  # "table.column" by source number in the table of production's hashes
        self.source_numbers: dict[tuple[str, str], int] = {}  # (table key, column) -> source number
        self.hash_tables: dict[str, str] = {}  # table key -> the table of production's hashes of its masked columns
        self.candidates: dict[tuple[str, str], str] = {}  # (table key, column) -> its check's candidates_sql
        self.leaks: list[str] = []
        self.schema_leaks: list[str] = []  # objects of the schema whose text holds production values of masked columns
        self.remasked: dict[str, int] = {}
        self.carried_over: dict[str, int] = {}
        self.qa_only_tables: list[tuple[str, str]] = []
        self.early_post_data: dict[str, list[str]] = {}  # table key -> pg_restore list lines
        self.final_post_data: list[str] = []
        self.early_files: list[str] = []
        self.archive = os.path.join(workdir, "schema.dump")
        self.phases: dict[str, float] = {}
        self._mark = self.clock

    # -- helpers --
    def _session(self, server: Server, database: str, what: str) -> Session:
        session = server.session(database, what)
        self.sessions.append(session)
        return session

    def _phase(self, name: str) -> None:
        now = time.monotonic()
        self.phases[name] = round(now - self._mark, 3)
        self._mark = now

    def _restore_argv(
        self,
        archive: str,
        *,
        section: str | None = None,
        listing: str | None = None,
        jobs: int = 1,
        single_transaction: bool = False,
    ) -> list[str]:
        argv = [self.qa.program("pg_restore"), "-w", "--no-owner", "--no-privileges", "--exit-on-error", "-d", self.incoming]
        if section:
            argv.append(f"--section={section}")
        if listing:
            argv.append(f"--use-list={listing}")
        if self.owner:
            argv.append(f"--role={self.owner}")
        if jobs > 1:
            argv.append(f"--jobs={jobs}")
        if single_transaction:
            argv.append("--single-transaction")
        return [*argv, archive]

    def _restore(self, archive: str, section: str, single_transaction: bool = False) -> None:
        argv = self._restore_argv(archive, section=section, single_transaction=single_transaction)
        self.qa.run(argv, self.incoming, f"restoring the {section} of {os.path.basename(archive)}", options=RESTORE_OPTIONS)

    def _split_post_data(self, archive: str, holder: Session) -> None:
        """Which post-data entries belong to one copied table (its indexes and non-foreign-key constraints: built as
        soon as that table is loaded and checked, while other tables still copy) and which wait for all the data
        (foreign keys, triggers, the rest). Entries are matched by production's OIDs, which the archive lists."""
        listing = self.qa.run(
            [self.qa.program("pg_restore"), "--list", "--section=post-data", archive], self.incoming, "listing the schema"
        )
        owners = json.loads(holder.ask(POST_DATA_OWNERS_SQL))
        copied = {t["key"] for t in self.plan["tables"]}
        for line in listing.splitlines():
            if not line.strip() or line.startswith(";"):
                continue
            fields = line.partition("; ")[2].split(" ")  # "3207; 2606 16397 CONSTRAINT public customers customers_pkey owner"
            owner = owners.get(f"{fields[0]}:{fields[1]}") if len(fields) > 2 else None
            if owner is not None and owner in copied:
                self.early_post_data.setdefault(owner, []).append(line)
            else:
                self.final_post_data.append(line)

    def _listing_file(self, name: str, lines: list[str]) -> str:
        path = os.path.join(self.workdir, f"{name}.list")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        return path

    def _drop_leftovers(self, names: list[str]) -> Session | None:
        """Start dropping `names` (DROP DATABASE ... WITH (FORCE), as drop_database does) in a session of their own;
        _dropped() waits for it."""
        if not names:
            return None
        dropping = self._session(self.qa, self.maintenance_db, "dropping what the last refresh left")
        for name in names:
            dropping.send(f"DROP DATABASE IF EXISTS {ident(name)} WITH (FORCE)")
        dropping.send("SELECT 'dropped'")
        return dropping

    @staticmethod
    def _dropped(dropping: Session | None) -> None:
        """Wait until the leftovers are dropped; RefreshError with PostgreSQL's error if a drop failed."""
        if dropping is not None and dropping.receive() != "dropped":
            raise RefreshError(f"{dropping.what}: unexpected output on {dropping.server.label}")

    def _snapshot_prelude(self) -> str:
        return f"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\nSET TRANSACTION SNAPSHOT {literal(self.snapshot)};\n"

    # -- steps --
    def prepare(self) -> dict[str, Any]:
        control = self._session(self.qa, self.maintenance_db, "QA control session")
        qa_lock(control, self.qa_db)
        # The database the last swap retired (it is dropped here, not at the swap: DROP DATABASE forces a checkpoint,
        # cheap now, costly right after a copy), or a new database of a run killed before it could clean up. Dropped by
        # a session of its own while production's snapshot is taken and the schema restored (the checkpoint's wait is
        # off the critical path), and waited for before any data is copied, so that QA's server never holds more than
        # three copies with data. Under the lock, which the control session holds throughout.
        dropping = self._drop_leftovers(leftovers(control, self.qa_db))
        qa_exists = database_exists(control, self.qa_db)
        marker = read_marker(control, self.qa_db) if qa_exists else None
        if marker and self.params["min_interval"] > 0:
            age = (utcnow() - datetime.fromisoformat(marker["refreshed_at"])).total_seconds()
            if age < self.params["min_interval"]:
                self._dropped(dropping)
                return self._summary(
                    "skipped",
                    tables=marker.get("tables", {}),
                    snapshot_time=marker.get("snapshot_time"),
                    message=f"QA was refreshed {age:.0f} s ago (min_interval {self.params['min_interval']} s)",
                )

        # One exported snapshot: the schema dump, every table copy, every check and the row counts see
        # production at the same instant, however long the copy takes.
        holder = self._session(self.prod, self.source_db, "holding production's snapshot")
        holder.do("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        exported = holder.ask(
            "SELECT pg_export_snapshot() || ' ' || to_char(statement_timestamp() AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\')'
        )
        self.snapshot, self.snapshot_time = exported.split(" ", 1)
        tables = json.loads(holder.ask(CATALOG_SQL))
        self._check_drift(tables)
        self.pages = {key_of(t["schema"], t["name"]): int(t["pages"]) for t in tables}
        database = json.loads(
            holder.ask(
                "SELECT to_jsonb(d) || jsonb_build_object('encoding', pg_encoding_to_char(d.encoding)) "
                "FROM pg_database d WHERE datname = current_database()"
            )
        )
        sequences = json.loads(
            holder.ask(
                "SELECT coalesce(json_agg(json_build_array(quote_ident(schemaname) || '.' || quote_ident(sequencename), "
                "last_value))::jsonb, '[]') "
                "FROM pg_sequences WHERE last_value IS NOT NULL"
            )
        )
        self._phase("snapshot")

        archive = self.archive
        self.prod.run(
            [
                self.prod.program("pg_dump"),
                "-w",
                "--schema-only",
                "--format=custom",
                "--no-sync",
                f"--snapshot={self.snapshot}",
                "--no-publications",
                "--no-subscriptions",
                "--no-tablespaces",
                f"--file={archive}",
            ],
            self.source_db,
            "dumping production's schema",
        )
        self._split_post_data(archive, holder)
        self._create_incoming(control, database)
        # Tables, types and functions first; indexes, constraints and triggers only after the data (post-data).
        self._restore(archive, "pre-data", single_transaction=True)
        self._phase("schema")
        self._dropped(dropping)  # before any data is copied
        self._phase("dropping the retired database")

        incoming = self._session(self.qa, self.incoming, "checking the new database")
        carried_in_schema, carried_qa_only = self._carry_over_sources(qa_exists, incoming)
        for schema in sorted({schema for schema, _ in self.qa_only_tables}):
            # pg_dump --table leaves out the table's schema: a QA-only schema (production has no such schema) is made here.
            incoming.do(f"CREATE SCHEMA IF NOT EXISTS {ident(schema)}" + (f" AUTHORIZATION {ident(self.owner)}" if self.owner else ""))
        for qa_archive in carried_qa_only:
            self._restore(qa_archive, "pre-data", single_transaction=True)
            self._restore(qa_archive, "data", single_transaction=True)
        planned = [(t["schema"], t["name"]) for t in self.plan["tables"]]
        if planned:
            holder.send(count_sql(planned))  # production counts its rows in the snapshot while the copies run
        scheduler = Scheduler(self.jobs)
        hashed, leak_check = self._create_hashes(incoming)
        for table in self.plan["tables"]:
            self._queue_copy(table, scheduler, hashed.get(table["key"], []))
        for schema, name, columns in carried_in_schema:
            scheduler.add(self._carry_starter(schema, name, columns))
        scheduler.run()
        self._phase("copy")
        self.phases.update(scheduler.timings)

        prod_counts = json.loads(holder.receive()) if planned else []
        holder.do("COMMIT")  # production's part is over: end the long transaction early
        self._set_sequences(incoming, sequences, qa_exists)
        # Foreign keys (validated against all the data), triggers, the rest; the leak check reads the same tables
        # meanwhile (its reads do not conflict with those locks).
        finishing = Scheduler(self.jobs + 1)
        schema_scan = self._schema_scan() if leak_check else None
        if self.final_post_data:
            listing = self._listing_file("final", self.final_post_data)
            argv = self._restore_argv(archive, listing=listing, jobs=self.jobs)
            # The schema's text is complete (triggers, policies, rules) only after this restore: its scan follows it.
            finishing.add(lambda: Command("foreign keys and triggers", self.qa, self.incoming, argv, options=RESTORE_OPTIONS),
                          (lambda _job: finishing.add(*schema_scan)) if schema_scan else None)
        elif schema_scan:
            finishing.add(*schema_scan)
        if leak_check:
            self._queue_leak_scans(incoming, finishing)
        finishing.run()
        self.phases.update(finishing.timings)
        if hashed:
            self._end_leak_check(incoming)
        for qa_archive in carried_qa_only:
            self._restore(qa_archive, "post-data")
        self._refresh_materialized_views(incoming)
        self._phase("post_data")

        rows = self._verify(prod_counts)
        for schema, name in [(s, n) for s, n, _ in carried_in_schema] + self.qa_only_tables:
            self.carried_over[key_of(schema, name)] = int(incoming.ask(f"SELECT count(*) FROM ONLY {qualified(schema, name)}"))
        carried = [qualified(schema, name) for schema, name in [(s, n) for s, n, _ in carried_in_schema] + self.qa_only_tables]
        if carried:
            incoming.do(f"ANALYZE {', '.join(carried)}")  # production's tables were analyzed as they arrived
        incoming.close()
        self._phase("verify")

        # Ready to be swapped in, by this run only: the swap (pg_masked_refresh action=swap, a task of its own) checks the
        # token, so it can never put in place a database some other, interrupted run left half-built.
        marker = {
            MARKER_KEY: {
                "refreshed_at": utcnow().isoformat(),
                "snapshot_time": self.snapshot_time,
                "source": self.source_db,
                "tables": rows,
                "run": self.run_token,
            },
            **leftover_mark(self.qa_db, "incoming"),  # still the next refresh's to drop until the swap takes it
        }
        control.do(f"COMMENT ON DATABASE {ident(self.incoming)} IS {literal(json.dumps(marker, sort_keys=True))}")
        self.incoming_created = False  # complete and verified: the swap task takes it from here (or the next run drops it)
        summary = self._summary("prepared", tables=rows, snapshot_time=self.snapshot_time)
        summary["incoming"] = self.incoming
        summary["run"] = self.run_token
        summary["qa_exists"] = qa_exists
        return summary

    def _refresh_materialized_views(self, incoming: Session) -> None:
        """A schema-only restore creates materialized views WITH NO DATA: fill them from the masked data, a view that reads
        another one after it (creation order, then again for what failed while its source was empty)."""
        views = json.loads(incoming.ask(
            "SELECT coalesce(json_agg(format('%I.%I', n.nspname, c.relname) ORDER BY c.oid), '[]') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'm'"
        ))
        for _attempt in range(3):
            failed = []
            for view in views:
                try:
                    self.qa.run(self.qa.psql_argv("-c", f"REFRESH MATERIALIZED VIEW {view}"), self.incoming,
                                f"refreshing materialized view {view}")
                except RefreshError:
                    failed.append(view)
            if not failed or failed == views:
                break
            views = failed
        if failed:
            self.qa.run(self.qa.psql_argv("-c", f"REFRESH MATERIALIZED VIEW {failed[0]}"), self.incoming,
                        f"refreshing materialized view {failed[0]}")

    # -- the leak check --
    def _create_hashes(self, incoming: Session) -> tuple[dict[str, list[tuple[str, int]]], bool]:
        """Production's keyed hashes of the values of masked columns, sent once, into the new database: both the per-column
        check (_fingerprint_starter: no masked value equals a production value of its column) and the leak check
        (_queue_leak_scans) read them there. All rows, not a sample, in the copy's snapshot. One row per production row,
        a hash column per masked column (`c<source number>`, NULL for a value too short), in a table per production
        table: a fourth of the rows one per value would take, and a check reads its column only; LEAK_TABLE is the view
        of them all as (f, source). A column whose rule says which production values could equal a masked one
        (candidates_sql: fake emails, pseudonyms, fake names, partial) also gets `k<source number>`, true for those: the
        per-column check then looks up only those few, the leak check all. Returns, per table, the hashed columns with the shortest value hashed (any non-empty
        one for a column the per-column check reads, else LEAK_MIN_LENGTH), and whether the leak check runs."""
        # Always when something is masked: the schema QA receives is searched even when no table has a column to search.
        leak_check = any(t.get("leak_sources") for t in self.plan["tables"])
        hashed: dict[str, list[tuple[str, int]]] = {}
        for table in self.plan["tables"]:
            fingerprinted = {check["column"] for check in table["checks"] if check["kind"] == "fingerprint"}
            self.candidates.update({(table["key"], check["column"]): check["candidates_sql"] for check in table["checks"]
                                    if check["kind"] == "fingerprint" and check.get("candidates_sql")})
            columns = list(table.get("leak_sources") or []) if leak_check else []
            columns += [column for column in table["masked"] if column in fingerprinted and column not in columns]
            if columns:
                hashed[table["key"]] = [(column, 1 if column in fingerprinted else LEAK_MIN_LENGTH) for column in columns]
                self.hash_tables[table["key"]] = f"{LEAK_SCHEMA}.h{len(self.hash_tables)}"
                for column in columns:
                    self.source_numbers[(table["key"], column)] = len(self.leak_sources)
                    self.leak_sources.append(f"{table['key']}.{column}")
        if hashed:
            statements = [f"CREATE SCHEMA {LEAK_SCHEMA}"]
            view = []
            for key, columns in hashed.items():
                numbers = [self.source_numbers[(key, column)] for column, _ in columns]
                flags = [f"k{self.source_numbers[(key, column)]} boolean" for column, _ in columns if (key, column) in self.candidates]
                statements.append(
                    f"CREATE UNLOGGED TABLE {self.hash_tables[key]} ({', '.join([f'c{n} bigint' for n in numbers] + flags)})"
                )
                view += [f"SELECT c{n} AS f, {n}::smallint AS source FROM {self.hash_tables[key]} WHERE c{n} IS NOT NULL"
                         for n in numbers]
            statements.append(f"CREATE VIEW {LEAK_TABLE} AS {' UNION ALL '.join(view)}")
            incoming.do("; ".join(statements))
        return hashed, leak_check

    def _hashes_of(self, key: str, column: str) -> str:
        """Production's hashes of one masked column, as a subquery."""
        number = self.source_numbers[(key, column)]
        candidates = f" AND k{number}" if (key, column) in self.candidates else ""
        return f"(SELECT c{number} FROM {self.hash_tables[key]} WHERE c{number} IS NOT NULL{candidates})"

    def _hashes_starter(self, table: Params, columns: list[tuple[str, int]]) -> Starter:
        seed = self.fingerprint_seed
        hashes = ", ".join(
            [f"CASE WHEN length({ident(column)}::text) >= {shortest} THEN hashtextextended({ident(column)}::text, {seed}) END"
             for column, shortest in columns]
            + [f"({self.candidates[(table['key'], column)].format(value=ident(column) + '::text')})"
               for column, _ in columns if (table["key"], column) in self.candidates]
        )
        # Rows with nothing hashed (every value NULL or too short: most rows of a sparse notes column) are not sent.
        hashed = " OR ".join(f"length({ident(column)}::text) >= {shortest}" for column, shortest in columns)
        script = (
            self._snapshot_prelude()
            + f"COPY (SELECT {hashes} FROM ONLY {table['qualified']} WHERE {hashed}) TO STDOUT (FORMAT binary);\nCOMMIT;\n"
        )
        into = self.hash_tables[table["key"]]

        def start() -> Job:
            # FREEZE (the table emptied in the same transaction): the checks' scans need not set hint bits on every page.
            consumer = self.qa.psql_argv(
                "-c", f"BEGIN; TRUNCATE {into}", "-c", f"COPY {into} FROM STDIN (FORMAT binary, FREEZE)", "-c", "COMMIT"
            )
            return Pipeline(f"hashes {table['key']}", (self.prod, self.source_db, self.prod.psql_argv(), script),
                            (self.qa, self.incoming, consumer))

        return start

    def _queue_leak_scans(self, incoming: Session, scheduler: Scheduler) -> None:
        """No production value of a masked column in any unmasked text, array or JSON column of the new database: whole
        text values, array elements, and string values at any depth of a JSON document (not words inside a longer text).
        Every row of every such column is read. A finding fails the refresh before the swap, naming the columns."""
        incoming.do(f"ANALYZE {', '.join(self.hash_tables.values())}")
        seed = self.fingerprint_seed
        for table in self.plan["tables"]:
            if not table.get("leak_targets"):
                continue
            parts = []
            for column, kind in table["leak_targets"]:
                name, col = literal(column), ident(column)
                if kind == "array":
                    parts.append(f"SELECT {name} AS c, e::text AS v FROM ONLY {table['qualified']} t, unnest(t.{col}) e")
                elif kind == "json":
                    parts.append(f"SELECT {name} AS c, j #>> '{{}}' AS v FROM ONLY {table['qualified']} t, "
                                 f"jsonb_path_query(t.{col}::jsonb, 'strict $.**') j WHERE jsonb_typeof(j) = 'string'")
                else:
                    parts.append(f"SELECT {name} AS c, {col}::text AS v FROM ONLY {table['qualified']}")
            # Each column's values are grouped by their hash first: a status or country column holds a few distinct
            # values in many rows, and the join then looks up each value once. A value found counts every time it occurs.
            query = (
                "SELECT coalesce(json_agg(json_build_array(c, n, sources)), '[]') FROM ("
                "SELECT c, sum(n)::bigint AS n, array_agg(DISTINCT source) AS sources FROM ("
                "SELECT m.c, CASE WHEN s.o = 1 THEN m.n ELSE 0 END AS n, s.source FROM ("
                "SELECT cand.c, cand.n, array_agg(DISTINCT h.source) AS sources FROM ("
                f"SELECT c, hashtextextended(v, {seed}) AS f, count(*) AS n FROM ({' UNION ALL '.join(parts)}) t "
                f"WHERE length(v) >= {LEAK_MIN_LENGTH} GROUP BY 1, 2) cand "
                f"JOIN {LEAK_TABLE} h ON h.f = cand.f GROUP BY cand.c, cand.f, cand.n) m, "
                "unnest(m.sources) WITH ORDINALITY s(source, o)) x GROUP BY c) found"
            )

            def start(query: str = query, key: str = table["key"]) -> Job:
                # No merge join: blind to how distinct the hashes are, the planner would sort them all; a hash join
                # reads them once (half the CPU).
                argv = self.qa.psql_argv("-A", "-t", "-c", "SET work_mem = '256MB'", "-c", "SET enable_mergejoin = off",
                                         "-c", query)
                return Command(f"leak scan {key}", self.qa, self.incoming, argv)

            def finish(job: Job, key: str = table["key"]) -> None:
                for column, count, sources in json.loads(job.output().strip().splitlines()[-1]):
                    names = ", ".join(self.leak_sources[int(source)] for source in sorted(sources))
                    self.leaks.append(f"{key}.{column} holds {count} production values of {names}")

            scheduler.add(start, finish)

    def _schema_scan(self) -> tuple[Starter, Finisher]:
        """No production value of a masked column in the schema's text QA receives (SCHEMA_TEXT_SQL: a view's
        definition, a default, a comment, a function's body...): masking changes rows, not the schema, so such a value
        would reach QA verbatim. Every run of words of every text is looked up among production's hashes (the leak
        check's table). A finding fails the refresh before the swap, naming the object."""
        seed = self.fingerprint_seed
        query = f"""
SELECT coalesce(json_agg(json_build_array(what, sources) ORDER BY what), '[]') FROM (
  WITH texts AS MATERIALIZED (
    SELECT row_number() OVER () AS id, what, replace(body, '''''', '''') AS body
      FROM ({SCHEMA_TEXT_SQL}) t(what, body) WHERE length(body) >= {LEAK_MIN_LENGTH}),
  words AS MATERIALIZED (
    SELECT t.id, w.n, length(w.r[2]) AS len,
           sum(length(w.r[1]) + length(w.r[2])) OVER (PARTITION BY t.id ORDER BY w.n) AS e
      FROM texts t, regexp_matches(t.body, {literal(SCHEMA_WORD_RE)}, 'g') WITH ORDINALITY w(r, n)),
  candidates AS (
    SELECT DISTINCT a.id, c.v
      FROM words a CROSS JOIN generate_series(0, {SCHEMA_WINDOW - 1}) k
      JOIN words b ON b.id = a.id AND b.n = a.n + k
      JOIN texts t ON t.id = a.id,
      LATERAL (SELECT substr(t.body, (a.e - a.len + 1)::int, (b.e - a.e + a.len)::int) AS whole) f,
      LATERAL (VALUES (f.whole), (rtrim(f.whole, '.'))) c(v)
     WHERE b.e - a.e + a.len <= {SCHEMA_CANDIDATE_LENGTH} AND length(c.v) >= {LEAK_MIN_LENGTH})
  SELECT t.what, array_agg(DISTINCT h.source) AS sources
    FROM candidates c JOIN texts t ON t.id = c.id JOIN {LEAK_TABLE} h ON h.f = hashtextextended(c.v, {seed})
   GROUP BY t.what) found
"""

        def start() -> Job:
            argv = self.qa.psql_argv("-A", "-t", "-c", "SET work_mem = '256MB'", "-c", query)
            return Command("leak scan of the schema", self.qa, self.incoming, argv)

        def finish(job: Job) -> None:
            for what, sources in json.loads(job.output().strip().splitlines()[-1]):
                names = ", ".join(self.leak_sources[int(source)] for source in sorted(sources))
                self.schema_leaks.append(f"{what} holds production values of {names}")

        return start, finish

    def _end_leak_check(self, incoming: Session) -> None:
        incoming.do(f"DROP SCHEMA {LEAK_SCHEMA} CASCADE")
        found = []
        if self.leaks:
            found.append("masked production values found unmasked in QA: " + "; ".join(self.leaks)
                         + "; add masking rules for these columns")
        if self.schema_leaks:
            found.append("production values of masked columns written into production's schema, which QA would receive "
                         "verbatim: " + "; ".join(self.schema_leaks) + "; take them out of the schema (a literal in a view "
                         "or a default, a comment)")
        if found:
            raise RefreshError("leak check failed, " + "; ".join(found))

    def _check_drift(self, tables: list[Params]) -> None:
        """The plan was made from an earlier read of the catalog: refuse to copy a table it does not describe."""
        planned = {t["key"]: [list(pair) for pair in t["signature"]] for t in self.plan["tables"]}
        carry = set(self.plan["carry_over"])
        actual = {}
        guarded = sorted(key_of(t["schema"], t["name"]) for t in tables if t.get("row_security")
                         and key_of(t["schema"], t["name"]) in planned)
        if guarded:
            raise RefreshError(f"table {', '.join(guarded)} has row-level security enabled and production's reader role "
                               "does not bypass it: ALTER ROLE <reader> BYPASSRLS (see README, the reader role)")
        for table in tables:
            if f"{table['schema']}.{table['name']}" in carry or (table.get("root") and carry_key(table["root"]) in carry):
                continue
            actual[key_of(table["schema"], table["name"])] = [[c["name"], c["type"]] for c in table["columns"]]
        if actual != planned:
            changed = sorted((set(actual) ^ set(planned)) | {k for k in set(actual) & set(planned) if actual[k] != planned[k]})
            raise RefreshError(
                f"production's schema changed since the plan was made ({', '.join(changed)}); run the refresh again"
            )

    def _create_incoming(self, control: Session, database: Params) -> None:
        """A new, empty database with production's encoding and collation (they decide sort order and indexes)."""
        options = ["TEMPLATE template0", f"ENCODING {literal(database['encoding'])}"]
        if database.get("datlocprovider") == "i" and database.get("daticulocale"):
            options += ["LOCALE_PROVIDER icu", f"ICU_LOCALE {literal(database['daticulocale'])}"]
        options += [f"LC_COLLATE {literal(database['datcollate'])}", f"LC_CTYPE {literal(database['datctype'])}"]
        if self.owner:
            options.append(f"OWNER {ident(self.owner)}")
        self.incoming_created = True  # first: a CREATE that fails half-way still gets its DROP IF EXISTS
        control.do(f"CREATE DATABASE {ident(self.incoming)} {' '.join(options)}")
        # At once: the next refresh drops only what a refresh marked (a kill between the two leaves it to a person).
        control.do(mark_leftover_sql(self.incoming, self.qa_db, "incoming"))

    def _carry_over_sources(self, qa_exists: bool, incoming: Session) -> tuple[list[tuple[str, str, list[str]]], list[str]]:
        """Carried-over tables that production's schema also has (their rows are copied) and those only QA has
        (dumped from QA and restored whole)."""
        if not self.plan["carry_over"] or not qa_exists:
            return [], []
        current = self._session(self.qa, self.qa_db, "reading QA's carried-over tables")
        in_schema: list[tuple[str, str, list[str]]] = []
        qa_only: list[str] = []
        for entry in self.plan["carry_over"]:
            schema, name = entry.split(".", 1)
            table = qualified(schema, name)
            if current.ask(f"SELECT to_regclass({literal(table)}) IS NOT NULL") != "t":
                continue  # QA does not have it (yet): nothing to keep
            if incoming.ask(f"SELECT to_regclass({literal(table)}) IS NOT NULL") == "t":
                mine = json.loads(current.ask(columns_sql(table)))
                theirs = json.loads(incoming.ask(columns_sql(table)))
                in_schema.append((schema, name, [column for column in theirs if column in mine]))
            else:
                archive = os.path.join(self.workdir, f"carry-{len(qa_only)}.dump")
                self.qa.run(
                    [
                        self.qa.program("pg_dump"),
                        "-w",
                        "--format=custom",
                        "--no-sync",
                        "--no-owner",
                        "--no-privileges",
                        f"--table={table}",
                        f"--file={archive}",
                    ],
                    self.qa_db,
                    f"dumping QA's {entry}",
                )
                qa_only.append(archive)
                self.qa_only_tables.append((schema, name))
        current.close()
        return in_schema, qa_only

    def _chunks(self, table: Params) -> list[str | None]:
        """ctid ranges that split a masked table between the parallel slots: masking is production CPU, and one
        session uses one core. Other tables load in one piece, which keeps COPY FREEZE."""
        pages = self.pages.get(table["key"], 0)
        costly = any(check["kind"] == "fingerprint" for check in table["checks"])  # derived values: CPU on production
        count = self.jobs if costly and pages >= CHUNK_MIN_PAGES else 1
        if count <= 1:
            return [None]
        bounds = [pages * i // count for i in range(1, count)]
        ranges: list[str | None] = []
        for index in range(count):
            low = f"ctid >= '({bounds[index - 1]},0)'::tid" if index > 0 else None
            # The last range is open: pages added since relpages was counted still belong to it.
            high = f"ctid < '({bounds[index]},0)'::tid" if index < count - 1 else None
            ranges.append(" AND ".join(part for part in (low, high) if part))
        return ranges

    def _copy_starter(self, table: Params, where: str | None) -> Starter:
        def start() -> Pipeline:
            binary = bool(table["binary_copy"])
            salt_hex = self.params["salt"].encode().hex()
            # The salt reaches production on stdin, hex-encoded so no quoting can break out of the literal.
            script = (
                self._snapshot_prelude()
                + f"SELECT set_config({literal(SALT_SETTING)}, convert_from(decode({literal(salt_hex)}, 'hex'), 'UTF8'), false)"
                + " \\g /dev/null\n"
                + f"COPY (SELECT {table['select_list']} FROM ONLY {table['qualified']}"
                + (f" WHERE {where}" if where else "")
                + ") TO STDOUT"
                + (" (FORMAT binary)" if binary else "")
                + ";\nCOMMIT;\n"
            )
            into = f"COPY {table['qualified']} ({table['column_list']}) FROM STDIN"
            if where is None:
                # FREEZE writes the rows already frozen, so the checks and index builds that read them next do not
                # rewrite every page for hint bits; it needs the table truncated in the same transaction.
                consumer = self.qa.psql_argv(
                    "-c",
                    f"BEGIN; TRUNCATE ONLY {table['qualified']}",
                    "-c",
                    f"{into} ({'FORMAT binary, ' if binary else ''}FREEZE)",
                    "-c",
                    "COMMIT",
                )
            else:
                consumer = self.qa.psql_argv("-c", into + (" (FORMAT binary)" if binary else ""))
            label = f"copy {table['key']}" + (f" [{where}]" if where else "")
            return Pipeline(label, (self.prod, self.source_db, self.prod.psql_argv(), script), (self.qa, self.incoming, consumer))

        return start

    def _queue_copy(self, table: Params, scheduler: Scheduler, hashed: list[tuple[str, int]]) -> None:
        chunks = self._chunks(table)
        fingerprinted = [check for check in table["checks"] if check["kind"] == "fingerprint"]
        # The copy's parts, and the load of production's hashes when the per-column checks read them.
        remaining = [len(chunks) + (1 if fingerprinted else 0)]

        def analyze(_job: Job | None = None) -> None:
            scheduler.add(self._analyze_starter(table), self._read_counts(table))

        def indexes() -> None:
            # After the checks: a primary key takes an exclusive lock the checks' scans would wait for.
            if self.early_post_data.get(table["key"]):
                scheduler.add(self._indexes_starter(table["key"]), analyze)
            else:
                analyze()

        def finish_check(job: Job) -> None:
            self._read_collisions(table, fingerprinted, job)
            indexes()

        def finish(_job: Job) -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                if fingerprinted:
                    scheduler.add(self._fingerprint_starter(table, fingerprinted), finish_check)
                else:
                    indexes()

        for where in chunks:
            scheduler.add(self._copy_starter(table, where), finish)
        if hashed:
            scheduler.add(self._hashes_starter(table, hashed), finish if fingerprinted else None)

    def _fingerprint_starter(self, table: Params, checks: list[Params]) -> Starter:
        """No masked value of a column equals a production value of that column: production's keyed hashes of the
        table's masked columns (loaded once, with the leak check's, by _hashes_starter) against the new table, compared
        in QA, every column in one scan.

        A column that can be re-masked (fake phones: real numbers are dense, so a few fakes are real ones) has just the
        rows that collided re-drawn, found again by ctid, a bounded number of rounds.
        """
        seed = self.fingerprint_seed
        sources = {check["column"]: self.source_numbers[(table["key"], check["column"])] for check in checks}

        def colliding(value: str, column: str) -> str:
            production = self._hashes_of(table["key"], column)  # a hashed subplan: built once
            return f"{value} IS NOT NULL AND {value}::text <> '' AND hashtextextended({value}::text, {seed}) IN {production}"

        # One scan of the table for all its masked columns: {source: [values equal to production's, re-masked]}.
        counted = (
            "SELECT jsonb_object_agg(u.s, jsonb_build_array(u.n, 0)) FROM unnest("
            f"ARRAY[{', '.join(str(source) for source in sources.values())}], (SELECT ARRAY["
            + ", ".join(f"count(*) FILTER (WHERE {colliding(ident(column), column)})" for column in sources)
            + f"] FROM ONLY {table['qualified']})) u(s, n)"
        )
        repairs = []
        for check in checks:
            if not check.get("repair_sql"):
                continue
            name = check["column"]
            column, source = ident(name), sources[name]
            redrawn = check["repair_sql"].format(value=column, round="r::text")
            repairs.append(
                f"IF (verdict -> '{source}' ->> 0)::bigint > 0 THEN "
                f"SELECT array_agg(ctid) INTO bad FROM ONLY {table['qualified']} WHERE {colliding(column, name)}; "
                f"fixed := coalesce(cardinality(bad), 0); FOR r IN 1..{REPAIR_ROUNDS} LOOP EXIT WHEN bad IS NULL; "
                f"WITH redrawn AS (UPDATE ONLY {table['qualified']} SET {column} = {redrawn} WHERE ctid = ANY (bad) "
                f"RETURNING ctid, {column} AS value) "
                f"SELECT array_agg(ctid) FILTER (WHERE {colliding('value', name)}) INTO bad FROM redrawn; END LOOP; "
                f"verdict := verdict || jsonb_build_object('{source}', jsonb_build_array(coalesce(cardinality(bad), 0), fixed)); "
                "END IF;"
            )
        block = (
            "DO $relpromote$ DECLARE verdict jsonb; fixed bigint; bad tid[]; BEGIN "
            f"{counted} INTO verdict; " + " ".join(repairs) + " "
            "PERFORM set_config('relpromote.verdict', verdict::text, false); END $relpromote$"
        )
        statements = [
            "SET work_mem = '256MB'",  # the hashes stay in memory: a hashed lookup, not a rescan per row
            block,
            "SELECT current_setting('relpromote.verdict')",
        ]

        def start() -> Job:
            argv = self.qa.psql_argv("-A", "-t", *(arg for statement in statements for arg in ("-c", statement)))
            return Command(f"verify {table['key']}", self.qa, self.incoming, argv)

        return start

    def _analyze_starter(self, table: Params) -> Starter:
        """Statistics for QA's first queries (instead of waiting for autovacuum) and, in the same job, the counts the
        verification needs: rows, and values a null or fixed rule should not have left."""
        parts = ["count(*)"]
        for check in table["checks"]:
            column = ident(check["column"])
            if check["kind"] == "all_null":
                parts.append(f"count(*) FILTER (WHERE {column} IS NOT NULL)")
            elif check["kind"] == "fixed_or_null":
                parts.append(f"count(*) FILTER (WHERE {column} IS NOT NULL AND {column} IS DISTINCT FROM {check['fixed_sql']})")
        counts = f"SELECT {', '.join(parts)} FROM ONLY {table['qualified']}"

        def start() -> Job:
            argv = self.qa.psql_argv("-A", "-t", "-c", f"ANALYZE {table['qualified']}", "-c", counts)
            return Command(f"analyze {table['key']}", self.qa, self.incoming, argv)

        return start

    def _read_counts(self, table: Params) -> Finisher:
        def finish(job: Job) -> None:
            self.qa_counts[table["key"]] = [int(value) for value in job.output().strip().splitlines()[-1].split("|")]

        return finish

    def _indexes_starter(self, key: str) -> Starter:
        def start() -> Job:
            listing = self._listing_file(f"early-{len(self.early_files)}", self.early_post_data[key])
            self.early_files.append(listing)
            argv = self._restore_argv(self.archive, listing=listing)
            return Command(f"indexes {key}", self.qa, self.incoming, argv, options=RESTORE_OPTIONS)

        return start

    def _read_collisions(self, table: Params, checks: list[Params], job: Job) -> None:
        verdict = json.loads(job.output().strip().splitlines()[-1])
        for check in checks:
            count, remasked = verdict.get(str(self.source_numbers[(table["key"], check["column"])]), (0, 0))
            column = f"{table['key']}.{check['column']}"
            if int(count):
                self.collisions[column] = int(count)
            if int(remasked):
                self.remasked[column] = int(remasked)

    def _carry_starter(self, schema: str, name: str, columns: list[str]) -> Starter:
        table = qualified(schema, name)
        column_list = ", ".join(ident(c) for c in columns)

        def start() -> Pipeline:
            script = f"COPY (SELECT {column_list} FROM ONLY {table}) TO STDOUT;\n"
            consumer = self.qa.psql_argv(
                "-c", f"BEGIN; TRUNCATE ONLY {table}", "-c", f"COPY {table} ({column_list}) FROM STDIN (FREEZE)", "-c", "COMMIT"
            )
            return Pipeline(
                f"carry over {key_of(schema, name)}",
                (self.qa, self.qa_db, self.qa.psql_argv(), script),
                (self.qa, self.incoming, consumer),
            )

        return start

    def _set_sequences(self, incoming: Session, sequences: list[list[Any]], qa_exists: bool) -> None:
        """Production's sequence positions (not in a schema-only dump); carried-over tables keep QA's."""
        values = {str(name): int(value) for name, value in sequences}
        if qa_exists and self.plan["carry_over"]:
            current = self._session(self.qa, self.qa_db, "reading QA's sequences")
            tables = ", ".join(literal(qualified(*entry.split(".", 1))) for entry in self.plan["carry_over"])
            owned = json.loads(
                current.ask(
                    "SELECT coalesce(json_agg(json_build_array(quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename), "
                    "s.last_value))::jsonb, '[]') FROM pg_sequences s "
                    "JOIN pg_depend d ON d.objid = (quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename))::regclass "
                    "AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
                    "WHERE s.last_value IS NOT NULL "
                    f"AND d.refobjid IN (SELECT to_regclass(t) FROM unnest(ARRAY[{tables}]::text[]) t)"
                )
            )
            current.close()
            values.update({str(name): int(value) for name, value in owned})
        if values:
            calls = ", ".join(f"setval(to_regclass({literal(name)}), {value}, true)" for name, value in sorted(values.items()))
            incoming.ask(f"SELECT count(*) FROM (SELECT {calls}) s")

    def _verify(self, prod_counts: list[Any]) -> dict[str, int]:
        """Row counts equal production's (same snapshot); no masked column holds a production value."""
        rows: dict[str, int] = {}
        problems: list[str] = []
        for table, expected in zip(self.plan["tables"], prod_counts, strict=True):
            plain = [check for check in table["checks"] if check["kind"] != "fingerprint"]
            values = self.qa_counts[table["key"]]
            rows[table["key"]] = values[0]
            if values[0] != int(expected):
                problems.append(f"{table['key']} has {values[0]} rows, production {int(expected)}")
            for check, bad in zip(plain, values[1:], strict=True):
                if bad:
                    wanted = "NULL" if check["kind"] == "all_null" else "the fixed value"
                    problems.append(f"{table['key']}.{check['column']} keeps {bad} values that are not {wanted}")
        for column, count in sorted(self.collisions.items()):
            problems.append(f"{column}: {count} masked values equal production values of that column")
        if problems:
            raise RefreshError("verification failed: " + "; ".join(problems))
        return rows

    def summary_on_failure(self, message: str) -> dict[str, Any]:
        return self._summary("failed", message=message)

    def _summary(
        self,
        result: str,
        tables: dict[str, int] | None = None,
        snapshot_time: str | None = None,
        previous: str | None = None,
        message: str = "",
    ) -> dict[str, Any]:
        return {
            "result": result,
            "source_database": self.source_db,
            "qa_database": self.qa_db,
            "snapshot_time": snapshot_time or None,
            "started_at": self.started_at.isoformat(),
            "duration_seconds": round(time.monotonic() - self.clock, 3),
            "tables": tables or {},
            "masked_columns": {t["key"]: list(t["masked"]) for t in self.plan["tables"] if t["masked"]},
            "carried_over": dict(self.carried_over),
            "previous_database": previous,
            "remasked": dict(self.remasked),
            "phases": dict(self.phases),
            "warnings": list(self.plan.get("warning_lines") or []),
            "message": message,
        }

    def abandon(self) -> None:
        """After a failure or an interruption: stop everything and drop the new database. QA's own was never touched."""
        self.children.kill_all()
        if not self.incoming_created:
            return
        try:
            cleanup = Session(self.qa, self.maintenance_db, "dropping the incoming database")
            try:
                drop_database(cleanup, self.incoming)
            finally:
                cleanup.close()
        except RefreshError as exc:
            self.warn(f"the incoming database {self.incoming} is left behind ({exc.message}); the next refresh drops it")

    def close(self) -> None:
        for session in self.sessions:
            session.close()
        self.prod.close()
        self.qa.close()


