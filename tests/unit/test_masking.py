"""relpromote.masking: rule shapes, which rules fit which columns, the SQL they produce, the warnings.

What the SQL *does* is proven against a real server in tests/integration/test_qa_refresh_engine.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from relpromote.masking import (
    SALT_SETTING,
    Column,
    ColumnRule,
    FakeEmailRule,
    FakeNameRule,
    FakePhoneRule,
    FixedRule,
    FormatPseudonymRule,
    KeepRule,
    MaskingError,
    MaskingRules,
    NullRule,
    PartialRule,
    PseudonymRule,
    check_for,
    fingerprint_sql,
    mask_expression,
    personal_data_reason,
    quote_ident,
    quote_literal,
    unique_misfit,
    unlisted_personal_columns,
)
from relpromote.refresh import parse_masking

RULE = TypeAdapter(ColumnRule)
RULES = TypeAdapter(MaskingRules)

EMAIL = Column(name="email", type="character varying(200)", base_type="varchar", not_null=True, max_length=200)
NAME = Column(name="full_name", type="text", base_type="text")
PHONE = Column(name="phone", type="text", base_type="text")
NOTES = Column(name="notes", type="text", base_type="text")
ID = Column(name="id", type="bigint", base_type="int8", not_null=True)
SMALL_ID = Column(name="legacy_id", type="integer", base_type="int4")
TOKEN = Column(name="token", type="uuid", base_type="uuid")
SHORT = Column(name="code", type="character varying(8)", base_type="varchar", max_length=8)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (None, NullRule()),
        ("null", NullRule()),
        ("keep", KeepRule()),
        ("pseudonym", PseudonymRule()),
        ("fake_email", FakeEmailRule()),
        ("fake_name", FakeNameRule()),
        ("fake_phone", FakePhoneRule()),
        ("partial", PartialRule(keep_last=4)),
        ({"partial": 2}, PartialRule(keep_last=2)),
        ({"partial": {"keep_last": 6, "mask_char": "#"}}, PartialRule(keep_last=6, mask_char="#")),
        ({"fixed": "n/a"}, FixedRule(value="n/a")),
        ({"fixed": 0}, FixedRule(value=0)),
        ({"fake_email": "qa.test"}, FakeEmailRule(domain="qa.test")),
        ({"kind": "fixed", "value": "x"}, FixedRule(value="x")),
    ],
)
def test_the_config_shorthands_mean_the_full_rules(written: Any, expected: ColumnRule) -> None:
    assert RULE.validate_python(written) == expected


@pytest.mark.parametrize(
    ("written", "complaint"),
    [
        ("fake_ssn", "unknown masking rule 'fake_ssn'"),
        ("fixed", "fixed needs a value"),
        ({"partial": 0}, "greater than or equal to 1"),
        ({"fake_email": "gmail.com"}, "could deliver mail"),
        ({"pseudonym": "x"}, "takes no argument"),
        ({"kind": "keep", "extra": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_rules_are_refused_with_a_reason(written: Any, complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        RULE.validate_python(written)


def test_rules_are_immutable() -> None:
    rule = RULE.validate_python({"partial": 4})
    with pytest.raises(ValidationError):
        rule.keep_last = 2  # type: ignore[union-attr,misc]


def test_the_suggested_config_validates() -> None:
    rules = RULES.validate_python(
        {
            "customers": {"email": "fake_email", "full_name": "fake_name", "phone": "fake_phone", "card_number": {"partial": 4}},
            "orders": {"notes": None},
        }
    )
    assert rules["orders"]["notes"] == NullRule()
    assert rules["customers"]["card_number"] == PartialRule(keep_last=4)


def test_quoting_is_safe_for_any_name_and_value() -> None:
    assert quote_ident('we"ird name') == '"we""ird name"'
    assert quote_literal("it's a \\ test") == "E'it''s a \\\\ test'"
    with pytest.raises(MaskingError):
        quote_literal("nul\x00")


def test_salted_rules_read_the_salt_from_the_session_never_from_the_sql() -> None:
    salted: list[tuple[ColumnRule, Column]] = [
        (PseudonymRule(), NAME),
        (FakeEmailRule(), EMAIL),
        (FakeNameRule(), NAME),
        (FakePhoneRule(), PHONE),
        (FakePhoneRule(unique=True), PHONE),
        (FakeNameRule(unique=True), NAME),
        (FormatPseudonymRule(keep_prefix=2), NAME),
    ]
    for rule, column in salted:
        sql = mask_expression(rule, column)
        assert f"current_setting('{SALT_SETTING}')" in sql
        # Always inside an uncorrelated scalar subquery of its own: an InitPlan, evaluated once per statement, not per row.
        in_init_plans = len(re.findall(r"\(SELECT (?:\('x' \|\| left\(md5\()?current_setting\(", sql))
        assert sql.count("current_setting(") == in_init_plans


def test_rules_that_cannot_keep_a_unique_column_unique_name_the_one_that_can() -> None:
    assert unique_misfit(FakeNameRule()) == "{fake_name: {unique: true}} (65,536 fake names are too few)"
    assert unique_misfit(FakePhoneRule()) == "{fake_phone: {unique: true}}"
    assert "format_pseudonym" in (unique_misfit(PartialRule()) or "")
    assert unique_misfit(FixedRule(value="x")) == "pseudonym"
    for safe in (PseudonymRule(), FakeEmailRule(), FakeNameRule(unique=True), FakePhoneRule(unique=True),
                 FormatPseudonymRule(), NullRule(), KeepRule()):
        assert unique_misfit(safe) is None
    rules = parse_masking({"t": {"a": {"fake_name": {"unique": True}}, "b": {"format_pseudonym": 3}, "c": "format_pseudonym"}})
    assert rules["t"]["a"] == FakeNameRule(unique=True)
    assert rules["t"]["b"] == FormatPseudonymRule(keep_prefix=3) and rules["t"]["c"] == FormatPseudonymRule()


def test_every_changing_rule_casts_back_to_the_column_type() -> None:
    for rule in (PseudonymRule(), FakeEmailRule(), FakeNameRule(), FakePhoneRule(), PartialRule(), FixedRule(value="x")):
        assert mask_expression(rule, EMAIL if isinstance(rule, FakeEmailRule | PseudonymRule) else NAME).count(" AS ") >= 1
    assert "AS character varying(200))" in mask_expression(FakeEmailRule(), EMAIL)


def test_keep_and_null() -> None:
    assert mask_expression(KeepRule(), NOTES) == '"notes"'
    assert mask_expression(NullRule(), NOTES) == "NULL::text"
    assert check_for(KeepRule(), NOTES) is None
    assert check_for(NullRule(), NOTES) is not None and check_for(NullRule(), NOTES).kind == "all_null"  # type: ignore[union-attr]


def test_null_cannot_mask_a_not_null_column() -> None:
    with pytest.raises(MaskingError, match="NOT NULL"):
        mask_expression(NullRule(), EMAIL)


def test_fixed_keeps_nulls_and_is_checked_as_fixed() -> None:
    sql = mask_expression(FixedRule(value="n/a"), NOTES)
    assert sql == "CASE WHEN \"notes\" IS NULL THEN NULL ELSE CAST(E'n/a' AS text) END"
    check = check_for(FixedRule(value=True), NOTES)
    assert check is not None and check.kind == "fixed_or_null" and check.fixed_sql == "CAST(E'true' AS text)"


def test_pseudonym_fits_text_bigint_and_uuid_but_not_small_integers() -> None:
    assert "bit(60)::bigint" in mask_expression(PseudonymRule(), ID)
    assert "::uuid" in mask_expression(PseudonymRule(), TOKEN)
    with pytest.raises(MaskingError, match="too few values"):
        mask_expression(PseudonymRule(), SMALL_ID)
    with pytest.raises(MaskingError, match="shorter than the 17 characters"):
        mask_expression(PseudonymRule(), SHORT)


def test_format_rules_need_character_columns_long_enough() -> None:
    for rule in (FakeEmailRule(), FakeNameRule(), FakePhoneRule(), PartialRule()):
        with pytest.raises(MaskingError, match="needs a character column"):
            mask_expression(rule, ID)
    with pytest.raises(MaskingError, match="shorter than"):
        mask_expression(FakeEmailRule(), SHORT)


def test_fake_email_uses_the_reserved_domain() -> None:
    assert "E'@example.invalid'" in mask_expression(FakeEmailRule(), EMAIL)
    assert "E'@qa.test'" in mask_expression(FakeEmailRule(domain="QA.test"), EMAIL)


def test_only_fake_phone_can_be_redrawn_after_a_collision() -> None:
    phone = check_for(FakePhoneRule(), PHONE)
    assert phone is not None and phone.kind == "fingerprint" and phone.repair_sql is not None
    repaired = phone.repair_sql.format(value='"phone"', round="r::text")
    assert '"phone"::text' in repaired and "r::text" in repaired
    others: list[tuple[ColumnRule, Column]] = [
        (FakeEmailRule(), EMAIL),
        (FakeNameRule(), NAME),
        (PseudonymRule(), ID),
        (PartialRule(), NAME),
    ]
    for rule, column in others:
        check = check_for(rule, column)
        assert check is not None and check.kind == "fingerprint" and check.repair_sql is None


def test_shape_rules_narrow_what_production_sends_for_the_check() -> None:
    email = check_for(FakeEmailRule(domain="qa.test"), EMAIL)
    assert email is not None and email.candidates_sql is not None
    assert email.candidates_sql.format(value="v") == "length(v) = 25 AND left(v, 1) = 'u' AND right(v, 8) = E'@qa.test'"
    partial = check_for(PartialRule(keep_last=2, mask_char="#"), NAME)
    assert partial is not None and partial.candidates_sql == "length(ltrim({value}, E'#')) <= 2"
    text_pseudonym, key_pseudonym = check_for(PseudonymRule(), NAME), check_for(PseudonymRule(), ID)
    assert text_pseudonym is not None and text_pseudonym.candidates_sql is not None
    assert key_pseudonym is not None and key_pseudonym.candidates_sql is None  # any bigint can be a pseudonym
    name = check_for(FakeNameRule(), NAME)
    assert name is not None and name.candidates_sql is not None and "= ANY ('{" in name.candidates_sql
    # A column short enough to cut a fake name could hold a cut word: no shortcut then.
    cut = check_for(FakeNameRule(), Column(name="n", type="character varying(12)", base_type="varchar", max_length=12))
    phone = check_for(FakePhoneRule(), PHONE)
    assert cut is not None and cut.candidates_sql is None
    assert phone is not None and phone.candidates_sql is None


def test_fingerprints_are_keyed_by_the_run() -> None:
    assert fingerprint_sql('"email"', 42) == 'hashtextextended(("email")::text, 42)'


@pytest.mark.parametrize(
    ("column", "flagged"),
    [
        (Column(name="status", type="text", base_type="text"), "its type (text)"),
        (Column(name="billing_email", type="integer", base_type="int4"), "(email)"),
        (Column(name="date_of_birth", type="date", base_type="date"), "(birth)"),
        (Column(name="client_ip", type="inet", base_type="inet"), "(ip)"),
        (Column(name="payload", type="jsonb", base_type="jsonb"), "its type (jsonb)"),
        (Column(name="tags", type="text[]", base_type="_text"), "its type (text[])"),
        (Column(name="amount", type="numeric(10,2)", base_type="numeric"), None),
        (Column(name="id", type="bigint", base_type="int8"), None),
        (Column(name="shipped", type="boolean", base_type="bool"), None),
    ],
)
def test_personal_looking_columns(column: Column, flagged: str | None) -> None:
    reason = personal_data_reason(column)
    if flagged is None:
        assert reason is None
    else:
        assert reason is not None and flagged in reason


def test_unlisted_personal_columns_skip_the_ones_with_a_rule() -> None:
    columns = (ID, EMAIL, NOTES, Column(name="status", type="text", base_type="text"))
    warnings = unlisted_personal_columns("orders", columns, {"email": FakeEmailRule(), "status": KeepRule()})
    assert [w.column for w in warnings] == ["notes"]
    assert str(warnings[0]).startswith("orders.notes (text) has no masking rule")
