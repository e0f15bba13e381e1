"""Refreshing QA's database from production, masked: the configuration, the plan and the result.

This module owns the decisions of a refresh and nothing that acts: which production tables are
copied and with which SELECT list, which columns are masked and how QA proves it, which QA tables
are carried over, what `--dry-run` warns about, and the summary a refresh leaves in the ledger
and prints as one JSON line. The role `qa_data_refresh` acts on a plan made here: its filter
plugin calls `plan_refresh()` with the catalog the role's module read from production.

The config (`refresh:` in relpromote.yml):

    refresh:
      source: {environment: production, host: prod-db-1, user: relpromote_reader,
               password_var: vault_relpromote_reader_password}
      target: {environment: qa, host: qa-db-1}
      database: shop
      carry_over: [qa_fixtures]
      salt: {file: ~/.config/relpromote/refresh-salt}    # or {command: "pass show refresh-salt"}
      masking:
        customers: {email: fake_email, full_name: fake_name, phone: fake_phone, card_number: {partial: 4}}
        orders: {notes: null}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from relpromote.errors import BadInput
from relpromote.masking import (
    Check,
    Column,
    ColumnRule,
    MaskingError,
    MaskingRules,
    PersonalDataWarning,
    check_for,
    leak_target_kind,
    mask_expression,
    qualified_name,
    quote_ident,
    unique_misfit,
    unlisted_personal_columns,
)
from relpromote.secret import SecretSource

ENV_NAME = r"^[a-z][a-z0-9_-]{0,62}$"
# PostgreSQL names are at most 63 bytes and the incoming copy is "<db>__incoming_YYYYmmddTHHMMSS" (+25).
DATABASE_NAME = r"^[A-Za-z_][A-Za-z0-9_$-]{0,37}$"
TABLE_KEY = r"^[^.\s\"]+(\.[^.\s\"]+)?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- configuration ----
class SourceDatabase(_Strict):
    """Production's database server, as the QA database host reaches it. Only ever read."""

    environment: Annotated[str, Field(pattern=ENV_NAME)] = "production"
    host: str  # an inventory host of that environment
    address: str | None = None  # how the QA host reaches it; default: the inventory host's ansible_host
    port: Annotated[int, Field(ge=1, le=65535)] = 5432
    user: str = "relpromote_reader"  # member of pg_read_all_data, nothing else
    password_var: str | None = "vault_relpromote_reader_password"  # a variable of that environment's vault
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"


class TargetDatabase(_Strict):
    """QA's database server; the refresh runs on this host and connects locally."""

    environment: Annotated[str, Field(pattern=ENV_NAME)] = "qa"
    host: str
    socket_dir: str = "/var/run/postgresql"
    port: Annotated[int, Field(ge=1, le=65535)] = 5432
    user: str = "postgres"  # needs CREATEDB, ownership of the QA database, pg_signal_backend
    password_var: str | None = None
    owner: str | None = None  # owner of the refreshed database and its objects; default: user


class RefreshConfig(_Strict):
    source: SourceDatabase
    target: TargetDatabase
    database: Annotated[str, Field(pattern=DATABASE_NAME)]
    target_database: Annotated[str, Field(pattern=DATABASE_NAME)] | None = None
    carry_over: list[Annotated[str, Field(pattern=TABLE_KEY)]] = []
    # The masking salt is a secret like the vault password: the controller reads it from this source when the play
    # runs, in memory, never through extravars, an environment variable, a command line or a log.
    salt: SecretSource
    masking: dict[Annotated[str, Field(pattern=TABLE_KEY)], dict[str, ColumnRule]] = {}
    jobs: Annotated[int, Field(ge=1, le=16)] = 2  # tables copied at once
    min_interval: Annotated[int, Field(ge=0)] = 0  # seconds: skip if QA was refreshed more recently

    @model_validator(mode="after")
    def _consistent(self) -> RefreshConfig:
        for table in self.carry_over:
            if table in self.masking:
                raise ValueError(f"{table} is carried over from QA, so masking rules for it would never apply; remove one")
        return self

    @property
    def qa_database(self) -> str:
        return self.target_database or self.database


