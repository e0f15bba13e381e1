"""relpromote.refresh: the config, the plan made from production's catalog, the summary."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from relpromote.errors import BadInput
from relpromote.refresh import (
    Catalog,
    RefreshConfig,
    RefreshPlan,
    RefreshSummary,
    dry_run_summary,
    parse_masking,
    plan_refresh,
    role_vars,
    split_table_key,
    summary_from_result,
    table_key,
)

SUGGESTED: dict[str, Any] = {
    "source": {"environment": "production", "host": "prod-db-1"},
    "target": {"environment": "qa", "host": "qa-db-1"},
    "database": "shop",
    "carry_over": ["qa_fixtures"],
    "salt": {"file": "~/.config/relpromote/refresh-salt"},
    "masking": {
        "customers": {"email": "fake_email", "full_name": "fake_name", "phone": "fake_phone", "card_number": {"partial": 4}},
        "orders": {"notes": None},
    },
}


def col(name: str, type_: str = "text", base: str = "text", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "base_type": base, **extra}


CATALOG = Catalog.model_validate(
    {
        "database": "shop",
        "tables": [
            {
                "schema": "public",
                "name": "customers",
                "rows": 10,
                "pages": 1,
                "columns": [
                    col("id", "bigint", "int8", not_null=True),
                    col("email", "character varying(200)", "varchar", max_length=200),
                    col("full_name"),
                    col("phone"),
                    col("card_number"),
                    col("created_at", "timestamp with time zone", "timestamptz"),
                ],
            },
            {
                "schema": "public",
                "name": "orders",
                "rows": 30,
                "columns": [col("id", "bigint", "int8"), col("customer_id", "bigint", "int8"), col("status"), col("notes")],
            },
            {"schema": "public", "name": "qa_fixtures", "rows": 2, "columns": [col("id", "integer", "int4"), col("label")]},
            {
                "schema": "audit",
                "name": "events_2026",
                "root": "audit.events",
                "rows": 5,
                "columns": [col("id", "bigint", "int8"), col("who")],
            },
        ],
    }
)


def rules(data: dict[str, Any]) -> Any:
    return parse_masking(data)


# ---- config ----
def test_the_suggested_config_shape_validates_with_defaults() -> None:
    config = RefreshConfig.model_validate(SUGGESTED)
    assert config.source.user == "relpromote_reader" and config.source.port == 5432
    assert config.target.user == "postgres" and config.qa_database == "shop"
    assert config.masking["orders"]["notes"].kind == "null"
    assert config.jobs == 2 and config.min_interval == 0


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"salt": {"file": "a", "command": "b"}}, "exactly one of file or command"),
        ({"salt": {}}, "exactly one of file or command"),
        ({"database": "a" * 39}, "String should match pattern"),
        ({"masking": {"customers": {"email": "fake_mail"}}}, "unknown masking rule"),
        ({"carry_over": ["orders"], "masking": {"orders": {"notes": None}}}, "carried over from QA"),
        ({"jobs": 0}, "greater than or equal to 1"),
        ({"surprise": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_configs_are_refused(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        RefreshConfig.model_validate({**SUGGESTED, **change})


def test_config_is_frozen() -> None:
    config = RefreshConfig.model_validate(SUGGESTED)
    with pytest.raises(ValidationError):
        config.database = "other"  # type: ignore[misc]


def test_table_keys() -> None:
    assert table_key("public", "customers") == "customers"
    assert table_key("audit", "events") == "audit.events"
    assert split_table_key("customers") == ("public", "customers")
    assert split_table_key("audit.events") == ("audit", "events")


# ---- plan ----
def test_plan_masks_listed_columns_and_keeps_the_rest() -> None:
    plan = plan_refresh(CATALOG, rules(SUGGESTED["masking"]), carry_over=["qa_fixtures"])
    by_key = {table.key: table for table in plan.tables}
    assert set(by_key) == {"customers", "orders", "audit.events_2026"}  # qa_fixtures is carried over, not copied
    customers = by_key["customers"]
    assert customers.masked == ("email", "full_name", "phone", "card_number")
    assert customers.columns == ("id", "email", "full_name", "phone", "card_number", "created_at")
    assert customers.select_list.startswith('"id", CAST(')
    assert customers.select_list.endswith(', "created_at"')
    assert customers.column_list == '"id", "email", "full_name", "phone", "card_number", "created_at"'
    assert customers.qualified == '"public"."customers"'
    assert [c.kind for c in customers.checks] == ["fingerprint"] * 4
    assert by_key["orders"].masked == ("notes",) and by_key["orders"].checks[0].kind == "all_null"
    assert plan.carry_over == ("public.qa_fixtures",)
    assert plan.masked_columns() == {"customers": ["email", "full_name", "phone", "card_number"], "orders": ["notes"]}


def test_plan_copies_the_largest_tables_first() -> None:
    plan = plan_refresh(CATALOG, {})
    assert [t.key for t in plan.tables] == ["orders", "customers", "audit.events_2026", "qa_fixtures"]


def test_plan_warns_about_unlisted_personal_looking_columns() -> None:
    plan = plan_refresh(CATALOG, rules(SUGGESTED["masking"]), carry_over=["qa_fixtures"])
    assert {(w.table, w.column) for w in plan.warnings} == {("orders", "status"), ("audit.events_2026", "who")}


def test_partition_rules_come_from_the_partitioned_table() -> None:
    plan = plan_refresh(CATALOG, rules({"audit.events": {"who": "pseudonym"}}))
    events = next(t for t in plan.tables if t.key == "audit.events_2026")
    assert events.masked == ("who",)


@pytest.mark.parametrize(
    ("masking", "complaint"),
    [
        ({"custmers": {"email": "fake_email"}}, "production database shop has no table custmers"),
        ({"customers": {"e_mail": "fake_email"}}, "table customers has no column e_mail"),
        ({"customers": {"id": "fake_email"}}, "needs a character column"),
        ({"qa_fixtures": {"id": "pseudonym"}}, "too few values"),
    ],
)
def test_rules_that_do_not_fit_production_refuse_the_plan(masking: dict[str, Any], complaint: str) -> None:
    with pytest.raises(BadInput, match=complaint):
        plan_refresh(CATALOG, rules(masking))


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(BadInput) as caught:
        plan_refresh(CATALOG, rules({"customers": {"e_mail": "keep", "id": "fake_name"}}))
    assert "e_mail" in caught.value.message and "id" in caught.value.message


def test_a_table_with_row_level_security_the_reader_cannot_bypass_refuses_the_plan_by_name() -> None:
    guarded = CATALOG.model_copy(update={"tables": (*CATALOG.tables[:1], CATALOG.tables[1].model_copy(update={"row_security": True}),
                                                    *CATALOG.tables[2:])})
    with pytest.raises(BadInput) as caught:
        plan_refresh(guarded, rules({}))
    assert "table orders has row-level security" in caught.value.message and "BYPASSRLS" in caught.value.message
    assert "\n" not in caught.value.message
    # A carried-over table is not read from production: its row security does not matter.
    assert plan_refresh(guarded, rules({}), carry_over=["orders"]).tables


def test_bad_masking_data_names_the_rule() -> None:
    with pytest.raises(BadInput, match=r"masking\.orders\.notes"):
        parse_masking({"orders": {"notes": "blank"}})


def test_the_plan_survives_the_trip_through_ansible_as_plain_data() -> None:
    plan = plan_refresh(CATALOG, rules(SUGGESTED["masking"]), carry_over=["qa_fixtures"], qa_database="shop_qa")
    data = json.loads(json.dumps(plan.for_module()))
    assert data["tables"][0]["schema"] == "public"
    assert data["qa_database"] == "shop_qa"
    assert RefreshPlan.model_validate(data) == plan


def test_a_qa_database_name_must_leave_room_for_the_incoming_suffix() -> None:
    with pytest.raises(BadInput, match="too long"):
        plan_refresh(CATALOG, {}, qa_database="q" * 40)


# ---- summary ----
def test_dry_run_summary_reports_rows_masks_and_warnings() -> None:
    summary = dry_run_summary(plan_refresh(CATALOG, rules(SUGGESTED["masking"]), carry_over=["qa_fixtures"]))
    assert summary.result == "dry_run"
    assert summary.tables == {"orders": 30, "customers": 10, "audit.events_2026": 5}
    assert summary.rows == 45
    assert any("orders.status" in warning for warning in summary.warnings)


def test_summary_is_one_json_line() -> None:
    summary = summary_from_result(
        {
            "result": "refreshed",
            "source_database": "shop",
            "qa_database": "shop",
            "snapshot_time": "2026-11-26T10:00:00+00:00",
            "started_at": "2026-11-26T10:00:00+00:00",
            "duration_seconds": 4.2,
            "tables": {"customers": 10},
            "masked_columns": {"customers": ["email"]},
            "carried_over": {"qa_fixtures": 2},
            "previous_database": "shop__previous",
            "remasked": {},
            "phases": {"copy": 2.0},
            "warnings": [],
            "message": "",
        }
    )
    line = summary.json_line()
    assert "\n" not in line
    assert json.loads(line)["tables"] == {"customers": 10}
    assert RefreshSummary.model_validate_json(line) == summary


# ---- wiring ----
def test_role_vars_hold_no_secret_only_where_to_find_one() -> None:
    config = RefreshConfig.model_validate(SUGGESTED)
    variables = role_vars(config)
    assert variables["qa_data_refresh_hosts"] == "qa-db-1"
    assert variables["qa_data_refresh_source_host"] == "{{ hostvars['prod-db-1'].ansible_host | default('prod-db-1') }}"
    pinned = RefreshConfig.model_validate({**SUGGESTED, "source": {"host": "prod-db-1", "address": "10.0.0.5"}})
    assert role_vars(pinned)["qa_data_refresh_source_host"] == "10.0.0.5"
    assert variables["qa_data_refresh_source_password"] == "{{ hostvars['prod-db-1']['vault_relpromote_reader_password'] }}"
    assert variables["qa_data_refresh_salt_file"] == "~/.config/relpromote/refresh-salt"
    assert "qa_data_refresh_salt" not in variables
    assert variables["qa_data_refresh_masking"]["orders"]["notes"] == {"kind": "null"}
    assert parse_masking(variables["qa_data_refresh_masking"]) == config.masking
