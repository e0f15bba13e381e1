"""`relpromote evidence` on a real project (real git, real keys made by `keygen`): the pack carries the committed
relpromote.yml of each config its entries stamp, and `evidence verify`, run where the project is not, reads people and
approval policy from them: a qa pack says no approval was required; a production promotion without an approval, or one
made under a config nobody committed, is not packed."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import yaml

from relpromote import events
from relpromote.identity import load_identity
from relpromote.project import Project
from tests.helpers import RELPROMOTE, Cli, git_run, make_app_source, make_project, write_manifest


def _project(tmp_path: Path) -> tuple[Cli, str]:
    cli = make_project(tmp_path / "proj")
    git_run(cli.cwd, "commit", "-q", "-m", "people", "relpromote.yml")
    manifest = write_manifest(tmp_path / "m.yml", "1.0.0")
    cli.run("build", "1.0.0", "--source", str(make_app_source(tmp_path / "app")), "--manifest", str(manifest), identity="alice", check=True)
    return cli, str(cli.json("show", "1.0.0")["digest"])


def _record(cli: Cli, kind: str, actor: str, payload: dict[str, Any]) -> None:
    """What the real command records, signed by the actor's real key and stamped with the project's config (commit, sha256)."""
    opened = Project.open(cli.cwd / "relpromote.yml")
    try:
        opened.ledger.append(kind, actor, load_identity(cli.cwd / ".keys" / f"{actor}.key"), payload)
    finally:
        opened.close()


def _promote(cli: Cli, digest: str, environment: str, actor: str, **extra: Any) -> None:
    _record(cli, events.PROMOTION_FINISHED, actor,
            {"environment": environment, "version": "1.0.0", "digest": digest, "result": "succeeded", "hosts": [], **extra})


def _verify(pack: Path, elsewhere: Path) -> subprocess.CompletedProcess[str]:
    elsewhere.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELPROMOTE_")}
    return subprocess.run([RELPROMOTE, "--json", "evidence", "verify", str(pack)], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=120)


def test_a_qa_pack_carries_the_committed_config_and_says_no_approval_was_required(tmp_path: Path) -> None:
    cli, digest = _project(tmp_path)
    _promote(cli, digest, "qa", "oscar")
    pack = tmp_path / "qa.tar"
    made = cli.json("evidence", "1.0.0", "--env", "qa", "--out", str(pack))
    assert made["config_files"] == 1
    commit = git_run(cli.cwd, "rev-parse", "HEAD").strip()
    committed = git_run(cli.cwd, "show", f"{commit}:relpromote.yml").encode()
    with tarfile.open(pack) as tar:
        configs = [m for m in tar.getmembers() if m.name.startswith("config/")]
        assert len(configs) == 1
        stream = tar.extractfile(configs[0])
        assert stream is not None and stream.read() == committed
    result = _verify(pack, tmp_path / "auditor")
    assert result.returncode == 0, result.stdout + result.stderr
    facts = json.loads(result.stdout)["facts"]
    assert f"approval: not required in qa by its config at {commit[:12]} (promotion #2); none was checked" in facts


def test_production_needs_the_approval_its_committed_config_requires(tmp_path: Path) -> None:
    cli, digest = _project(tmp_path)
    _promote(cli, digest, "production", "alice")
    refused = cli.run("evidence", "1.0.0", "--env", "production", "--out", str(tmp_path / "bare.tar"))
    assert refused.returncode == 3 and "cites no approval, but its config at" in refused.stderr, refused.stderr
    assert not (tmp_path / "bare.tar").exists()

    _record(cli, events.APPROVAL_GRANTED, "carol",
            {"version": "1.0.0", "digest": digest, "environment": "production", "ticket": "CHG-1", "expires_at": "2099-01-01T00:00:00.000000Z"})
    _promote(cli, digest, "production", "alice", approval={"ticket": "CHG-1", "approver": "carol"})
    refused = cli.run("evidence", "1.0.0", "--env", "production", "--out", str(tmp_path / "still.tar"))
    assert refused.returncode == 3 and "the promotion #2 cites no approval" in refused.stderr  # the first one still went live bare


def test_an_approved_production_release_verifies_and_a_promotion_under_a_dirty_config_is_not_packed(tmp_path: Path) -> None:
    cli, digest = _project(tmp_path)
    _record(cli, events.APPROVAL_GRANTED, "carol",
            {"version": "1.0.0", "digest": digest, "environment": "production", "ticket": "CHG-1", "expires_at": "2099-01-01T00:00:00.000000Z"})
    _promote(cli, digest, "production", "alice", approval={"ticket": "CHG-1", "approver": "carol"})
    pack = tmp_path / "prod.tar"
    cli.json("evidence", "1.0.0", "--env", "production", "--out", str(pack))
    result = _verify(pack, tmp_path / "auditor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(f.startswith("approval: required in production by its config at") and "given by carol" in f
               for f in json.loads(result.stdout)["facts"])

    config_path = cli.cwd / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["environments"]["qa"]["approval"] = {"required": False}  # an edit nobody committed
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    _promote(cli, digest, "qa", "oscar")
    refused = cli.run("evidence", "1.0.0", "--env", "qa", "--out", str(tmp_path / "dirty.tar"))
    assert refused.returncode == 3 and "to qa was made under a config that was not committed" in refused.stderr, refused.stderr