# ---- what production holds ----
class CatalogTable(_Strict):
    """One table whose rows live in production (a plain table or a partition), in column order."""

    table_schema: str = Field(alias="schema")
    name: str
    root: str | None = None  # the partitioned table it belongs to ("schema.name"), whose rules apply
    rows: int | None = None  # exact count, when asked for (dry run)
    pages: int = 0  # pg_class.relpages: an estimate of the size
    binary_copy: bool = True  # every column type is built in: COPY in binary, ~40% faster to load
    row_security: bool = False  # row-level security applies to the reader: reading it (row_security=off) is an error
    columns: tuple[Column, ...]
    content: dict[str, dict[str, int]] = {}  # dry run: per column, sampled values that look like an email, phone, card

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def key(self) -> str:
        return table_key(self.table_schema, self.name)

    @property
    def qualified(self) -> str:
        return qualified_name(self.table_schema, self.name)


class Catalog(_Strict):
    database: str
    tables: tuple[CatalogTable, ...]


def table_key(schema: str, name: str) -> str:
    """How the config, warnings and summaries name a table: `customers`, or `sales.customers` outside public."""
    return name if schema == "public" else f"{schema}.{name}"


def split_table_key(key: str) -> tuple[str, str]:
    schema, _, name = key.rpartition(".")
    return (schema or "public", name)


# ---- the plan ----
class TablePlan(_Strict):
    """How one production table reaches QA."""

    table_schema: str = Field(alias="schema")
    name: str
    key: str
    qualified: str
    columns: tuple[str, ...]  # copied columns, in order (generated columns are recomputed by QA)
    column_list: str  # the quoted list, for COPY t (...) FROM STDIN
    select_list: str  # masked expressions, for COPY (SELECT ... FROM ONLY t) TO STDOUT
    masked: tuple[str, ...]  # columns whose value is changed
    checks: tuple[Check, ...]
    binary_copy: bool
    signature: tuple[tuple[str, str], ...]  # (column, type) the plan was made for: the module refuses a drifted table
    expected_rows: int | None = None
    # CHECK constraints on masked columns, tried on a sample of masked rows before anything is copied:
    # (column, constraint, predicate over the table's column names) and the masked SELECT list with those names.
    probes: tuple[tuple[str, str, str], ...] = ()
    probe_select: str = ""
    # The leak check: production values of these masked columns must not appear in QA in any unmasked column of any
    # table (leak_targets: (column, "text" | "array" | "json")).
    leak_sources: tuple[str, ...] = ()
    leak_targets: tuple[tuple[str, str], ...] = ()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RefreshPlan(_Strict):
    database: str  # production's
    qa_database: str
    tables: tuple[TablePlan, ...]  # copied from production, largest first
    carry_over: tuple[str, ...]  # QA tables kept ("schema.name" keys)
    warnings: tuple[PersonalDataWarning, ...]
    warning_lines: tuple[str, ...] = ()  # the warnings as sentences, for the module's summary

    def masked_columns(self) -> dict[str, list[str]]:
        return {table.key: list(table.masked) for table in self.tables if table.masked}

    def for_module(self) -> dict[str, Any]:
        """Plain data for the module's `plan` parameter."""
        return self.model_dump(mode="json", by_alias=True)


_RULES = TypeAdapter(MaskingRules)


def parse_masking(data: Any) -> MaskingRules:
    """Validate masking rules given as plain data (role variables); BadInput names the first bad rule."""
    try:
        return _RULES.validate_python(data or {})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
        raise BadInput(f"masking.{where}: {error['msg']}") from None


