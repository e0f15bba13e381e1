"""Masking rules for production data copied to QA, and the PostgreSQL expressions that apply them.

This module owns what a rule *means*: its configuration shape, which column types it fits, the SQL
expression production evaluates so that only masked values ever leave it, how QA proves afterwards
that no production value survived, and which unlisted columns look personal. It is pure: no I/O.

Rules, per table and column, in the config (shorthand on the left, full form on the right):

    email: fake_email                 {kind: fake_email, domain: example.invalid}
    full_name: fake_name              {kind: fake_name}
    phone: fake_phone                 {kind: fake_phone}
    card_number: {partial: 4}         {kind: partial, keep_last: 4, mask_char: "*"}
    customer_ref: pseudonym           {kind: pseudonym}
    notes: null                       {kind: "null"}
    country: {fixed: XX}              {kind: fixed, value: XX}
    status: keep                      {kind: keep}

Every rule but `keep` turns NULL into NULL (nullness is shape, not content). Rules that derive a
value from the original (pseudonym, fake_*) are keyed with a secret salt the database session
reads with `current_setting('relpromote.salt')`, so the salt is never part of the SQL text and
the same input gives the same output on every refresh: keys, joins and unique constraints keep
working. The salt is read once per statement (an InitPlan), not once per row.

The expressions use only what every PostgreSQL >= 12 has (md5, hashtextextended, translate,
substring, encode, format): no extension to install on production. They are chosen for speed:
regular expressions and per-character subqueries cost 5-15 µs a row; these cost 0.2-1 µs, fake
phone numbers about 5 µs (CPU, measured on 300k rows, jit off). A subquery that names an
intermediate value ends with FENCE, or PostgreSQL would compute the value once per reference.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

SALT_SETTING = "relpromote.salt"
# A scalar subquery is an InitPlan: evaluated once per statement, where a bare current_setting()
# (STABLE) would be called again for every row.
SALT_SQL = f"(SELECT current_setting('{SALT_SETTING}'))"

RULE_KINDS = ("keep", "null", "fixed", "pseudonym", "format_pseudonym", "fake_email", "fake_name", "fake_phone", "partial")

# Base types (after resolving domains) whose values are character strings.
TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "citext", "name"})
# Types that commonly hold personal data when nobody wrote a rule for them.
PERSONAL_TYPES = TEXT_TYPES | frozenset({"json", "jsonb", "bytea", "inet", "cidr", "macaddr", "macaddr8", "xml", "hstore"})
# Column names that suggest personal data whatever their type (matched on word parts: "billing_email").
PERSONAL_NAME = re.compile(
    r"(^|_)(e?mail|phone|mobile|tel|fax|name|first|last|surname|address|addr|street|city|zip|post(al)?code|birth|dob"
    r"|ssn|social|passport|licen[cs]e|iban|bic|account|card|pan|cvv|tax|salary|gender|ip|geo|lat|lon|note|notes"
    r"|comment|comments|description|remark|remarks|message|body)(_|$)",
    re.IGNORECASE,
)
# Domains reserved for documentation and testing (RFC 2606, RFC 6761): mail to them goes nowhere.
RESERVED_DOMAINS = ("invalid", "test", "example", "localhost", "example.com", "example.net", "example.org")


class MaskingError(ValueError):
    """A rule does not fit the column it is written for."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- rules ----
class KeepRule(_Model):
    """Copy the value as it is: for columns that hold nothing personal."""

    kind: Literal["keep"] = "keep"


class NullRule(_Model):
    """Replace every value with NULL (the column must be nullable)."""

    kind: Literal["null"] = "null"


class FixedRule(_Model):
    """Replace every non-NULL value with one constant (cast to the column's type)."""

    kind: Literal["fixed"] = "fixed"
    value: str | int | float | bool


class PseudonymRule(_Model):
    """Salted, deterministic stand-in: same input, same output, so keys and joins still match."""

    kind: Literal["pseudonym"] = "pseudonym"


class FakeEmailRule(_Model):
    """A valid-looking address on a reserved domain; deterministic, so unique emails stay unique."""

    kind: Literal["fake_email"] = "fake_email"
    domain: str = "example.invalid"

    @field_validator("domain")
    @classmethod
    def _reserved(cls, value: str) -> str:
        value = value.lower().strip(".")
        if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,200}[a-z0-9])?", value):
            raise ValueError(f"{value!r} is not a domain name")
        if not any(value == reserved or value.endswith("." + reserved) for reserved in RESERVED_DOMAINS):
            raise ValueError(f"{value!r} could deliver mail; use a reserved domain such as example.invalid or qa.test")
        return value


