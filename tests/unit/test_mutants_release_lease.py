"""roles/release_deploy/module_utils/release_lease.py, pinned exactly (issue 18's mutation score): who holds a host,
how the holder is named, which run is older, and every field of what taking, renewing and giving back return."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from tests.unit.host_modules import load

load("roles/release_deploy/library/release_lock.py")
LEASE = sys.modules["ansible.module_utils.release_lease"]
RUN = {"id": "run-a", "project": "shop", "person": "oscar", "controller": "oscar@jump", "pid": 42,
       "purpose": "promotion of 1.4.0", "started": "2026-11-30T10:00:00Z"}


def test_the_holder_is_named_on_one_line_with_what_the_host_knows() -> None:
    full = {"person": "oscar", "purpose": "promotion of 1.4.0", "project": "shop", "token": "run-a", "controller": "oscar@jump",
            "pid": 42, "taken_at": "2026-11-30T10:00:00Z", "expires_at": "2026-11-30T10:30:00Z"}
    assert LEASE.describe(full) == ("oscar (promotion of 1.4.0), project shop, run run-a, pid 42 on oscar@jump, "
                                    "since 2026-11-30T10:00:00Z, lease until 2026-11-30T10:30:00Z")
    assert LEASE.describe({"controller": "c"}) == "someone (a run), run ?, pid ? on c, since ?, lease until ?"
    assert LEASE.describe({}) == "someone (a run), run ?, since ?, lease until ?"
    assert LEASE.describe({"unreadable": True, "person": "x"}) == "an unreadable lease"
    assert str(LEASE.Busy(full)) == "this host is locked by " + LEASE.describe(full) and LEASE.Busy(full).holder == full


def test_the_older_run_is_the_one_that_started_first_then_by_token() -> None:
    assert LEASE.older_than({"started": "1", "token": "b"}, {"started": "2", "token": "a"})
    assert not LEASE.older_than({"started": "2", "token": "a"}, {"started": "1", "token": "b"})
    assert LEASE.older_than({"started": "1", "token": "a"}, {"started": "1", "token": "b"}), "the same start: the token decides"
    assert not LEASE.older_than({"started": "1", "token": "a"}, {"started": "1", "token": "a"})
    assert LEASE.older_than({"started": "1"}, {}), "a holder with no start time is the youngest"
    assert not LEASE.older_than({}, {"started": "1"}) and not LEASE.older_than({}, {})


def test_a_lease_that_is_missing_unreadable_or_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "lease.json"
    assert LEASE.read_lease(str(path)) is None
    unreadable = {"token": "", "expires": 0, "unreadable": True}
    for body in ("{", "[1]", "\xff"):
        path.write_text(body, encoding="latin-1")
        assert LEASE.read_lease(str(path)) == unreadable, body
    path.unlink()
    path.mkdir()
    assert LEASE.read_lease(str(path)) == unreadable, "a folder in its place: unreadable, not missing"
    assert LEASE.lease_path("/opt/app") == "/opt/app/.relpromote-lock.json"


def test_taking_a_free_host_returns_and_writes_the_whole_lease(tmp_path: Path) -> None:
    path = str(tmp_path / "lease.json")
    before = time.time()
    result = LEASE.hold(path, dict(RUN, extra="not kept"), "run-a", 600)
    after = time.time()
    holder = result["holder"]
    assert {k: v for k, v in result.items() if k != "holder"} == {"token": "run-a", "busy": False, "released": False, "changed": True}
    assert set(holder) == {"project", "person", "controller", "pid", "purpose", "started", "token", "taken_at", "expires", "expires_at"}
    assert (holder["token"], holder["person"], holder["pid"], holder["started"]) == ("run-a", "oscar", 42, RUN["started"])
    assert before + 600 <= holder["expires"] <= after + 600
    assert holder["expires_at"] == LEASE.iso(holder["expires"]) and holder["taken_at"] == LEASE.iso(holder["expires"] - 600)
    assert json.loads(Path(path).read_text()) == holder
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644 and sorted(os.listdir(tmp_path)) == ["lease.json", "lease.json.guard"]
    assert LEASE.iso(0) == "1970-01-01T00:00:00Z"


def test_renewing_keeps_when_it_was_taken_and_reports_no_change(tmp_path: Path) -> None:
    path = str(tmp_path / "lease.json")
    held = {"token": "run-a", "taken_at": "2026-01-01T00:00:00Z", "expires": time.time() + 5}
    Path(path).write_text(json.dumps(held))
    result = LEASE.hold(path, RUN, "run-a", 100)
    assert result["changed"] is False and "broke" not in result and result["holder"]["taken_at"] == "2026-01-01T00:00:00Z"


def test_an_expired_or_breakable_lease_is_taken_and_named(tmp_path: Path) -> None:
    path = str(tmp_path / "lease.json")
    expired = {"token": "old", "expires": time.time() - 1}
    Path(path).write_text(json.dumps(expired))
    result = LEASE.hold(path, RUN, "run-a", 100, wait=0)
    assert result["broke"] == expired and result["changed"] is True
    live = {"token": "killed", "expires": time.time() + 600}
    Path(path).write_text(json.dumps(live))
    assert LEASE.hold(path, RUN, "run-a", 100, wait=0, breakable=["killed"])["broke"] == live
    Path(path).write_text(json.dumps({"token": "x", "expires": None}))
    assert LEASE.hold(path, RUN, "run-a", 100, wait=0)["broke"]["token"] == "x", "a lease without an expiry is expired"


def test_a_lease_expiring_this_very_second_is_free(tmp_path: Path) -> None:
    path = str(tmp_path / "lease.json")
    Path(path).write_text(json.dumps({"token": "other", "expires": time.time()}))
    assert LEASE.hold(path, RUN, "run-a", 100, wait=0)["token"] == "run-a"


def test_a_younger_run_is_refused_at_once_and_check_mode_writes_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "lease.json")
    holder = {"token": "run-0", "started": "2026-11-30T09:00:00Z", "expires": time.time() + 600}
    Path(path).write_text(json.dumps(holder))
    started = time.monotonic()
    with pytest.raises(LEASE.Busy) as busy:
        LEASE.hold(path, RUN, "run-a", 100, wait=30)
    assert busy.value.holder == holder and time.monotonic() - started < 15, "not the 30 s it was told to wait"
    other = str(tmp_path / "other.json")
    assert LEASE.hold(other, RUN, "run-a", 100, check_mode=True)["changed"] is True and not os.path.exists(other)


def test_an_older_run_waits_only_as_long_as_it_is_told(tmp_path: Path) -> None:
    path = str(tmp_path / "lease.json")
    Path(path).write_text(json.dumps({"token": "young", "started": "2026-11-30T11:00:00Z", "expires": time.time() + 600}))
    started = time.monotonic()
    with pytest.raises(LEASE.Busy):
        LEASE.hold(path, RUN, "run-a", 100, wait=1)
    assert 0.9 <= time.monotonic() - started < 15
    started = time.monotonic()
    with pytest.raises(LEASE.Busy):
        LEASE.hold(path, RUN, "run-a", 100, wait=-5)
    assert time.monotonic() - started < 4, "a negative wait is no wait (told -5, a wait would take 5 s)"


def test_giving_back_only_this_runs_lease(tmp_path: Path) -> None:
    path = str(tmp_path / "lease.json")
    assert LEASE.release(path, "run-a") == {"token": "run-a", "holder": {}, "busy": False, "released": False, "changed": False}
    LEASE.hold(path, RUN, "run-a", 100)
    held = json.loads(Path(path).read_text())
    assert LEASE.release(path, "run-b") == {"token": "run-b", "holder": held, "busy": False, "released": False, "changed": False}
    assert LEASE.release(path, "") == {"token": "", "holder": held, "busy": False, "released": False, "changed": False}
    assert LEASE.release(path, "run-a", check_mode=True)["released"] is True and os.path.exists(path)
    assert LEASE.release(path, "run-a") == {"token": "run-a", "holder": {}, "busy": False, "released": True, "changed": False}
    assert not os.path.exists(path)


def test_the_lock_command_for_each_state(tmp_path: Path) -> None:
    folder = tmp_path / "opt" / "app"
    path = str(folder / ".relpromote-lock.json")
    assert LEASE.lease_command({"path": path, "ttl": 0}) == {"failed": True, "msg": "ttl must be at least 1 second, got 0", "busy": False}
    gone = LEASE.lease_command({"path": path, "state": "released", "token": "t"})
    assert gone == {"token": "t", "holder": {}, "busy": False, "released": False, "changed": False} and not folder.exists()
    checked = LEASE.lease_command({"path": path, "run": {"id": "run-a"}}, check_mode=True)
    assert checked == {"token": "run-a", "holder": {}, "busy": False, "released": False, "changed": False} and not folder.exists()
    taken = LEASE.lease_command({"path": path, "run": RUN, "ttl": 60, "wait": 0})
    assert taken["token"] == "run-a" and taken["changed"] and stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert json.loads(Path(path).read_text())["expires"] - time.time() <= 60
    refused = LEASE.lease_command({"path": path, "run": {"id": "run-b", "started": "2026-11-30T11:00:00Z"}, "wait": 0, "breakable": None})
    assert refused == {"failed": True, "msg": str(LEASE.Busy(taken["holder"])), "busy": True, "holder": taken["holder"], "token": "run-b",
                       "released": False}
    broke = LEASE.lease_command({"path": path, "run": {"id": "run-b"}, "wait": 0, "breakable": ["run-a"]})
    assert broke["broke"]["token"] == "run-a"
    assert LEASE.lease_command({"path": path, "state": "released", "token": "run-b", "run": None})["released"] is True


def test_the_lock_command_defaults_and_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    taken = LEASE.lease_command({"path": "~/lease.json"})
    assert len(taken["token"]) == 12 and taken["token"] != LEASE.lease_command({"path": "~/other.json"})["token"]
    lease = json.loads((tmp_path / "lease.json").read_text())
    assert 1790 <= lease["expires"] - time.time() <= 1800, "ttl defaults to 1800 s"
    assert LEASE.lease_command({"path": "~/lease.json", "state": "released", "token": taken["token"]})["released"] is True
