"""relpromote.adapters.known_hosts: the environment's pinned keys, how a run uses them, and ssh's refusals on one line."""

from __future__ import annotations

import subprocess
from pathlib import Path

from relpromote.adapters.known_hosts import fingerprints, host_key_problem, host_pattern, keys_for, known_lines, rewrite, ssh_envvars


def key_line(tmp_path: Path, name: str, pattern: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True)
    kind, body, *_ = (tmp_path / f"{name}.pub").read_text().split()
    return f"{pattern} {kind} {body}"


def test_runs_check_strictly_against_the_environments_file_only(tmp_path: Path) -> None:
    (tmp_path / "inventories" / "qa").mkdir(parents=True)
    envvars = ssh_envvars(tmp_path / "inventories" / "qa")
    assert envvars["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert envvars["ANSIBLE_SSH_COMMON_ARGS"] == (f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={tmp_path}/inventories/qa/known_hosts "
                                                  "-o GlobalKnownHostsFile=/dev/null")


def test_rewrite_replaces_only_the_trusted_hosts_lines(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    old_a, b = key_line(tmp_path, "a", "10.0.0.1"), key_line(tmp_path, "b", host_pattern("10.0.0.2", 2222))
    path.write_text(f"{old_a}\n{b}\n")
    new_a = key_line(tmp_path, "a2", "10.0.0.1")
    rewrite(path, {"10.0.0.1": [new_a]})
    assert known_lines(path) == [b, new_a] and keys_for(known_lines(path), "[10.0.0.2]:2222") == [b]
    assert [k.type for k in fingerprints(known_lines(path))] == ["ssh-ed25519", "ssh-ed25519"]


def test_a_changed_key_names_both_fingerprints_on_one_line(tmp_path: Path) -> None:
    pinned = key_line(tmp_path, "old", "[10.0.0.1]:22")
    (tmp_path / "known_hosts").write_text(f"# header\n{pinned}\n")
    old = fingerprints([pinned])[0].fingerprint
    said = (f"Failed to connect to the host via ssh: @@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
            f"The fingerprint for the ED25519 key sent by the remote host is\nSHA256:NEWNEWNEW.\n"
            f"Please contact your system administrator.\nAdd correct host key in {tmp_path}/known_hosts to get rid of this message.\n"
            f"Offending ED25519 key in {tmp_path}/known_hosts:2\nHost key verification failed.")
    line = host_key_problem(said, "qa")
    assert line is not None and "\n" not in line
    assert "SHA256:NEWNEWNEW (ED25519)" in line and old in line and "relpromote hosts trust --env qa" in line


def test_an_unknown_key_and_other_failures() -> None:
    unknown = host_key_problem("No ED25519 host key is known for [127.0.89.10]:22 and you have requested strict checking.\n"
                               "Host key verification failed.", "qa")
    assert unknown is not None and "[127.0.89.10]:22 is not pinned" in unknown
    assert host_key_problem("ssh: connect to host 10.0.0.1 port 22: Connection refused") is None
