from __future__ import annotations

from relpromote import events
from relpromote.cli.views import VERB_OF_KIND


def test_every_kind_the_ledger_records_has_a_word_in_history() -> None:
    kinds = {value for name, value in vars(events).items() if name.isupper() and isinstance(value, str)}
    assert kinds - set(VERB_OF_KIND) == set()
