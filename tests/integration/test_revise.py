"""Source rollback: QA rejects one change, the next release is built without it from a release branch."""

from __future__ import annotations

import io
import tarfile
from datetime import date, timedelta
from pathlib import Path

import yaml

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import Cli, git_run, make_app_source, make_project, one_line_error
from tests.integration.conftest import write_inventories
from tests.integration.test_promote import health, ledger_payloads

JUNIT_OK = b'<testsuite name="r"><testcase name="a"/><testcase name="b"/></testsuite>'


def two_change_release(project: Cli, source: Path, planned: date) -> None:
    (source / "export.py").write_text("print('csv export')\n")
    git_run(source, "add", "export.py")
    git_run(source, "commit", "-q", "-m", "CH-1: CSV export")
    export_commit = git_run(source, "rev-parse", "--short", "HEAD").strip()
    (source / "greeting.txt").write_text("A greeting QA will not like\n")
    git_run(source, "commit", "-qam", "CH-2: new greeting")
    greeting_commit = git_run(source, "rev-parse", "--short", "HEAD").strip()
    manifest = {
        "version": "1.0.0",
        "planned_release": planned.isoformat(),
        "changes": [
            {"id": "CH-1", "type": "enhancement", "title": "CSV export", "owner": "dana", "why": "finance", "how": "new script", "commits": [export_commit]},
            {"id": "CH-2", "type": "other", "title": "New greeting", "owner": "eli", "why": "marketing", "how": "text", "commits": [greeting_commit]},
        ],
    }
    (project.cwd / "1.0.0.yml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    project.run("build", "1.0.0", "--source", str(source), "--manifest", str(project.cwd / "1.0.0.yml"), identity="alice", check=True)


def artifact_file(project: Cli, digest: str, name: str) -> str:
    with tarfile.open(project.cwd / ".relpromote" / "store" / "sha256" / f"{digest}.tar.gz") as tar:
        member = tar.extractfile(name)
        assert member is not None
        return io.TextIOWrapper(member).read()


def test_revise_drops_a_rejected_change_and_requires_a_full_retest(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    source = make_app_source(tmp_path / "app")
    original_greeting = (source / "greeting.txt").read_text()
    two_change_release(project, source, date.today() + timedelta(days=30))
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)

    unrejected = project.run("revise", "1.0.0", "--drop", "CH-2", "--new-version", "1.0.1", identity="alice")
    assert unrejected.returncode == 3 and "CH-2 was not rejected" in one_line_error(unrejected)
    project.run("reject", "1.0.0", "--env", "qa", "--change", "CH-2", "--reason", "greeting offends customers", identity="quinn", check=True)
    again = project.run("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert again.returncode == 3 and "rule 'not-rejected'" in one_line_error(again)

    revised = project.json("revise", "1.0.0", "--drop", "CH-2", "--new-version", "1.0.1", identity="alice")
    assert revised["revision"]["branch"] == "release/1.0.1"
    assert git_run(source, "show", "release/1.0.1:greeting.txt") == original_greeting
    assert git_run(source, "show", "release/1.0.1:export.py") == "print('csv export')\n"
    assert git_run(source, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"  # the user's checkout is untouched
    assert artifact_file(project, revised["digest"], "greeting.txt") == original_greeting
    inside = yaml.safe_load(artifact_file(project, revised["digest"], ".release/manifest.yml"))
    assert [c["id"] for c in inside["changes"]] == ["CH-1"]
    assert inside["dropped"] == [{"id": "CH-2", "reason": "greeting offends customers", "from_version": "1.0.0"}]
    link = ledger_payloads(project, "release.revised")[0]
    assert (link["from_version"], link["version"], link["dropped"]) == ("1.0.0", "1.0.1", ["CH-2"])

    project.run("promote", "1.0.1", "--to", "qa", identity="oscar", check=True)
    assert health(farm, "qa-app-1")["version"] == "1.0.1"
    no_retest = project.run("accept", "1.0.1", "--env", "qa", identity="quinn")
    assert no_retest.returncode == 3 and "requires evidence of kind regression" in one_line_error(no_retest)
    report = tmp_path / "regression.xml"
    report.write_bytes(JUNIT_OK)
    project.run("accept", "1.0.1", "--env", "qa", "--evidence", f"regression={report}", identity="quinn", check=True)


def test_revise_after_the_deadline_is_refused(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    source = make_app_source(tmp_path / "app")
    two_change_release(project, source, date.today() + timedelta(days=1))  # the policy's deadline is 2 days before
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
    project.run("reject", "1.0.0", "--env", "qa", "--change", "CH-2", "--reason", "no", identity="quinn", check=True)
    late = project.run("revise", "1.0.0", "--drop", "CH-2", "--new-version", "1.0.1", identity="alice")
    assert late.returncode == 3 and "too late to drop changes" in one_line_error(late)
    assert "release/1.0.1" not in git_run(source, "branch", "--list")
