"""The board memo (relpromote.usecases.status_state): `status` and `history`'s table answered without loading the project.

A real project (real keys, a release promoted and accepted, a freeze in force, a run in doubt, a dead run's lock, an
entry that does not count), the console script's own entry point run in a child process that says afterwards whether
it imported the config's schema (pydantic): a memo hit never does. Shown: the same bytes from a hit as from a miss
(text and --json); a tampered, stale or foreign memo is ignored and replaced (nothing in it is ever run); an edited
config, an append, a lock and another relpromote source make the next command load the project again; only
`status` and `history` read the memo.
"""

from __future__ import annotations

import ast
import hashlib
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from relpromote import events
from relpromote.adapters.state_checkpoint import _HEADER, MAGIC
from relpromote.identity import load_identity
from relpromote.lock import Lock
from relpromote.project import Project
from relpromote.usecases.status_state import BOARD_SUFFIX, VIEW_SUFFIX
from tests.helpers import BIN, REPO, git_run, make_app_source, make_project, write_manifest

# main() of the console script, and afterwards (atexit: main exits) whether the config's schema was imported.
PROBE = ("import atexit, os, sys\n"
         "atexit.register(lambda: open(os.environ['PROBE_OUT'], 'w').write(str('pydantic' in sys.modules)))\n"
         "sys.argv = ['relpromote', *sys.argv[1:]]\n"
         "from relpromote.cli import main\n"
         "main()\n")