class FormatPseudonymRule(_Model):
    """A pseudonym with the original's shape, for identifiers under a format CHECK (tax ids, account numbers): the first
    `keep_prefix` characters (a country code) and every character that is not a letter or digit stay; the digits are a
    keyed permutation of the original's digits (injective: unique stays unique), letters keyed letters of the same case."""

    kind: Literal["format_pseudonym"] = "format_pseudonym"
    keep_prefix: Annotated[int, Field(ge=0, le=16)] = 0


class FakeNameRule(_Model):
    """An invented "Given Family" name (made-up words, so it cannot be a real customer's name). 65,536 names: on a
    column that must stay unique use `{fake_name: {unique: true}}`, two invented words that encode a 64-bit keyed hash."""

    kind: Literal["fake_name"] = "fake_name"
    unique: bool = False


class FakePhoneRule(_Model):
    """A phone number in the original's format: the country code (+44, 0044) and trunk prefix (0, (0)) kept, the other
    digits keyed pseudo-random digits, punctuation kept, any other text (a name, "ext." words) dropped. Two numbers may
    get the same fake: on a column that must stay unique use `{fake_phone: {unique: true}}`, whose digits are a keyed
    permutation (injective for numbers of one shape)."""

    kind: Literal["fake_phone"] = "fake_phone"
    unique: bool = False


class PartialRule(_Model):
    """Keep the last `keep_last` characters, mask all the others (a value no longer than that is masked whole)."""

    kind: Literal["partial"] = "partial"
    keep_last: Annotated[int, Field(ge=1, le=64)] = 4
    mask_char: Annotated[str, Field(min_length=1, max_length=1)] = "*"


def _normalize_rule(value: Any) -> Any:
    """Accept the config's shorthands: `notes: null`, `email: fake_email`, `card: {partial: 4}`, `x: {fixed: 0}`."""
    if value is None:
        return {"kind": "null"}
    if isinstance(value, str):
        if value == "fixed":
            raise ValueError("fixed needs a value: write {fixed: VALUE}")
        if value not in RULE_KINDS:
            raise ValueError(f"unknown masking rule {value!r}; use one of {', '.join(RULE_KINDS)}")
        return {"kind": value}
    if isinstance(value, Mapping) and "kind" not in value and len(value) == 1:
        ((kind, argument),) = value.items()
        if kind not in RULE_KINDS:
            raise ValueError(f"unknown masking rule {kind!r}; use one of {', '.join(RULE_KINDS)}")
        if isinstance(argument, Mapping):
            return {"kind": kind, **argument}
        if kind == "partial":
            return {"kind": kind, "keep_last": argument}
        if kind == "fixed":
            return {"kind": kind, "value": argument}
        if kind == "fake_email":
            return {"kind": kind, "domain": argument}
        if kind == "format_pseudonym":
            return {"kind": kind, "keep_prefix": argument}
        if argument is None:
            return {"kind": kind}
        raise ValueError(f"{kind} takes no argument; write just {kind}")
    return value


ColumnRule = Annotated[
    Annotated[
        KeepRule | NullRule | FixedRule | PseudonymRule | FormatPseudonymRule | FakeEmailRule | FakeNameRule | FakePhoneRule
        | PartialRule,
        Field(discriminator="kind"),
    ],
    BeforeValidator(_normalize_rule),
]
# table ("customers" or "schema.customers") -> column -> rule
MaskingRules = dict[str, dict[str, ColumnRule]]


# ---- what the rules apply to ----
class Column(_Model):
    """One column of a production table, as the catalog describes it."""

    name: str
    type: str  # format_type(): what CAST(... AS type) needs, e.g. "character varying(200)"
    base_type: str  # pg_type.typname of the type, or of a domain's base type: "varchar", "int8", "_text"
    not_null: bool = False
    max_length: int | None = None  # character columns with a declared length
    unique: bool = False  # part of a unique index or constraint (primary keys included; expression indexes too)
    checks: tuple[tuple[str, str], ...] = ()  # CHECK constraints on it: (name, predicate); a domain's say VALUE

    @property
    def is_text(self) -> bool:
        return self.base_type in TEXT_TYPES


