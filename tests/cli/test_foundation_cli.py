"""The foundation commands through the console script, as a user calls them."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from pathlib import Path

import yaml

from tests.helpers import NO_GIT_IDENTITY, Cli, git_run, make_app_source, one_line_error, write_manifest


def ledger_rows(project: Cli) -> list[tuple[int, str, str]]:
    path = project.cwd / ".relpromote" / "ledger.db"
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    return list(db.execute("SELECT seq, kind, actor FROM entries ORDER BY seq"))


def test_init_scaffolds_a_valid_committed_project(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    assert cli.run("init", "proj").returncode == 0
    project = tmp_path / "proj"
    for env in ("qa", "deployment", "production"):
        assert (project / "inventories" / env / "hosts.yml").is_file()
        assert (project / "inventories" / env / "group_vars").is_dir()
    assert (project / "playbooks").is_dir() and (project / "ansible.cfg").is_file()
    assert git_run(project, "status", "--porcelain") == ""
    status = Cli(project).json("status")
    assert [e["environment"] for e in status["environments"]] == ["qa", "deployment", "production"]
    again = cli.run("init", "proj")
    assert again.returncode == 2 and "a project is already here" in one_line_error(again)


def test_bad_config_gets_one_line_and_exit_2(project: Cli) -> None:
    config = project.cwd / "relpromote.yml"
    config.write_text(config.read_text().replace("inventory: inventories/qa", "inventroy: inventories/qa"))
    result = project.run("status")
    assert result.returncode == 2
    assert one_line_error(result) == (
        "relpromote: relpromote.yml: environments.qa.inventroy: unknown key; did you mean 'inventory'?"
    )


def test_missing_config(tmp_path: Path) -> None:
    result = Cli(tmp_path).run("releases")
    assert result.returncode == 2 and "not inside a promotion project: no relpromote.yml in" in one_line_error(result)


def test_keygen_writes_a_private_key_and_prints_the_people_line(tmp_path: Path) -> None:
    result = Cli(tmp_path).run("keygen", "zoe", "--out", "zoe.key")
    assert result.returncode == 0
    line = result.stdout.splitlines()[0]
    person = yaml.safe_load(line)[0]
    assert person["name"] == "zoe" and person["key"].startswith("ed25519:")
    assert stat.S_IMODE((tmp_path / "zoe.key").stat().st_mode) == 0o600
    again = Cli(tmp_path).run("keygen", "zoe", "--out", "zoe.key")
    assert again.returncode == 2 and "already exists" in one_line_error(again)


def test_build_stores_records_and_prints_the_digest(project: Cli, app_source: Path) -> None:
    manifest = write_manifest(project.cwd / "1.0.0.yml", "1.0.0")
    result = project.run("build", "1.0.0", "--source", str(app_source), "--manifest", str(manifest), identity="alice")
    assert result.returncode == 0, result.stderr
    digest = result.stdout.strip()
    stored = project.cwd / ".relpromote" / "store" / "sha256" / f"{digest}.tar.gz"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == digest
    assert ledger_rows(project) == [(1, "release.built", "alice")]
    shown = project.json("show", "1.0.0")
    assert shown["digest"] == digest and shown["source"]["commit"] == git_run(app_source, "rev-parse", "HEAD").strip()
    assert shown["source"]["dirty"] is False and shown["changes"][0]["id"] == "CH-1"

    same = project.run("build", "1.0.0", "--source", str(app_source), "--manifest", str(manifest), identity="alice")
    assert same.returncode == 0 and same.stdout.strip() == digest
    assert len(ledger_rows(project)) == 1

    (app_source / "greeting.txt").write_text("changed\n")
    git_run(app_source, "commit", "-qam", "change")
    other = project.run("build", "1.0.0", "--source", str(app_source), "--manifest", str(manifest), identity="alice")
    assert other.returncode == 3 and "a version is immutable" in one_line_error(other)
    assert len(ledger_rows(project)) == 1
    assert len(list(stored.parent.glob("*.tar.gz"))) == 1


def test_build_bad_inputs(project: Cli, app_source: Path) -> None:
    good = write_manifest(project.cwd / "m.yml", "2.0.0")
    undocumented = write_manifest(project.cwd / "u.yml", "2.0.0", [{"id": "CH-9", "type": "fix", "title": "t", "owner": "o", "why": "w"}])
    cases = [
        (("2.0.0", "--source", str(app_source), "--manifest", str(undocumented)), "alice", 2, "change CH-9 has no 'how'"),
        (("2.1.0", "--source", str(app_source), "--manifest", str(good)), "alice", 2, "manifest is for version 2.0.0, not 2.1.0"),
        (("2.0.0", "--source", str(app_source), "--manifest", "nope.yml"), "alice", 2, "no such manifest"),
        (("2.0.0", "--source", "nowhere", "--manifest", str(good)), "alice", 2, "source is not a directory"),
    ]
    for args, who, code, message in cases:
        result = project.run("build", *args, identity=who)
        assert result.returncode == code, (args, result.stderr)
        assert message in one_line_error(result)
    assert ledger_rows(project) == []


def test_build_refuses_unknown_and_missing_identities(project: Cli, app_source: Path, tmp_path: Path) -> None:
    manifest = write_manifest(project.cwd / "m.yml", "1.0.0")
    Cli(tmp_path).run("keygen", "mallory", "--out", str(project.cwd / ".keys" / "mallory.key"), check=True)
    stranger = project.run("build", "1.0.0", "--source", str(app_source), "--manifest", str(manifest), identity="mallory")
    assert stranger.returncode == 3 and "is not among the people" in one_line_error(stranger)
    missing = project.run("build", "1.0.0", "--source", str(app_source), "--manifest", str(manifest), identity="nobody")
    assert missing.returncode == 2 and "no identity key" in one_line_error(missing)
    assert ledger_rows(project) == []


def test_dirty_tree_is_refused_unless_allowed_and_then_recorded(project: Cli, tmp_path: Path) -> None:
    source = make_app_source(tmp_path / "dirty-app")
    (source / "greeting.txt").write_text("uncommitted\n")
    manifest = write_manifest(project.cwd / "m.yml", "1.0.0")
    refused = project.run("build", "1.0.0", "--source", str(source), "--manifest", str(manifest), identity="alice")
    assert refused.returncode == 3 and "uncommitted changes" in one_line_error(refused)
    allowed = project.json("build", "1.0.0", "--source", str(source), "--manifest", str(manifest), "--allow-dirty", identity="alice")
    assert allowed["source"]["dirty"] is True
    assert project.json("show", "1.0.0")["source"]["dirty"] is True


def test_build_tags_the_commit(project: Cli, app_source: Path) -> None:
    manifest = write_manifest(project.cwd / "m.yml", "1.2.0")
    data = project.json("build", "1.2.0", "--source", str(app_source), "--manifest", str(manifest), "--tag", identity="alice")
    assert data["source"]["tag"] == "v1.2.0"
    assert git_run(app_source, "rev-list", "-n1", "v1.2.0").strip() == data["source"]["commit"]


def test_build_tags_as_the_builder_when_git_knows_nobody(project: Cli, app_source: Path) -> None:
    manifest = write_manifest(project.cwd / "m.yml", "1.3.0")
    stranger = Cli(project.cwd, env=NO_GIT_IDENTITY)
    data = stranger.json("build", "1.3.0", "--source", str(app_source), "--manifest", str(manifest), "--tag", identity="alice")
    assert git_run(app_source, "rev-list", "-n1", "v1.3.0").strip() == data["source"]["commit"]
    assert git_run(app_source, "for-each-ref", "--format=%(taggername) %(taggeremail)", "refs/tags/v1.3.0").strip() == (
        "alice <alice@relpromote.invalid>")
    # With an identity of their own, the user tags as themselves.
    manifest = write_manifest(project.cwd / "m2.yml", "1.4.0")
    project.json("build", "1.4.0", "--source", str(app_source), "--manifest", str(manifest), "--tag", identity="alice")
    assert "relpromote.invalid" not in git_run(app_source, "for-each-ref", "--format=%(taggeremail)", "refs/tags/v1.4.0")


def test_listing_and_history_in_json(project: Cli, app_source: Path) -> None:
    for version in ("1.0.0", "1.1.0"):
        (app_source / "greeting.txt").write_text(f"{version}\n")
        git_run(app_source, "commit", "-qam", version)
        manifest = write_manifest(project.cwd / f"{version}.yml", version)
        project.run("build", version, "--source", str(app_source), "--manifest", str(manifest), identity="alice", check=True)
    listed = project.json("releases")
    assert [r["version"] for r in listed["releases"]] == ["1.0.0", "1.1.0"]
    history = project.json("history", "--version", "1.1.0")
    assert [(e["kind"], e["actor"]) for e in history["entries"]] == [("release.built", "alice")]
    unknown = project.run("show", "9.9.9")
    assert unknown.returncode == 2 and "unknown version 9.9.9" in one_line_error(unknown)
    failed = project.json("show", "9.9.9", expect=2)
    assert failed["ok"] is False and failed["exit_code"] == 2


def test_audit_verify_names_an_edited_row(project: Cli, app_source: Path) -> None:
    manifest = write_manifest(project.cwd / "m.yml", "1.0.0")
    project.run("build", "1.0.0", "--source", str(app_source), "--manifest", str(manifest), identity="alice", check=True)
    manifest = write_manifest(project.cwd / "m2.yml", "1.0.1")
    project.run("build", "1.0.1", "--source", str(app_source), "--manifest", str(manifest), identity="alice", check=True)
    assert project.json("audit", "verify")["entry_count"] == 2
    db = sqlite3.connect(project.cwd / ".relpromote" / "ledger.db")
    db.execute("DROP TRIGGER entries_append_only_update")  # what an attacker with file access would do
    db.execute("UPDATE entries SET payload = replace(payload, 'dana', 'mallory') WHERE seq = 2")
    db.commit()
    result = project.run("audit", "verify")
    assert result.returncode == 1
    assert one_line_error(result) == "relpromote: ledger entry #2 is bad: content does not match its hash (the row was edited)"