FREEZE = {"reason": "year-end freeze", "start": "2020-01-01T00:00:00+01:00", "end": "2099-12-31T00:00:00+01:00"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made once: 1.0.0 built and promoted to qa, accepted there; a promotion to deployment that never recorded its
    end (in doubt); production frozen (a window with a UTC offset) and locked by a process that is gone; an
    acceptance by someone without the qa role (does not count)."""
    base = tmp_path_factory.mktemp("memo")
    cli = make_project(base / "proj")
    config_path = cli.cwd / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["environments"]["production"]["freeze"] = [FREEZE]
    config["environments"]["deployment"]["freeze"] = [{"reason": "new year's night", "cron": "* 0-5 1 1 *", "timezone": "Europe/Berlin"}]
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    git_run(cli.cwd, "add", "-A")
    git_run(cli.cwd, "commit", "-q", "-m", "people and freezes")
    cli.env["XDG_CACHE_HOME"] = str(base / "cache")
    source = make_app_source(base / "app")
    cli.run("build", "1.0.0", "--source", str(source), "--manifest", str(write_manifest(base / "m.yml", "1.0.0")),
            identity="alice", check=True)
    digest = cli.json("show", "1.0.0")["digest"]
    opened = Project.open(config_path)
    try:
        entries: list[tuple[str, str, dict[str, Any]]] = [
            (events.PROMOTION_FINISHED, "oscar", {"environment": "qa", "result": "succeeded", "hosts": []}),
            (events.VERDICT_ACCEPTED, "quinn", {"environment": "qa", "evidence": [], "note": "fine"}),
            (events.VERDICT_ACCEPTED, "oscar", {"environment": "deployment", "evidence": [], "note": "not oscar's to say"}),
            (events.PROMOTION_STARTED, "oscar", {"environment": "deployment", "lock_id": "feedc0ffee12", "hosts": ["dep-app-01"],
                                                 "recorded_release": None, "in_doubt_before": []}),
        ]
        for kind, actor, payload in entries:
            opened.ledger.append(kind, actor, load_identity(cli.cwd / ".keys" / f"{actor}.key"),
                                 {"version": "1.0.0", "digest": digest, **payload})
        opened.ledger.acquire(Lock("production", "deadbeef0001", "oscar", "promotion", "2026-01-01T00:00:00Z", 2**22 + 7,
                                   f"oscar@{socket.gethostname()}"))
    finally:
        opened.close()
    return cli.cwd


@pytest.fixture
def project(built: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of that project of each test's own, with a cache folder of its own (short: it is made 0700 and checked)."""
    shutil.copytree(built, tmp_path / "proj", symlinks=True)
    cache = Path(tempfile.mkdtemp(prefix="rpm", dir="/tmp"))
    (tmp_path / "proj" / ".cache-folder").write_text(str(cache))
    try:
        yield tmp_path / "proj"
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def record(cwd: Path, kind: str, actor: str, payload: dict[str, Any]) -> None:
    opened = Project.open(cwd / "relpromote.yml")
    try:
        opened.ledger.append(kind, actor, load_identity(cwd / ".keys" / f"{actor}.key"), payload)
    finally:
        opened.close()


def cache_of(project: Path) -> Path:
    return Path((project / ".cache-folder").read_text())


def run(project: Path, *args: str, pythonpath: Path | None = None) -> tuple[str, bool]:
    """(stdout, whether the config's schema was loaded) of `relpromote ARGS` in the project; exit 0 required."""
    probe = project.parent / "probe"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "XDG_CACHE_HOME": str(cache_of(project)),
           "PROBE_OUT": str(probe), "COLUMNS": "100"}
    env.pop("RELPROMOTE_CONFIG", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout, probe.read_text() == "True"


def memo_files(project: Path, suffix: str) -> list[Path]:
    return sorted((cache_of(project) / "relpromote" / "verified").glob(f"*{suffix}"))


def forget_memo(project: Path) -> None:
    for path in memo_files(project, VIEW_SUFFIX) + memo_files(project, BOARD_SUFFIX):
        path.unlink()


def rewrite(path: Path, change: Any) -> None:
    """The user's own memo with other contents, its digest made to match (as only the user could)."""
    data = path.read_bytes()
    key, written, _ = _HEADER.unpack_from(data, len(MAGIC))
    kept = pickle.loads(data[len(MAGIC) + _HEADER.size:])
    change(kept)
    body = pickle.dumps(kept)
    path.write_bytes(MAGIC + _HEADER.pack(key, written, hashlib.sha256(body).digest()) + body)


VIEWS = [("status",), ("status", "--env", "production"), ("--json", "status"), ("--json", "status", "--env", "deployment"),
         ("history",), ("history", "--env", "deployment", "--kind", "verdict")]


def test_a_memo_hit_prints_exactly_what_a_miss_prints(project: Path) -> None:
    status = run(project, "status")[0]
    assert "FROZEN: year-end freeze" in status and "IN DOUBT" in status and "whose process is gone" in status
    assert "LEDGER: 1 entry does not count" in status
    for args in VIEWS:
        forget_memo(project)
        missed, loaded = run(project, *args)
        assert loaded, args  # the project was loaded: the memo was made...
        hit, loaded = run(project, *args)
        assert not loaded, args  # ...and then answered alone
        assert hit == missed, args


TAMPERING = [(how, BOARD_SUFFIX) for how in ("body-flipped", "open-to-others", "foreign-class", "other-key", "too-old", "symlink")]
TAMPERING += [(how, VIEW_SUFFIX) for how in ("body-flipped", "foreign-class")]  # the same code reads both


@pytest.mark.parametrize(("how", "which"), TAMPERING)
def test_a_tampered_stale_or_foreign_memo_is_ignored_and_replaced(project: Path, which: str, how: str) -> None:
    expected = run(project, "status")[0]
    [path] = memo_files(project, which)
    data = path.read_bytes()
    key, written, digest = _HEADER.unpack_from(data, len(MAGIC))
    body = data[len(MAGIC) + _HEADER.size:]
    marker = project / "ran"
    if how == "body-flipped":
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif how == "open-to-others":
        path.chmod(0o644)
    elif how == "foreign-class":  # a body that would run a command when unpickled: no class is ever looked up
        evil = pickle.dumps(_Evil(str(marker)))
        path.write_bytes(MAGIC + _HEADER.pack(key, written, hashlib.sha256(evil).digest()) + evil)
    elif how == "other-key":  # another project's (or another user's copied in): keyed for something else
        path.write_bytes(MAGIC + _HEADER.pack(bytes(32), written, digest) + body)
    elif how == "too-old":
        path.write_bytes(MAGIC + _HEADER.pack(key, written - 2 * 86400, digest) + body)
    else:  # a link planted where the memo was, to a file that holds the right bytes
        elsewhere = project / "planted"
        elsewhere.write_bytes(data)
        elsewhere.chmod(0o600)
        path.unlink()
        path.symlink_to(elsewhere)
    assert run(project, "status") == (expected, True)  # ignored: the project loaded
    assert not marker.exists()
    [path] = memo_files(project, which)
    assert path.is_file() and not path.is_symlink() and (path.stat().st_mode & 0o777) == 0o600  # replaced
    assert run(project, "status") == (expected, False)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_the_board_is_answered_from_the_memo_and_history_takes_what_does_not_count_from_it(project: Path) -> None:
    run(project, "history")
    [board] = memo_files(project, BOARD_SUFFIX)
    rewrite(board, lambda facts: facts["environments"]["qa"]["row"].__setitem__("current", "0.9.9"))
    assert "0.9.9" in run(project, "status")[0]
    rewrite(board, lambda facts: facts["problems"].append({"seq": 1, "reason": "planted"}))
    assert "DOES NOT COUNT (planted)" in run(project, "history")[0]
    assert "planted" not in run(project, "--json", "history")[0]  # JSON reads the ledger: never the memo


def test_an_edited_config_an_append_and_a_lock_are_seen_at_once(project: Path) -> None:
    run(project, "status")
    config_path = project / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["environments"]["qa"]["freeze"] = [{**FREEZE, "reason": "qa is being rebuilt"}]
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))  # not committed: the config deciding now
    seen, loaded = run(project, "status", "--env", "qa")
    assert loaded and "FROZEN: qa is being rebuilt" in seen
    assert run(project, "status", "--env", "qa") == (seen, False)
    record(project, events.VERIFY_FINISHED, "oscar", {"environment": "qa", "result": "ok", "drifted": []})
    after, loaded = run(project, "--json", "status", "--env", "qa")
    assert loaded and '"result": "ok"' in after
    opened = Project.open(config_path)
    try:
        opened.ledger.acquire(Lock("qa", "0123456789ab", "otto", "promotion", "2026-01-01T00:00:00Z", os.getpid(), "otto@elsewhere"))
    finally:
        opened.close()
    assert "locked by otto's promotion" in run(project, "status", "--env", "qa")[0]


def test_another_relpromote_source_loads_the_project_again(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "code"
    shutil.copytree(REPO / "relpromote", copy / "relpromote", ignore=shutil.ignore_patterns("__pycache__"))
    expected, _ = run(project, "status", pythonpath=copy)
    assert run(project, "status", pythonpath=copy) == (expected, False)
    for module in ("cli/status.py", "freeze.py"):  # what shows the board; what reads the config's freezes
        with (copy / "relpromote" / module).open("a") as source:
            source.write("\n# another version\n")
        assert run(project, "status", pythonpath=copy) == (expected, True)
        assert run(project, "status", pythonpath=copy) == (expected, False)


def test_only_status_and_history_read_the_memo() -> None:
    readers = set()
    for path in sorted((REPO / "relpromote").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and any(alias.name in ("remembered_board", "kept_rows") for alias in node.names):
                readers.add(path.relative_to(REPO).as_posix())
    assert readers == {"relpromote/cli/status.py"}
