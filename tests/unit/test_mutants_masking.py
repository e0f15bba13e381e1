"""relpromote/masking.py's decisions, pinned exactly (issue 18's mutation score): each refusal of a rule or of a rule
for a column, with its whole reason; which columns look personal and why; how a masked column is checked; the
invented name lists every relpromote version must share. What the generated SQL does on a real server is proven by
tests/integration/test_qa_refresh_engine.py (see tests/MUTANTS.md)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from relpromote import masking
from relpromote.masking import (
    Column,
    ColumnRule,
    FakeEmailRule,
    FakeNameRule,
    FakePhoneRule,
    FixedRule,
    FormatPseudonymRule,
    KeepRule,
    MaskingError,
    NullRule,
    PartialRule,
    PseudonymRule,
)

RULE = TypeAdapter(ColumnRule)
TEXT = Column(name="notes", type="text", base_type="text")
ID = Column(name="id", type="bigint", base_type="int8", not_null=True)


@pytest.mark.parametrize(("written", "expected"), [
    ({"fake_name": None}, FakeNameRule()),
    ({"fake_phone": {"unique": True}}, FakePhoneRule(unique=True)),
    ({"format_pseudonym": 2}, FormatPseudonymRule(keep_prefix=2)),
    ({"fixed": True}, FixedRule(value=True)),
    ({"fixed": 1.5}, FixedRule(value=1.5)),
    ({"fake_email": ".Qa.Example.COM."}, FakeEmailRule(domain="qa.example.com")),
    ({"fake_email": "localhost"}, FakeEmailRule(domain="localhost")),
    ({"kind": "partial", "keep_last": 64}, PartialRule(keep_last=64)),
    ("format_pseudonym", FormatPseudonymRule(keep_prefix=0)),
])
def test_each_shorthand_means_its_rule(written: Any, expected: ColumnRule) -> None:
    assert RULE.validate_python(written) == expected


@pytest.mark.parametrize(("written", "reason"), [
    ("fake_ssn", "unknown masking rule 'fake_ssn'; use one of keep, null, fixed, pseudonym, format_pseudonym, fake_email, fake_name, "
                 "fake_phone, partial"),
    ({"fake_ssn": 1}, "unknown masking rule 'fake_ssn'; use one of keep, null, fixed, pseudonym, format_pseudonym, fake_email, "
                      "fake_name, fake_phone, partial"),
    ("fixed", "fixed needs a value: write {fixed: VALUE}"),
    ({"keep": 1}, "keep takes no argument; write just keep"),
    ({"fake_email": "gmail.com"}, "'gmail.com' could deliver mail; use a reserved domain such as example.invalid or qa.test"),
    ({"fake_email": "notexample.com"}, "'notexample.com' could deliver mail"),
    ({"fake_email": "a..b invalid"}, "'a..b invalid' is not a domain name"),
    ({"fake_email": "-x.test"}, "'-x.test' is not a domain name"),
    ({"partial": 65}, "less than or equal to 64"),
    ({"format_pseudonym": 17}, "less than or equal to 16"),
    ({"format_pseudonym": -1}, "greater than or equal to 0"),
    ({"partial": {"mask_char": "##"}}, "at most 1 character"),
])
def test_each_bad_rule_is_refused_with_its_reason(written: Any, reason: str) -> None:
    with pytest.raises(ValidationError) as refused:
        RULE.validate_python(written)
    assert reason in str(refused.value)


def test_a_mapping_of_two_keys_or_with_a_kind_is_read_as_the_rule_itself() -> None:
    assert masking._normalize_rule({"kind": "keep"}) == {"kind": "keep"}
    assert masking._normalize_rule({"partial": 1, "fixed": 2}) == {"partial": 1, "fixed": 2}
    assert masking._normalize_rule(7) == 7


@pytest.mark.parametrize(("rule", "column", "reason"), [
    (NullRule(), ID, "column id (bigint) is NOT NULL, so it cannot be masked with null; use fixed or pseudonym"),
    (PseudonymRule(), Column(name="n", type="integer", base_type="int4"),
     "column n (integer): pseudonym needs a text, bigint or uuid column (a 32-bit integer has too few values to stay unique); "
     "surrogate keys hold nothing personal: keep them"),
    (PseudonymRule(), Column(name="c", type="character varying(16)", base_type="varchar", max_length=16),
     "column c (character varying(16)) is shorter than the 17 characters pseudonym needs; use partial, fixed or null"),
    (FakeEmailRule(domain="qa.test"), Column(name="e", type="character varying(24)", base_type="varchar", max_length=24),
     "column e (character varying(24)) is shorter than the 25 characters fake_email needs; use partial, fixed or null"),
    (FakeNameRule(unique=True), Column(name="f", type="character varying(32)", base_type="varchar", max_length=32),
     "column f (character varying(32)) is shorter than the 33 characters fake_name with unique needs; use partial, fixed or null"),
    (FormatPseudonymRule(), ID, "column id (bigint): format_pseudonym needs a character column (text, varchar, char)"),
    (FakePhoneRule(), Column(name="p", type="jsonb", base_type="jsonb"), "column p (jsonb): fake_phone needs a character column (text, varchar, char)"),
])
def test_each_rule_that_cannot_fit_its_column_says_why(rule: ColumnRule, column: Column, reason: str) -> None:
    with pytest.raises(MaskingError) as refused:
        masking.mask_expression(rule, column)
    assert str(refused.value) == reason


@pytest.mark.parametrize(("rule", "length"), [(PseudonymRule(), 17), (FakeEmailRule(domain="qa.test"), 25), (FakeNameRule(unique=True), 33)])
def test_a_column_exactly_long_enough_fits(rule: ColumnRule, length: int) -> None:
    column = Column(name="c", type=f"character varying({length})", base_type="varchar", max_length=length)
    assert masking.mask_expression(rule, column).endswith(f" AS character varying({length}))")


def test_every_text_base_type_takes_text_rules() -> None:
    for base in ("text", "varchar", "bpchar", "citext", "name"):
        column = Column(name="c", type=base, base_type=base)
        assert column.is_text and masking.mask_expression(PartialRule(), column).startswith("CAST(CASE WHEN length(")


def test_quoting_refuses_nul_in_names_and_values_and_qualifies_names() -> None:
    with pytest.raises(MaskingError) as name:
        masking.quote_ident("a\x00b")
    assert str(name.value) == "identifiers cannot contain NUL"
    with pytest.raises(MaskingError) as value:
        masking.quote_literal("a\x00b")
    assert str(value.value) == "text values cannot contain NUL"
    assert masking.qualified_name('s"x', "T") == '"s""x"."T"'


def test_fixed_values_are_written_as_postgresql_reads_them() -> None:
    assert masking.mask_expression(FixedRule(value=False), TEXT) == "CASE WHEN \"notes\" IS NULL THEN NULL ELSE CAST(E'false' AS text) END"
    assert masking.mask_expression(FixedRule(value=0), TEXT) == "CASE WHEN \"notes\" IS NULL THEN NULL ELSE CAST(E'0' AS text) END"
    check = masking.check_for(FixedRule(value=False), TEXT)
    assert check == masking.Check(column="notes", kind="fixed_or_null", fixed_sql="CAST(E'false' AS text)")


def test_a_fixed_text_keeps_its_case_and_a_fixed_rule_without_a_value_says_so_exactly() -> None:
    assert masking.mask_expression(FixedRule(value="Redacted"), TEXT) == "CASE WHEN \"notes\" IS NULL THEN NULL ELSE CAST(E'Redacted' AS text) END"
    assert masking.check_for(FixedRule(value="Redacted"), TEXT) == masking.Check(column="notes", kind="fixed_or_null",
                                                                               fixed_sql="CAST(E'Redacted' AS text)")
    with pytest.raises(ValidationError) as refused:
        RULE.validate_python("fixed")
    assert [error["msg"] for error in refused.value.errors()] == ["Value error, fixed needs a value: write {fixed: VALUE}"]


def test_how_each_rule_is_checked_on_qa() -> None:
    assert masking.check_for(NullRule(), TEXT) == masking.Check(column="notes", kind="all_null")
    assert masking.check_for(PseudonymRule(), TEXT) == masking.Check(column="notes", kind="fingerprint",
                                                                     candidates_sql="length({value}) = 17 AND left({value}, 1) = 'p'")
    assert masking.check_for(PseudonymRule(), ID) == masking.Check(column="id", kind="fingerprint")
    assert masking.check_for(FakeNameRule(unique=True), TEXT) == masking.Check(column="notes", kind="fingerprint",
                                                                               candidates_sql="{value} ~ '^[A-Z][a-z]+ [A-Z][a-z]+$'")
    assert masking.check_for(FormatPseudonymRule(), TEXT) == masking.Check(column="notes", kind="fingerprint")
    names = masking.check_for(FakeNameRule(), TEXT)
    # A str.format template: the braces of the array literal are doubled.
    assert names is not None and names.candidates_sql == (
        "split_part({value}, ' ', 1) = ANY ('{{" + ",".join(masking.GIVEN_NAMES) + "}}'::text[]) "
        "AND split_part({value}, ' ', 2) = ANY ('{{" + ",".join(masking.FAMILY_NAMES) + "}}'::text[])")
    exact = Column(name="n", type="character varying(19)", base_type="varchar", max_length=19)
    assert masking.check_for(FakeNameRule(), exact).candidates_sql is not None, "a column as long as the longest name keeps the shortcut"  # type: ignore[union-attr]
    short = Column(name="n", type="character varying(18)", base_type="varchar", max_length=18)
    assert masking.check_for(FakeNameRule(), short).candidates_sql is None  # type: ignore[union-attr]
    unique_phone = masking.check_for(FakePhoneRule(unique=True), TEXT)
    assert unique_phone is not None and unique_phone.repair_sql is not None and unique_phone.repair_sql != masking.check_for(FakePhoneRule(), TEXT).repair_sql  # type: ignore[union-attr]


def test_the_rule_to_use_for_a_unique_column() -> None:
    assert masking.unique_misfit(PartialRule()) == "format_pseudonym (same length and character classes) or pseudonym"


def test_which_columns_a_leak_can_hide_in() -> None:
    kinds = {base: masking.leak_target_kind(Column(name="c", type=base, base_type=base))
             for base in ("text", "varchar", "_text", "_varchar", "_int4", "json", "jsonb", "int4", "_", "bytea")}
    assert kinds == {"text": "text", "varchar": "text", "_text": "array", "_varchar": "array", "_int4": None, "json": "json",
                     "jsonb": "json", "int4": None, "_": None, "bytea": None}


@pytest.mark.parametrize(("name", "snake"), [
    ("billingEmail", "billing_email"), ("BillingEmail", "billing_email"), ("billing-email", "billing_email"),
    ("Billing Email", "billing_email"), ("HTTPServer", "http_server"), ("--x--", "x"), ("ipV4Addr", "ip_v4_addr"), ("a1B", "a1_b"), ("Xerox", "xerox"),
])
def test_names_are_matched_in_snake_case(name: str, snake: str) -> None:
    assert masking.snake_case(name) == snake


@pytest.mark.parametrize(("column", "content", "reason"), [
    (TEXT, {"email": 3, "phone": 0, "card": 1}, "sampled values look like 1 payment card numbers (Luhn), 3 email addresses"),
    (ID, {"phone": 2}, "sampled values look like 2 phone numbers"),
    (ID, {"iban": 1}, "sampled values look like 1 iban"),
    (Column(name="customerEMail", type="integer", base_type="int4"), {"email": 0}, "its name suggests personal data (mail)"),
    (Column(name="homePostcode", type="integer", base_type="int4"), None, "its name suggests personal data (postcode)"),
    (Column(name="PostalCode", type="integer", base_type="int4"), None, None),
    (Column(name="tags", type="text[]", base_type="_text"), None, "its type (text[]) commonly holds personal data"),
    (Column(name="mac", type="macaddr", base_type="macaddr"), None, "its type (macaddr) commonly holds personal data"),
    (Column(name="emailed_at", type="timestamp", base_type="timestamp"), None, None),
    (Column(name="ids", type="integer[]", base_type="_int4"), None, None),
])
def test_why_an_unlisted_column_looks_personal(column: Column, content: dict[str, int] | None, reason: str | None) -> None:
    assert masking.personal_data_reason(column, content) == reason


def test_warnings_name_table_column_type_and_reason() -> None:
    columns = [Column(name="mail", type="integer", base_type="int4"), ID]
    warnings = masking.unlisted_personal_columns("shop.users", columns, {}, {"id": {"card": 2}})
    assert [str(w) for w in warnings] == [
        "shop.users.mail (integer) has no masking rule and its name suggests personal data (mail); add a rule (keep if it is safe)",
        "shop.users.id (bigint) has no masking rule and sampled values look like 2 payment card numbers (Luhn); add a rule (keep if it is safe)",
    ]
    assert masking.unlisted_personal_columns("shop.users", columns, {"id": KeepRule()}, {"id": {"card": 2}}) == warnings[:1]
    assert masking.unlisted_personal_columns("shop.users", columns, {}) == warnings[:1], "no sample: the id looks like nothing"


def test_the_invented_names_are_the_same_in_every_version() -> None:
    # The lists are part of what QA data looks like: a change would make two refreshes of the same data disagree.
    given, family = masking._invented_words("given", 8), masking._invented_words("family", 10)
    assert given == masking.GIVEN_NAMES and family == masking.FAMILY_NAMES
    assert hashlib.sha256(",".join(given).encode()).hexdigest() == "5c263c403dab86af48bd2b492964144defa35b32c25b2bd40ad3f331c09781a9"
    assert hashlib.sha256(",".join(family).encode()).hexdigest() == "f98a07178e97263c7c1ff1dd966ba0b89546b40b6d9d64ecd7c06e8c2214a043"
    for words, width in ((given, 8), (family, 10)):
        assert len(set(words)) == 256 and all(w.isalpha() and w[0].isupper() and w[1:].islower() and len(w) <= width for w in words)
    table, width = masking._word_table(["Ab", "C"], 3)
    assert (bytes.fromhex(table), width) == (b"Ab C  ", 3)
    assert masking.FAKE_NAME_LENGTH == 19 and masking.UNIQUE_FAKE_NAME_LENGTH == 33
