"""What relpromote/masking.py's SQL does, on a real PostgreSQL (issue 18's mutation score): each rule's expression is
evaluated on sample values under a fixed salt, and the masked values are checked for what the rule promises (digits
and their places, prefixes, lengths, character classes, unique values staying unique) and pinned exactly: every
relpromote version must mask the same data alike, or two refreshes of it would disagree (as the invented name lists,
tests/unit/test_mutants_masking.py). The whole refresh is proven by tests/integration/test_qa_refresh_engine.py.

One cluster for the module, started on first use and kept for the process: mutation testing forks each mutant's run
from a process that already ran this module, and the forked runs reuse the server instead of starting one each."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

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
    NullRule,
    PartialRule,
    PseudonymRule,
)
from relpromote.testing.postgres import PostgresCluster

SALT = "a salt only this test uses"
TEXT = Column(name="Value x", type="text", base_type="text")

_server: dict[str, Any] = {}


def _stop() -> None:
    if _server.get("pid") == os.getpid():  # only the process that started it (forked runs exit without stopping it)
        _server["cluster"].stop(remove=True)
        shutil.rmtree(_server["folder"], ignore_errors=True)


def server() -> PostgresCluster:
    if "cluster" not in _server:
        folder = tempfile.mkdtemp(prefix="relpromote-masking-sql-")
        _server.update(folder=folder, cluster=PostgresCluster.start(Path(folder) / "pg", name="masking"), pid=os.getpid())
        atexit.register(_stop)
    return _server["cluster"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def db() -> Iterator[Any]:
    with server().connect() as conn:
        conn.execute("SELECT set_config('relpromote.salt', %s, false)", (SALT,))
        yield conn


def masked(db: Any, rule: ColumnRule, values: Sequence[str | None], column: Column = TEXT) -> list[Any]:
    """`rule`'s expression for `column` evaluated on `values` (in this order), as the refresh's copy evaluates it."""
    expression = masking.mask_expression(rule, column).replace("%", "%%")  # psycopg reads % as its placeholders
    statement = (f"SELECT {expression} FROM (SELECT v::{column.type} AS {masking.quote_ident(column.name)}, i "
                 "FROM unnest(%s::text[]) WITH ORDINALITY AS u(v, i)) t ORDER BY i")
    return [row[0] for row in db.execute(statement, (list(values),)).fetchall()]


def digits_only(value: str) -> str:
    return re.sub(r"[^0-9]", "", value)


def shape(value: str) -> str:
    """Each digit a 9, each capital an A, each small letter an a, the rest as it is."""
    return re.sub(r"[a-z]", "a", re.sub(r"[A-Z]", "A", re.sub(r"[0-9]", "9", value)))


PHONES = ["+41 44 668 18 00", "0041 (0)44 668 18 00", "(044) 668 18 00", "+1-202-555-0123", "079 555 12 34 ext. 7", "",
          "+7 495 123-45-67", "0 8 1 5", "+12345678901234567890123456789012345678"]


def test_a_fake_phone_keeps_the_country_code_the_trunk_prefix_and_the_format(db: Any) -> None:
    fake = masked(db, FakePhoneRule(), [*PHONES, None])
    assert fake[-1] is None
    for real, made in zip(PHONES, fake, strict=False):
        kept = re.sub(r"[^0-9+()./ -]", "", real).strip()
        assert shape(made) == shape(kept), (real, made)
    assert fake[:9] == [
        "+41 76 379 50 88", "0041 (0)36 288 18 63", "(072) 458 41 05", "+1-524-648-1810", "022 853 49 56 . 3", "",
        "+7 208 682-28-97", "0 7 4 8", "+10000000000000000000000000000000000000"]
    assert masked(db, FakePhoneRule(), PHONES) == fake[:9], "the same salt masks alike"


def test_a_unique_fake_phone_is_a_permutation_of_the_digits_after_the_prefix(db: Any) -> None:
    numbers = [f"+41 79 {n // 100:03d} {n % 100:02d} 00" for n in range(0, 60000, 97)]
    fake = masked(db, FakePhoneRule(unique=True), numbers)
    assert len(set(fake)) == len(numbers), "different numbers stay different"
    assert all(made.startswith("+41 ") and shape(made) == shape(real) for real, made in zip(numbers, fake, strict=True))
    assert sum(made == real for real, made in zip(numbers, fake, strict=True)) <= 1
    long = ["+41 " + "1234567890" * 2 + "12 (345)", "0" + "9" * 40, "(0)", "+41"]
    assert masked(db, FakePhoneRule(unique=True), [PHONES[0], PHONES[3], *long]) == [
        "+41 84 026 52 06", "+1-123-213-9860", "+41 7554360434020492796469 (825)", "0" + "748913512235241913" * 2 + "9999", "(0)", "+41"]


def test_a_format_pseudonym_keeps_the_prefix_and_each_characters_class(db: Any) -> None:
    values = ["CH93 0076 2011 6238 5295 7", "ab-12-CD", "AB-0000-z", "12", "Ünïcode-9", "", "00000000000000000000000000000000000012"]
    fake = masked(db, FormatPseudonymRule(keep_prefix=2), values)
    for real, made in zip(values, fake, strict=True):
        assert made[:2] == real[:2] and shape(made) == shape(real), (real, made)
    assert fake == ["CH88 8925 3211 9865 7037 2", "ab-23-PQ", "AB-1638-m", "12", "Ünïpbqr-4", "", "00304964371923348512374347828945555809"]
    whole = masked(db, FormatPseudonymRule(), [f"K{n:05d}" for n in range(0, 100000, 37)])
    assert len(set(whole)) == len(whole), "a keyed permutation: different values stay different"


def test_a_fake_name_is_two_invented_words_and_a_unique_one_spells_the_values_hash(db: Any) -> None:
    people = ["Ada Lovelace", "Alan Turing", "Grace Hopper", ""]
    names = masked(db, FakeNameRule(), people)
    assert names == ["Fazein Studaisi", "Krigrei Shaistupal", "Tepi Greizuva", "Keino Drogroutem"]
    assert all(given in masking.GIVEN_NAMES and family in masking.FAMILY_NAMES for given, family in (n.split(" ") for n in names))
    unique = masked(db, FakeNameRule(unique=True), people)
    assert unique == ["Mouneplougro Mataikraigle", "Blaiglehimai Sobrokoupro", "Heizouliklai Fulufudo", "Gripaitraikru Glonathibi"]
    assert all(re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", name) for name in unique)


def test_pseudonyms_emails_and_partial_masks(db: Any) -> None:
    values = ["alice@example.org", "bob", ""]
    assert masked(db, PseudonymRule(), values) == ["p6980d60aa45bdc6f", "p1ccfaed05e277453", "p8a4da594cb40fa02"]
    assert masked(db, FakeEmailRule(domain="qa.test"), values) == ["u6980d60aa45bdc6f@qa.test", "u1ccfaed05e277453@qa.test",
                                                                  "u8a4da594cb40fa02@qa.test"]
    assert masked(db, PartialRule(keep_last=2, mask_char="#"), ["4111111111111111", "ab", "a", ""]) == ["##############11", "##", "#", ""]
    assert masked(db, PartialRule(), ["4111111111111111", "1234"]) == ["************1111", "****"]
    big = Column(name="id", type="bigint", base_type="int8")
    assert masked(db, PseudonymRule(), ["1", "2"], big) == [309540244566231807, 1130716902995059185]
    uuid = Column(name="id", type="uuid", base_type="uuid")
    assert [str(u) for u in masked(db, PseudonymRule(), ["00000000-0000-0000-0000-000000000001"], uuid)] == [
        "6131dfb8-3c6a-7999-c572-1ac93f619608"]


def test_fixed_null_and_keep_keep_what_they_say(db: Any) -> None:
    assert masked(db, FixedRule(value="x"), ["a", None]) == ["x", None]
    assert masked(db, NullRule(), ["a", None]) == [None, None]
    assert masked(db, KeepRule(), ["a", None]) == ["a", None]


def test_a_redrawn_fake_phone_keeps_the_format_and_needs_no_salt(db: Any) -> None:
    for unique in (False, True):
        check = masking.check_for(FakePhoneRule(unique=unique), TEXT)
        assert check is not None and check.repair_sql is not None
        repair = check.repair_sql.format(value="v", round="r::text").replace("%", "%%")
        statement = f"SELECT {repair} FROM (VALUES (%s, 1), (%s, 2)) AS t(v, r)"
        with server().connect() as fresh:  # no salt in this session
            redrawn = [row[0] for row in fresh.execute(statement, (PHONES[0], PHONES[0])).fetchall()]
        assert [shape(made) for made in redrawn] == [shape(PHONES[0])] * 2 and redrawn[0] != redrawn[1]
        assert all(made.startswith("+41 ") for made in redrawn)
