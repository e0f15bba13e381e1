"""`promote --batch N`: what Ansible gets as `serial` is a host count it can work with."""

from __future__ import annotations

import pytest

from relpromote.errors import BadInput
from relpromote.usecases.promote import validate_batch


def test_a_batch_larger_than_any_inventory_does_not_reach_ansible() -> None:
    try:
        batch = validate_batch("99999999999999999999")
    except BadInput:
        return
    assert batch is not None and int(batch) <= 1_000_000


def test_batches_people_give_pass() -> None:
    assert validate_batch("2") == "2" and validate_batch(" 50% ") == "50%" and validate_batch(None) is None
    for bad in ("0", "0%", "101%", "-1", "1e3", "two"):
        with pytest.raises(BadInput):
            validate_batch(bad)
