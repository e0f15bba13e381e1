"""relpromote.adapters.runner.ansible_error: Ansible's first error, on one line, never the source excerpt after it."""

from __future__ import annotations

from relpromote.adapters.runner import ansible_error

ROLE_MISSING = """
PLAY [Verify what the hosts run] ***********************************************

TASK [Report what this host runs] **********************************************
\x1b[0;31m[ERROR]: the role 'release_nope' was not found in /p/roles:/p/playbooks\x1b[0m
Origin: /p/playbooks/verify.yml:11:15

 9     - name: Report what this host runs
11         name: release_nope
                 ^ column 15
""".splitlines()


def test_the_message_and_its_origin_on_one_line_without_the_excerpt() -> None:
    assert ansible_error(ROLE_MISSING) == ("the role 'release_nope' was not found in /p/roles:/p/playbooks "
                                           "Origin: /p/playbooks/verify.yml:11:15")


def test_the_first_error_counts_and_old_style_errors_too() -> None:
    lines = ["PLAY [x] ***", "ERROR! Decryption failed (no vault secrets were found that could decrypt)", "",
             "[ERROR]: a second one"]
    assert ansible_error(lines) == "Decryption failed (no vault secrets were found that could decrypt)"


def test_no_error_line_gives_nothing_and_a_long_one_is_cut() -> None:
    assert ansible_error(["PLAY [x] ***", "skipping: no hosts matched"]) == ""
    long = ansible_error(["[ERROR]: " + "x" * 1000], limit=50)
    assert len(long) == 50 and long.endswith("…")