class Check(_Model):
    """How QA proves a masked column holds no production value.

    fingerprint: no non-empty value's keyed hash is among production's hashes of the column;
    all_null: every value is NULL; fixed_or_null: every value is NULL or the fixed one.
    `candidates_sql` is a predicate over a value's text that holds for *every* value the rule can
    produce: only production values that satisfy it can equal a masked one, so only those are
    hashed and sent (fake emails: almost none), and the check stays complete.
    `repair_sql` re-masks the rare value that collided with a real one (fake phones live in a
    dense space: real numbers).
    """

    column: str
    kind: Literal["fingerprint", "all_null", "fixed_or_null"]
    fixed_sql: str | None = None
    candidates_sql: str | None = None  # a str.format template: {value} is a text expression
    repair_sql: str | None = None  # a str.format template: {value} is the column, {round} an SQL text expression


class PersonalDataWarning(_Model):
    table: str
    column: str
    type: str
    reason: str

    def __str__(self) -> str:
        return f"{self.table}.{self.column} ({self.type}) has no masking rule and {self.reason}; add a rule (keep if it is safe)"


# ---- SQL quoting ----
def quote_ident(name: str) -> str:
    """Always quoted, so catalog names with capitals, spaces or keywords need no special case."""
    if "\x00" in name:
        raise MaskingError("identifiers cannot contain NUL")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """An E'' literal: correct whatever standard_conforming_strings says."""
    if "\x00" in value:
        raise MaskingError("text values cannot contain NUL")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def qualified_name(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


# ---- rules to SQL ----
def _keyed_seed(purpose: str) -> str:
    """A 64-bit key for hashtextextended(), derived from the salt once per statement."""
    return (
        f"(SELECT ('x' || left(md5(current_setting('{SALT_SETTING}') || {quote_literal(':' + purpose)}), 16))::bit(64)::bigint)"
    )


def _md5_of(value_sql: str) -> str:
    return f"md5({SALT_SQL} || {value_sql})"


def _invented_words(kind: str, width: int) -> list[str]:
    """256 invented, capitalised words of at most `width` letters.

    Made-up syllable words, never dictionary names, so a fake name cannot be a real customer's.
    Generated from sha256, so every relpromote version masks the same way.
    """
    onsets = ["b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kr", "st", "tr", "sh"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ei", "ou"]
    codas = ["", "", "n", "r", "l", "s", "k", "m"]
    syllables = 2 if kind == "given" else 3
    words: list[str] = []
    counter = 0
    while len(words) < 256:
        digest = hashlib.sha256(f"relpromote:{kind}:{counter}".encode()).digest()
        counter += 1
        parts = [onsets[digest[2 * i] % len(onsets)] + vowels[digest[2 * i + 1] % len(vowels)] for i in range(syllables)]
        word = ("".join(parts) + codas[digest[10] % len(codas)]).capitalize()[:width]
        if word not in words:
            words.append(word)
    return words


def _word_table(words: list[str], width: int) -> tuple[str, int]:
    """The words padded to `width` bytes, as the hex of one bytea constant: substring() on a bytea jumps to
    word i directly, where substr() on text walks the string (4 s vs 0.4 s for 300k rows)."""
    return "".join(word.ljust(width) for word in words).encode("ascii").hex(), width


GIVEN_NAMES = _invented_words("given", 8)
FAMILY_NAMES = _invented_words("family", 10)
_GIVEN_WORDS = _word_table(GIVEN_NAMES, 8)
_FAMILY_WORDS = _word_table(FAMILY_NAMES, 10)
FAKE_NAME_LENGTH = 8 + 1 + 10  # the longest "Given Family"


def _pick_word(table: tuple[str, int], value_sql: str, purpose: str) -> str:
    hex_words, width = table
    index = f"hashtextextended({value_sql}, {_keyed_seed(purpose)}) & 255"
    return f"rtrim(encode(substring(decode('{hex_words}', 'hex') from 1 + {width} * ({index})::int for {width}), 'escape'))"


def _fake_digits(value_sql: str, key_sql: str) -> str:
    """Replace each digit of a value with its own pseudo-random digit, keeping every other character.

    The digits become format() placeholders, filled from 18 keyed-hash digits (36 for values longer
    than 18 characters), so equal digits of the original do not map to equal digits of the fake.
    Splitting into as few array elements as the value needs is what keeps this near 3 µs a row.
    """

    def digits(count: int) -> str:
        return " || ".join(
            f"lpad(((hashtextextended({value_sql}, {key_sql} + {n}) & 9223372036854775807) % 1000000000000000000)::text, 18, '0')"
            for n in range(count)
        )

    template = f"replace(translate(replace({value_sql}, '%', '%%'), '0123456789', repeat(chr(1), 10)), chr(1), '%s')"
    return (
        f"CASE WHEN length({value_sql}) <= 18 THEN format({template}, VARIADIC string_to_array({digits(1)}, NULL)) "
        f"WHEN length({value_sql}) <= 36 THEN format({template}, VARIADIC string_to_array({digits(2)}, NULL)) "
        f"ELSE translate({value_sql}, '123456789', '000000000') END"
    )


# Ends a subquery that names an intermediate value: without it the planner pulls the subquery up and pastes the
# expression into every place that reads the name, so a regular expression or hash read five times is computed five
# times (fake phones: 25 µs a row instead of 6).
FENCE = " OFFSET 0"


def _digits_permutation(digits_sql: str, seed_sql: str) -> str:
    """A keyed permutation of n-digit strings (n <= 18; longer ones are split): a four-round Feistel network on the
    number's two halves, so different inputs of one length always give different outputs (unique stays unique),
    and the output has as many digits as the input (leading zeros kept)."""

    def round_key(half: str, number: int, modulus: str) -> str:
        return f"((hashtextextended({half}::text || ':' || z.n || ':{number}', {seed_sql}) & 9223372036854775807) % {modulus})"

    def permute(d: str) -> str:
        return (
            "(SELECT CASE WHEN z.n = 0 THEN '' ELSE lpad((s4.a * z.pv + s4.b)::text, z.n, '0') END "
            f"FROM (SELECT length(d) AS n, CASE WHEN d = '' THEN 0 ELSE d::bigint END AS x, "
            "(10::numeric ^ (length(d) / 2))::bigint AS pu, (10::numeric ^ (length(d) - length(d) / 2))::bigint AS pv "
            f"FROM (SELECT {d} AS d{FENCE}) d0{FENCE}) z, "
            f"LATERAL (SELECT z.x / z.pv AS a, z.x % z.pv AS b{FENCE}) s0, "
            f"LATERAL (SELECT s0.b AS a, (s0.a + {round_key('s0.b', 1, 'z.pu')}) % z.pu AS b{FENCE}) s1, "
            f"LATERAL (SELECT s1.b AS a, (s1.a + {round_key('s1.b', 2, 'z.pv')}) % z.pv AS b{FENCE}) s2, "
            f"LATERAL (SELECT s2.b AS a, (s2.a + {round_key('s2.b', 3, 'z.pu')}) % z.pu AS b{FENCE}) s3, "
            f"LATERAL (SELECT s3.b AS a, (s3.a + {round_key('s3.b', 4, 'z.pv')}) % z.pv AS b{FENCE}) s4)"
        )

    return (f"(SELECT CASE WHEN length(dd) <= 18 THEN {permute('dd')} "
            f"ELSE {permute('left(dd, 18)')} || {permute('substr(dd, 19, 18)')} || substr(dd, 37) END "
            f"FROM (SELECT {digits_sql} AS dd{FENCE}) dd0)")


def _refill_digits(template_sql: str, digits_sql: str) -> str:
    """`template_sql` with each digit replaced, in order, by the next character of `digits_sql` (as many)."""
    placeholders = f"replace(translate(replace({template_sql}, '%', '%%'), '0123456789', repeat(chr(1), 10)), chr(1), '%s')"
    return f"format({placeholders}, VARIADIC string_to_array({digits_sql}, NULL))"


# E.164 country codes by their first digits: 1 and 7 alone, these two-digit ones, and three digits for the rest.
# Written so that no alternative is a prefix of another (PostgreSQL's regular expressions take the longest match).
COUNTRY_CODE_RE = (r"(?:1|7|2[07]|3[0-469]|4[013-9]|5[1-8]|6[0-6]|8[1246]|9[0-58]"
                   r"|(?:2[1-689]|3[578]|42|5[09]|6[7-9]|8[05789]|9[679])[0-9])")
PHONE_PREFIX_RE = r"^(?:(?:\+|00)" + COUNTRY_CODE_RE + r"(?:[ .-]*\(0\))?|\(?0)"
PHONE_CHARACTERS_RE = r"[^0-9+()./ -]"  # what a phone number is written with; everything else is dropped
PHONE_DIGITS = "regexp_replace(p1.rest, '[^0-9]', '', 'g')"


def _fake_phone(value_sql: str, seed_sql: str, unique: bool = False) -> str:
    """Phone characters only; country code and trunk prefix kept; the other digits keyed pseudo-random digits (about
    5 µs a row), or with `unique` a keyed permutation of them (see _digits_permutation)."""
    digits = _refill_digits("p1.rest", _digits_permutation(PHONE_DIGITS, seed_sql)) if unique else _fake_digits("p1.rest", seed_sql)
    return (
        f"(SELECT p1.prefix || {digits} "
        f"FROM (SELECT p0.prefix, substr(p0.c, length(p0.prefix) + 1) AS rest FROM "
        f"(SELECT c, coalesce(substring(c from {quote_literal(PHONE_PREFIX_RE)}), '') AS prefix FROM "
        f"(SELECT btrim(regexp_replace({value_sql}, {quote_literal(PHONE_CHARACTERS_RE)}, '', 'g')) AS c{FENCE}) c0{FENCE}) p0{FENCE}) p1)"
    )


ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br",
          "dr", "gr", "kr", "st", "tr", "sh", "ch", "bl", "fl", "gl", "kl", "pl", "sl", "fr", "pr", "th")
VOWELS = ("a", "e", "i", "o", "u", "ai", "ei", "ou")
# 256 consonant-vowel syllables, one per byte value: a word of them parses back to its bytes, so distinct hashes give
# distinct names.
SYLLABLES = tuple(onset + vowel for onset in ONSETS for vowel in VOWELS)
_SYLLABLE_TABLE = "".join(syllable.ljust(4) for syllable in SYLLABLES).encode("ascii").hex()
UNIQUE_FAKE_NAME_LENGTH = 16 + 1 + 16


def _unique_fake_name(value_sql: str) -> str:
    """Two invented words of four syllables each, spelling the eight bytes of a salted md5 of the value: as unique
    as a pseudonym (64 bits), still letters and a space."""

    def syllable(index: int) -> str:
        return f"rtrim(encode(substring(t.w from 1 + 4 * get_byte(h.b, {index}) for 4), 'escape'))"

    given = " || ".join(syllable(i) for i in range(4))
    family = " || ".join(syllable(i) for i in range(4, 8))
    return (f"(SELECT initcap({given}) || ' ' || initcap({family}) FROM (SELECT decode({_md5_of(value_sql)}, 'hex') AS b{FENCE}) h, "
            f"(SELECT decode('{_SYLLABLE_TABLE}', 'hex') AS w) t)")


def _format_pseudonym(value_sql: str, keep_prefix: int) -> str:
    """Prefix kept; digits permuted (keyed, injective); letters rotated by a keyed shift (same case); the rest kept."""
    upper, lower = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
    shift = f"(({_keyed_seed('format_pseudonym:letters')} & 9223372036854775807) % 25 + 1)::int"
    rotated = f"substr('{upper * 2}', {shift} + 1, 26) || substr('{lower * 2}', {shift} + 1, 26)"
    digits = _digits_permutation("regexp_replace(f0.rest, '[^0-9]', '', 'g')", _keyed_seed("format_pseudonym"))
    return (f"(SELECT f0.prefix || {_refill_digits(f'translate(f0.rest, {quote_literal(upper + lower)}, {rotated})', digits)} "
            f"FROM (SELECT left({value_sql}, {keep_prefix}) AS prefix, substr({value_sql}, {keep_prefix + 1}) AS rest{FENCE}) f0)")


def mask_expression(rule: ColumnRule, column: Column) -> str:
    """The SQL production evaluates for `column` under `rule`, cast back to the column's type.

    Raises MaskingError when the rule cannot fit the column (a fake email in an integer, a
    pseudonym too long for a varchar(8), NULL in a NOT NULL column).
    """
    value = quote_ident(column.name)
    text = f"{value}::text"
    where = f"column {column.name} ({column.type})"
    if isinstance(rule, KeepRule):
        return value
    if isinstance(rule, NullRule):
        if column.not_null:
            raise MaskingError(f"{where} is NOT NULL, so it cannot be masked with null; use fixed or pseudonym")
        return f"NULL::{column.type}"
    if isinstance(rule, FixedRule):
        literal = quote_literal(str(rule.value).lower() if isinstance(rule.value, bool) else str(rule.value))
        return f"CASE WHEN {value} IS NULL THEN NULL ELSE CAST({literal} AS {column.type}) END"
    if isinstance(rule, PseudonymRule):
        if column.is_text:
            _needs_length(column, 17, "pseudonym")
            return f"CAST('p' || left({_md5_of(text)}, 16) AS {column.type})"
        if column.base_type == "int8":
            # 60 bits: positive, and collisions stay below one in a billion for ten million keys.
            return f"CAST(('x' || left({_md5_of(text)}, 15))::bit(60)::bigint AS {column.type})"
        if column.base_type == "uuid":
            return f"CAST({_md5_of(text)}::uuid AS {column.type})"
        raise MaskingError(
            f"{where}: pseudonym needs a text, bigint or uuid column (a 32-bit integer has too few values to stay unique); "
            "surrogate keys hold nothing personal: keep them"
        )
    _needs_text(rule, column)
    if isinstance(rule, FormatPseudonymRule):
        return f"CAST({_format_pseudonym(text, rule.keep_prefix)} AS {column.type})"
    if isinstance(rule, FakeEmailRule):
        _needs_length(column, 18 + len(rule.domain), "fake_email")
        return f"CAST('u' || left({_md5_of(text)}, 16) || {quote_literal('@' + rule.domain)} AS {column.type})"
    if isinstance(rule, FakeNameRule) and rule.unique:
        _needs_length(column, UNIQUE_FAKE_NAME_LENGTH, "fake_name with unique")
        return f"CAST({_unique_fake_name(text)} AS {column.type})"
    if isinstance(rule, FakeNameRule):
        given = _pick_word(_GIVEN_WORDS, text, "fake_name:given")
        family = _pick_word(_FAMILY_WORDS, text, "fake_name:family")
        return f"CAST({given} || ' ' || {family} AS {column.type})"
    if isinstance(rule, FakePhoneRule):
        return f"CAST({_fake_phone(text, _keyed_seed('fake_phone'), rule.unique)} AS {column.type})"
    if isinstance(rule, PartialRule):
        keep = rule.keep_last
        mask = quote_literal(rule.mask_char)
        return (
            f"CAST(CASE WHEN length({text}) > {keep} THEN repeat({mask}, length({text}) - {keep}) || right({text}, {keep}) "
            f"ELSE repeat({mask}, length({text})) END AS {column.type})"
        )
    raise MaskingError(f"{where}: unsupported rule {rule!r}")  # pragma: no cover - the union is exhaustive


def unique_misfit(rule: ColumnRule) -> str | None:
    """None when `rule` keeps distinct values distinct (as far as a 64-bit keyed hash does), else the rule to use."""
    if isinstance(rule, FakeNameRule) and not rule.unique:
        return "{fake_name: {unique: true}} (65,536 fake names are too few)"
    if isinstance(rule, FakePhoneRule) and not rule.unique:
        return "{fake_phone: {unique: true}}"
    if isinstance(rule, PartialRule):
        return "format_pseudonym (same length and character classes) or pseudonym"
    if isinstance(rule, FixedRule):
        return "pseudonym"
    return None


def check_for(rule: ColumnRule, column: Column) -> Check | None:
    """How QA verifies `column` after the copy; None for keep."""
    if isinstance(rule, KeepRule):
        return None
    if isinstance(rule, NullRule):
        return Check(column=column.name, kind="all_null")
    if isinstance(rule, FixedRule):
        literal = quote_literal(str(rule.value).lower() if isinstance(rule.value, bool) else str(rule.value))
        return Check(column=column.name, kind="fixed_or_null", fixed_sql=f"CAST({literal} AS {column.type})")
    repair = candidates = None
    if isinstance(rule, FakePhoneRule):
        # Re-mask a fake number that happens to be a real one; keyed by the (already masked) value and the
        # round, so it needs no salt and two refreshes of the same data agree.
        # Again through the same shape-keeping permutation, keyed by the round: prefix and format stay.
        repair = f"CAST({_fake_phone('{value}::text', 'hashtextextended({round}, 0)', rule.unique)} AS {column.type})"
    elif isinstance(rule, FakeEmailRule):
        suffix = "@" + rule.domain
        candidates = (
            f"length({{value}}) = {17 + len(suffix)} AND left({{value}}, 1) = 'u' "
            f"AND right({{value}}, {len(suffix)}) = {quote_literal(suffix)}"
        )
    elif isinstance(rule, PseudonymRule) and column.is_text:
        candidates = "length({value}) = 17 AND left({value}, 1) = 'p'"
    elif isinstance(rule, FakeNameRule) and rule.unique:
        candidates = "{value} ~ '^[A-Z][a-z]+ [A-Z][a-z]+$'"
    elif isinstance(rule, FakeNameRule) and (column.max_length is None or column.max_length >= FAKE_NAME_LENGTH):
        # Both words come from the invented lists (unless a short column cut the name): constant arrays of more
        # than 8 elements are hashed, so this costs production well under a microsecond a row.
        given, family = ",".join(GIVEN_NAMES), ",".join(FAMILY_NAMES)
        candidates = (
            f"split_part({{value}}, ' ', 1) = ANY ('{{{{{given}}}}}'::text[]) "
            f"AND split_part({{value}}, ' ', 2) = ANY ('{{{{{family}}}}}'::text[])"
        )
    elif isinstance(rule, PartialRule):
        # Everything but the last keep_last characters is the mask character.
        candidates = f"length(ltrim({{value}}, {quote_literal(rule.mask_char)})) <= {rule.keep_last}"
    return Check(column=column.name, kind="fingerprint", candidates_sql=candidates, repair_sql=repair)


def fingerprint_sql(value_sql: str, seed: int) -> str:
    """A 64-bit keyed hash of a value's text, the same on production and QA for equal values."""
    return f"hashtextextended(({value_sql})::text, {int(seed)})"


def _needs_text(rule: ColumnRule, column: Column) -> None:
    if not column.is_text:
        raise MaskingError(f"column {column.name} ({column.type}): {rule.kind} needs a character column (text, varchar, char)")


def _needs_length(column: Column, length: int, kind: str) -> None:
    if column.max_length is not None and column.max_length < length:
        raise MaskingError(
            f"column {column.name} ({column.type}) is shorter than the {length} characters {kind} needs; "
            "use partial, fixed or null"
        )


# ---- where masked values could leak ----
def leak_target_kind(column: Column) -> str | None:
    """How QA's leak check reads a column that may carry a copy of a masked value: whole text values, array elements,
    or the string values at any depth of a JSON document; None for the other types."""
    if column.base_type in TEXT_TYPES:
        return "text"
    if column.base_type.startswith("_") and column.base_type[1:] in TEXT_TYPES:
        return "array"
    if column.base_type in ("json", "jsonb"):
        return "json"
    return None


# ---- what nobody wrote a rule for ----
def snake_case(name: str) -> str:
    """`billingEmail`, `BillingEmail`, `billing-email`, `Billing Email` -> `billing_email`: how names are matched."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()


# What the dry run's content sampling can report for a column (see the module's inspect).
CONTENT_KINDS = {"email": "email addresses", "phone": "phone numbers", "card": "payment card numbers (Luhn)"}


def personal_data_reason(column: Column, content: Mapping[str, int] | None = None) -> str | None:
    """Why an unlisted column might hold personal data, or None. `content`: sampled values that look like an email
    address, a phone number or a card number, by kind."""
    found = {kind: count for kind, count in (content or {}).items() if count}
    if found:
        what = ", ".join(f"{count} {CONTENT_KINDS.get(kind, kind)}" for kind, count in sorted(found.items()))
        return f"sampled values look like {what}"
    match = PERSONAL_NAME.search(snake_case(column.name))
    if match:
        return f"its name suggests personal data ({match.group(2).lower()})"
    base = column.base_type.removeprefix("_")  # arrays: _text is text[]
    if base in PERSONAL_TYPES:
        return f"its type ({column.type}) commonly holds personal data"
    return None


def unlisted_personal_columns(
    table: str,
    columns: list[Column] | tuple[Column, ...],
    rules: Mapping[str, ColumnRule],
    content: Mapping[str, Mapping[str, int]] | None = None,
) -> list[PersonalDataWarning]:
    """The columns of `table` without a rule that look like they may hold personal data (for --dry-run)."""
    warnings = []
    for column in columns:
        if column.name in rules:
            continue
        reason = personal_data_reason(column, (content or {}).get(column.name))
        if reason is not None:
            warnings.append(PersonalDataWarning(table=table, column=column.name, type=column.type, reason=reason))
    return warnings
