"""Pinned host keys on real sshd hosts: with checking on (the default), a host whose key is not pinned is refused;
`hosts trust` shows the fingerprints, pins them in the inventory's known_hosts and records who; a host whose key
changed fails the run with one line naming it and both fingerprints."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from relpromote.adapters.known_hosts import key_problem_of
from relpromote.testing.sshd import SshHostFarm
from tests.helpers import make_app_source, make_project, one_line_error
from tests.integration.conftest import commit_project, write_inventories
from tests.integration.test_promote import build, ledger_payloads, live_version

QA = ("qa-app-1", "qa-app-2")


def fingerprint(public_key: Path) -> str:
    return subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(public_key)], capture_output=True, text=True,
                          check=True).stdout.split()[1]


def host_key(farm: SshHostFarm, name: str) -> Path:
    return farm.workdir / "sshd" / name / "ssh_host_ed25519_key"


def test_host_keys_are_pinned_by_a_person_and_a_changed_key_stops_the_run(tmp_path: Path, farm: SshHostFarm) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    hosts_file = project.cwd / "inventories" / "qa" / "hosts.yml"
    inventory = yaml.safe_load(hosts_file.read_text())
    for variables in inventory["all"]["hosts"].values():
        del variables["ansible_ssh_common_args"]  # the harness's explicit "no checking": gone, as in a real inventory
    hosts_file.write_text(yaml.safe_dump(inventory, sort_keys=False))
    commit_project(project, "qa: host keys checked")
    source = make_app_source(tmp_path / "app")
    build(project, source, "1.0.0", "Hello")

    unknown = project.run("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert unknown.returncode == 1, unknown.stderr
    line = one_line_error(unknown)
    assert "not pinned" in line and "relpromote hosts trust --env qa" in line and "qa-app-1" in line, line
    assert not any(farm[h].path("/opt/shop/current").exists() for h in QA)

    asked = project.run("--json", "hosts", "trust", "--env", "qa", identity="oscar")
    assert asked.returncode == 2 and "--yes" in asked.stdout and not (project.cwd / "inventories" / "qa" / "known_hosts").exists()
    refused = project.run("hosts", "trust", "--env", "qa", "--yes", identity="quinn")
    assert refused.returncode == 3, refused.stderr

    trusted = project.json("hosts", "trust", "--env", "qa", "--yes", identity="oscar")
    expected = {h: fingerprint(host_key(farm, h).with_suffix(".pub")) for h in QA}
    assert sorted(trusted["trusted"]) == list(QA)
    assert {h["host"]: [k["fingerprint"] for k in h["keys"]] for h in trusted["hosts"]} == {h: [fp] for h, fp in expected.items()}
    recorded = ledger_payloads(project, "hosts.trusted")[-1]
    assert {h["host"]: h["keys"][0]["fingerprint"] for h in recorded["hosts"]} == expected and recorded["environment"] == "qa"
    assert len((project.cwd / "inventories" / "qa" / "known_hosts").read_text().splitlines()) == 3  # a header and 2 keys
    commit_project(project, "qa: pinned host keys")
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
    assert all(live_version(farm, h) == "1.0.0" for h in QA)
    assert project.json("hosts", "trust", "--env", "qa", "--yes", identity="oscar")["trusted"] == []

    # qa-app-1 is reinstalled: a new host key.
    farm.stop_host("qa-app-1")
    key = host_key(farm, "qa-app-1")
    key.unlink()
    key.with_suffix(".pub").unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    farm.start_host("qa-app-1")
    changed = project.run("promote", "1.0.0", "--to", "qa", identity="oscar")
    assert changed.returncode == 1, changed.stderr
    line = one_line_error(changed)
    new = fingerprint(key.with_suffix(".pub"))
    assert "qa-app-1" in line and "CHANGED" in line and new in line and expected["qa-app-1"] in line, line
    assert "qa-app-2: " not in line
    # When Ansible only saw a broken pipe (ssh refused the key and exited while the module was being written to it,
    # which happens under load), the run asks the host itself: the same verdict, and none for a host whose key is pinned.
    inventory = project.cwd / "inventories" / "qa"
    asked = key_problem_of(inventory, "qa-app-1", "qa") or ""
    assert "CHANGED" in asked and new in asked and expected["qa-app-1"] in asked and "--env qa" in asked, asked
    assert key_problem_of(inventory, "qa-app-2", "qa") is None