def plan_refresh(
    catalog: Catalog,
    masking: Mapping[str, Mapping[str, ColumnRule]],
    *,
    carry_over: Sequence[str] = (),
    qa_database: str | None = None,
) -> RefreshPlan:
    """Decide how every production table is copied. BadInput lists every rule that does not fit.

    A rule for a table or column production does not have is an error, not a no-op: it is most
    likely a typo, and the real column would then be copied unmasked.
    """
    carry = {_normal_key(key) for key in carry_over}
    rules_by_table = {_normal_key(key): dict(rules) for key, rules in masking.items()}
    by_key = {table.key: table for table in catalog.tables}
    roots = {table.root for table in catalog.tables if table.root}
    problems: list[str] = []
    for key, rules in rules_by_table.items():
        table = by_key.get(key)
        if table is None and key not in roots:
            problems.append(f"masking.{key}: production database {catalog.database} has no table {key}")
            continue
        members = [table] if table is not None else [t for t in catalog.tables if t.root == key]
        known = {column.name for member in members for column in member.columns}
        problems += [f"masking.{key}.{name}: table {key} has no column {name}" for name in rules if name not in known]
    plans: list[TablePlan] = []
    warnings: list[PersonalDataWarning] = []
    for table in catalog.tables:
        if table.key in carry or (table.root is not None and table.root in carry):
            continue
        if table.row_security:
            problems.append(row_security_problem(table.key))
        rules = {**rules_by_table.get(table.root or "", {}), **rules_by_table.get(table.key, {})}
        expressions: list[str] = []
        masked: list[str] = []
        checks: list[Check] = []
        probes: list[tuple[str, str, str]] = []
        for column in table.columns:
            rule = rules.get(column.name)
            if rule is None:
                expressions.append(quote_ident(column.name))
                continue
            try:
                expressions.append(mask_expression(rule, column))
                check = check_for(rule, column)
            except MaskingError as exc:
                problems.append(f"masking.{table.key}.{column.name}: {exc}")
                continue
            misfit = unique_misfit(rule) if column.unique else None
            if misfit is not None:
                problems.append(f"masking.{table.key}.{column.name}: the column must stay unique (a unique index or key) "
                                f"but {rule.kind} can give two rows the same value; use {misfit}")
            if check is not None:
                masked.append(column.name)
                checks.append(check)
                probes += [(column.name, name, re.sub(r"\bVALUE\b", quote_ident(column.name), predicate))
                           for name, predicate in column.checks]
        warnings += unlisted_personal_columns(table.key, table.columns, rules, table.content)
        plans.append(
            TablePlan(
                table_schema=table.table_schema,
                name=table.name,
                key=table.key,
                qualified=table.qualified,
                columns=tuple(column.name for column in table.columns),
                column_list=", ".join(quote_ident(column.name) for column in table.columns),
                select_list=", ".join(expressions),
                masked=tuple(masked),
                checks=tuple(checks),
                binary_copy=table.binary_copy,
                signature=tuple((column.name, column.type) for column in table.columns),
                expected_rows=table.rows,
                probes=tuple(probes),
                leak_sources=tuple(masked),
                leak_targets=tuple((column.name, kind) for column in table.columns
                                   if column.name not in masked and (kind := leak_target_kind(column)) is not None),
                probe_select=", ".join(f"{expression} AS {quote_ident(column.name)}"
                                       for expression, column in zip(expressions, table.columns, strict=True)) if probes else "",
            )
        )
    if problems:
        raise BadInput("; ".join(problems))
    # Largest first: the long copies start early, so the parallel slots finish together.
    plans.sort(key=lambda plan: -(plan.expected_rows or 0))
    qa = qa_database or catalog.database
    if not re.fullmatch(DATABASE_NAME, qa):
        raise BadInput(f"QA database name {qa!r} is too long or not a plain name (at most 38 characters: letters, digits, _ $ -)")
    return RefreshPlan(
        database=catalog.database,
        qa_database=qa,
        tables=tuple(plans),
        carry_over=tuple(sorted("{}.{}".format(*split_table_key(key)) for key in carry)),
        warnings=tuple(warnings),
        warning_lines=tuple(str(warning) for warning in warnings),
    )


def row_security_problem(key: str) -> str:
    """Why a table with row-level security cannot be copied by this reader, and the fix. The refresh reads with
    row_security=off, so a policy that would filter rows is an error rather than a silently partial copy; a policy that
    lets the reader see every row does not help (row_security=off refuses any table a policy applies to), BYPASSRLS does."""
    return (f"table {key} has row-level security enabled and production's reader role does not bypass it (its copy would "
            "be filtered or refused): ALTER ROLE <reader> BYPASSRLS (see README, the reader role)")


def _normal_key(key: str) -> str:
    return table_key(*split_table_key(key))


