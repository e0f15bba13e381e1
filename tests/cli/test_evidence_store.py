"""What `accept --evidence` keeps in the store are the very bytes it hashed and cited, whatever the file does after."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
from pathlib import Path

from relpromote import events
from relpromote.identity import load_identity
from relpromote.project import Project
from tests.helpers import BIN, RELPROMOTE, Cli, make_app_source, make_project, write_manifest

REPORT = '<testsuite name="unit" tests="2"><testcase name="a"/><testcase name="b"/></testsuite>\n'


def _live_in_qa(tmp_path: Path) -> Cli:
    cli = make_project(tmp_path / "proj")
    manifest = write_manifest(tmp_path / "m.yml", "1.0.0")
    cli.run("build", "1.0.0", "--source", str(make_app_source(tmp_path / "app")), "--manifest", str(manifest), identity="alice", check=True)
    digest = cli.json("show", "1.0.0")["digest"]
    opened = Project.open(cli.cwd / "relpromote.yml")
    try:  # what a real promotion records (signed by oscar's real key); no hosts needed for a verdict
        opened.ledger.append(events.PROMOTION_FINISHED, "oscar", load_identity(cli.cwd / ".keys" / "oscar.key"),
                             {"environment": "qa", "version": "1.0.0", "digest": digest, "result": "succeeded", "hosts": []})
    finally:
        opened.close()
    return cli


def test_a_report_given_through_a_pipe_is_stored_whole(tmp_path: Path) -> None:
    cli = _live_in_qa(tmp_path)
    report = tmp_path / "unit.xml"
    report.write_text(REPORT)
    command = (f"{shlex.quote(RELPROMOTE)} --json accept 1.0.0 --env qa --evidence unit=<(cat {shlex.quote(str(report))}) "
               f"--identity {shlex.quote(str(cli.cwd / '.keys' / 'quinn.key'))}")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", command], cwd=cli.cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    cited = cli.json("history", "--kind", "verdict.accepted")["entries"][0]
    accepted = Project.open(cli.cwd / "relpromote.yml")
    try:
        item = next(e for e in accepted.ledger.entries() if e.seq == cited["seq"]).payload["evidence"][0]
        stored = accepted.store.root / item["stored"]
    finally:
        accepted.close()
    assert item["sha256"] == hashlib.sha256(REPORT.encode()).hexdigest()
    assert stored.read_bytes() == REPORT.encode()  # not an empty file under the report's digest
