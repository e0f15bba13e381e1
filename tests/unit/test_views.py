from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relpromote import events
from relpromote.cli.views import VERB_OF_KIND, outcome
from relpromote.identity import Identity, public_key_line
from relpromote.ledger import Entry, seal, utc_now


def test_every_kind_the_ledger_records_has_a_word_in_history() -> None:
    kinds = {value for name, value in vars(events).items() if name.isupper() and isinstance(value, str)}
    assert kinds - set(VERB_OF_KIND) == set()


def _rollback_entry(payload: dict[str, object]) -> Entry:
    key = Ed25519PrivateKey.generate()
    return seal(None, events.ROLLBACK_FINISHED, "alice", Identity(key, public_key_line(key.public_key())), payload, utc_now())


def test_a_failed_rollback_says_where_and_why_it_failed_not_only_why_it_was_asked() -> None:
    failed = _rollback_entry({
        "environment": "qa", "version": "1.0.0", "result": "failed", "reason": "checkout errors",
        "hosts": [{"host": "qa-1", "ok": True, "message": ""},
                  {"host": "qa-2", "ok": False, "message": "restart hook\nexited 3"}],
    })
    assert outcome(failed) == ("failed", "qa-2: restart hook exited 3 (asked: checkout errors)")
    done = _rollback_entry({"environment": "qa", "version": "1.0.0", "result": "succeeded", "reason": "checkout errors",
                            "hosts": [{"host": "qa-1", "ok": True, "message": ""}]})
    assert outcome(done) == ("succeeded", "checkout errors")