# ---- the result ----
class RefreshSummary(_Strict):
    """What a refresh did (or, dry, would do): printed as one JSON line and recorded in the ledger."""

    result: Literal["refreshed", "skipped", "dry_run", "failed"]
    source_database: str
    qa_database: str
    snapshot_time: datetime | None = None  # production's consistent snapshot the data comes from
    started_at: datetime | None = None
    duration_seconds: float = 0.0
    tables: dict[str, int] = {}  # rows per table, equal on both sides
    masked_columns: dict[str, list[str]] = {}
    carried_over: dict[str, int] = {}  # QA tables kept, with their rows
    previous_database: str | None = None  # QA's database before the swap, kept until the next refresh
    # The previous refresh's previous database, renamed aside by the swap and dropped as the next refresh starts (a DROP
    # DATABASE right after the copy would force a checkpoint of the whole new database while QA waits).
    retired_database: str | None = None
    remasked: dict[str, int] = {}  # "table.column": fake values re-drawn because they equalled a real one
    phases: dict[str, float] = {}  # seconds per step (snapshot, schema, copy, post_data, verify, swap) and per copy job
    warnings: list[str] = []
    message: str = ""

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def json_line(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def summary_from_result(data: Mapping[str, Any]) -> RefreshSummary:
    """The summary the role's module returned (module result `summary`, or set_stats `qa_data_refresh`)."""
    return RefreshSummary.model_validate(dict(data))


def dry_run_summary(plan: RefreshPlan, *, carried_over: Mapping[str, int] | None = None) -> RefreshSummary:
    return RefreshSummary(
        result="dry_run",
        source_database=plan.database,
        qa_database=plan.qa_database,
        tables={table.key: int(table.expected_rows or 0) for table in plan.tables},
        masked_columns=plan.masked_columns(),
        carried_over=dict(carried_over or {}),
        warnings=[str(warning) for warning in plan.warnings],
    )


# ---- config -> role variables ----
def role_vars(config: RefreshConfig, *, dry_run: bool = False) -> dict[str, Any]:
    """The extravars for playbooks/refresh_qa_data.yml, run with both the qa and the production inventory loaded.

    No secret is in here, only where to find one: passwords are Jinja expressions over the
    inventories' (vaulted) host variables and the salt is a file or a command the role reads with
    a lookup on the controller, so ansible-runner's command line and artifacts never hold a secret.
    """
    source, target = config.source, config.target
    address = source.address or f"{{{{ hostvars[{source.host!r}].ansible_host | default({source.host!r}) }}}}"
    variables: dict[str, Any] = {
        "qa_data_refresh_hosts": target.host,
        "qa_data_refresh_database": config.database,
        "qa_data_refresh_target_database": config.qa_database,
        "qa_data_refresh_source_host": address,
        "qa_data_refresh_source_port": source.port,
        "qa_data_refresh_source_user": source.user,
        "qa_data_refresh_source_sslmode": source.sslmode,
        "qa_data_refresh_target_host": target.socket_dir,
        "qa_data_refresh_target_port": target.port,
        "qa_data_refresh_target_user": target.user,
        "qa_data_refresh_target_owner": target.owner or "",
        "qa_data_refresh_masking": _plain_rules(config.masking),
        "qa_data_refresh_carry_over": list(config.carry_over),
        "qa_data_refresh_jobs": config.jobs,
        "qa_data_refresh_min_interval": config.min_interval,
        "qa_data_refresh_dry_run": dry_run,
    }
    if source.password_var:
        variables["qa_data_refresh_source_password"] = f"{{{{ hostvars[{source.host!r}][{source.password_var!r}] }}}}"
    if target.password_var:
        variables["qa_data_refresh_target_password"] = f"{{{{ hostvars[{target.host!r}][{target.password_var!r}] }}}}"
    if config.salt.file is not None:
        variables["qa_data_refresh_salt_file"] = config.salt.file
    else:
        variables["qa_data_refresh_salt_command"] = config.salt.command
    return variables


def _plain_rules(masking: Mapping[str, Mapping[str, ColumnRule]]) -> dict[str, dict[str, Any]]:
    return {table: {column: rule.model_dump(mode="json") for column, rule in rules.items()} for table, rules in masking.items()}


def dry_run_report(plan: Mapping[str, Any], qa: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The published summary of a dry run (the plan the module would execute, QA's state as inspected): tables with
    their rows, masked columns, warnings, and a message about QA's database."""
    data = dry_run_summary(RefreshPlan.model_validate(dict(plan))).model_dump(mode="json")
    if qa:
        state = "exists" if qa.get("exists") else "does not exist yet"
        last = (qa.get("last_refresh") or {}).get("refreshed_at", "never")
        left = ", ".join(qa.get("leftovers") or []) or "none"
        data["message"] = f"QA database {qa.get('database')} {state}; last refresh: {last}; leftovers: {left}"
        data["carried_over"] = dict(qa.get("carried_over") or {})
    return data
