"""On-host integrity on real sshd hosts: a file edited inside an unpacked release is found, named, and the
release is unpacked again from its verified artifact before it is (or stays) live, by promote and by rollback."""

from __future__ import annotations

from pathlib import Path

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import make_app_source, make_project
from tests.integration.conftest import write_inventories
from tests.integration.test_promote import build, health, ledger_payloads, live_version

QA = ("qa-app-1", "qa-app-2")


def test_a_file_edited_in_the_live_release_is_named_and_unpacked_again_by_a_re_promotion(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    source = make_app_source(tmp_path / "app")
    build(project, source, "1.0.0", "Hello")
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
    greeting = farm["qa-app-1"].path("/opt/shop/releases/1.0.0/greeting.txt")
    greeting.write_text("Hello from a hand edit\n")
    farm["qa-app-1"].path("/opt/shop/releases/1.0.0/backdoor.py").write_text("print('x')\n")
    pid_before = farm["qa-app-1"].path("/opt/shop/run/app.pid").read_text()

    result = project.json("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert result["result"] == "succeeded"
    assert greeting.read_text() == "Hello\n"
    assert not farm["qa-app-1"].path("/opt/shop/releases/1.0.0/backdoor.py").exists()
    recorded = {h["host"]: h for h in ledger_payloads(project, "promotion.finished")[-1]["hosts"]}
    assert recorded["qa-app-1"]["tampered"] == ["backdoor.py: added", "greeting.txt: changed (size 23, not 6)"]
    assert "tampered" not in recorded["qa-app-2"]
    # The application ran the edited files: it was restarted into the fresh copy.
    assert farm["qa-app-1"].path("/opt/shop/run/app.pid").read_text() != pid_before
    assert all(health(farm, host)["version"] == "1.0.0" for host in QA)


def test_a_rollback_target_edited_on_a_host_is_unpacked_again_before_it_goes_live(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    source = make_app_source(tmp_path / "app")
    build(project, source, "1.0.0", "Hello")
    build(project, source, "1.1.0", "Hi")
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
    project.run("promote", "1.1.0", "--to", "qa", identity="oscar", check=True)
    app = farm["qa-app-2"].path("/opt/shop/releases/1.0.0/app.py")
    app.write_text(app.read_text().replace("def ", "def  ", 1))

    result = project.json("rollback", "--env", "qa", "--reason", "back", identity="alice")
    assert result["result"] == "succeeded"
    assert all(live_version(farm, host) == "1.0.0" and health(farm, host)["version"] == "1.0.0" for host in QA)
    assert "def  " not in app.read_text()
    sealed = farm["qa-app-2"].path("/opt/shop/releases/1.0.0/.release/FILES.json")
    assert sealed.is_file()


def test_an_upload_an_earlier_run_left_behind_is_gone_after_the_next_run(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    source = make_app_source(tmp_path / "app")
    build(project, source, "1.0.0", "Hello")
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
    # What an upload cut off by an unreachable host leaves: Ansible's private staging folder with part of the artifact.
    incoming = farm["qa-app-1"].path("/opt/shop/.incoming")
    (incoming / "ansible-tmp-1764540000.5-4242-1").mkdir()
    (incoming / "ansible-tmp-1764540000.5-4242-1" / "partial.tar.gz").write_bytes(b"\x1f\x8b" + b"\0" * 4096)
    build(project, source, "1.1.0", "Hi")
    project.run("promote", "1.1.0", "--to", "qa", identity="oscar", check=True)
    assert live_version(farm, "qa-app-1") == "1.1.0"
    assert list(incoming.iterdir()) == []
