"""The board's columns from a real signed ledger: previous release, pending approvals, timeline."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from relpromote.board import board, previous_release
from relpromote.ledger import utc_now
from tests.unit.real_ledger import Ledger


def test_previous_release_ignores_re_promotions() -> None:
    assert previous_release(["1.0.0", "1.1.0", "1.1.0"], "1.1.0") == "1.0.0"
    assert previous_release(["1.0.0", "1.1.0", "1.0.0"], "1.0.0") == "1.1.0"
    assert previous_release(["1.0.0"], "1.0.0") is None and previous_release([], None) is None


def test_columns_pending_approvals_and_timeline(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    for version in ("1.0.0", "1.1.0"):
        ledger.build(version)
        ledger.promote(version, "qa", actor="oscar")
    ledger.approve("1.0.0", "production", "carol", "2099-01-01T00:00:00.000000Z", ticket="CHG-1")
    ledger.approve("1.1.0", "production", "carol", "2000-01-01T00:00:00.000000Z", ticket="CHG-OLD")  # expired
    ledger.promote("1.0.0", "production")
    ledger.approve("1.1.0", "production", "carol", "2099-01-01T00:00:00.000000Z", ticket="CHG-2")
    ledger.rollback("qa", "1.0.0", "1.1.0")
    state = ledger.state()
    rows = [{"environment": name, "attention": [], "in_doubt": [], "drifted": []} for name in ("qa", "deployment", "production")]
    data = board("shop", state, ledger.store.entries(), rows, {"qa": None}, {"production": "month-end close"},
                 {"production": True}, utc_now() + timedelta(seconds=1))
    columns = {c["environment"]: c for c in data["columns"]}
    assert columns["qa"]["release"] == "1.0.0" and columns["qa"]["previous"] == "1.1.0"
    assert [a["ticket"] for a in columns["production"]["pending_approvals"]] == ["CHG-2"]  # CHG-1 used, CHG-OLD expired
    assert columns["production"]["freeze"] == "month-end close" and columns["production"]["protected"]
    assert [(t["what"], t["environment"], t["version"]) for t in data["timeline"]] == [
        ("rollback", "qa", "1.0.0"), ("promotion", "production", "1.0.0"), ("promotion", "qa", "1.1.0"), ("promotion", "qa", "1.0.0")]
    assert data["live_releases"] == ["1.0.0"]
