"""Promotion speed on real sshd hosts, in one run on the same hosts:

- relpromote promote            against raw `ansible-playbook playbooks/promote.yml` (goal: <= 1.05x)
- relpromote promote            against the playbook a user would write instead, with Ansible's
                                default settings: copy, unarchive, symlink, restart (goal: <= 0.66x)

Run as root: `.venv/bin/python -m benchmarks.promote_speed [--hosts 5] [--rounds 3] [--size-mb 1]`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml

from benchmarks.harness import BIN, build, farm, make_project, median_of, relpromote, report, reset_hosts, run

NAIVE_PLAYBOOK = """\
- name: Deploy the app the plain way
  hosts: app
  gather_facts: false
  tasks:
    - name: Release directory
      ansible.builtin.file: {path: "/opt/shop/releases/{{ version }}", state: directory, mode: "0755"}
    - name: Copy the artifact
      ansible.builtin.copy: {src: "{{ artifact }}", dest: "/opt/shop/{{ version }}.tar.gz", mode: "0644"}
    - name: Unpack it
      ansible.builtin.unarchive: {src: "/opt/shop/{{ version }}.tar.gz", dest: "/opt/shop/releases/{{ version }}", remote_src: true}
    - name: Point current at it
      ansible.builtin.file: {src: "/opt/shop/releases/{{ version }}", dest: /opt/shop/current, state: link}
    - name: Restart the app
      ansible.builtin.command: /opt/shop/current/bin/restart
      environment: {RELEASE_BASE_DIR: /opt/shop, APP_HOST: "{{ ansible_host }}", APP_PORT: "8080"}
      changed_when: true
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mb", type=float, default=1.0)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-promote-") as folder:
        workdir = Path(folder)
        with farm(workdir, options.hosts) as hosts:
            project = make_project(workdir, hosts)
            release = build(project, workdir, "1.0.0", int(options.size_mb * 1024 * 1024))
            inventory = project / "inventories" / "qa"
            extravars = {"relpromote_hosts": "app", "release_version": "1.0.0", "release_digest": release["digest"],
                         "release_artifact": release["artifact"]}
            (workdir / "extravars.yml").write_text(yaml.safe_dump(extravars))
            (workdir / "naive.yml").write_text(NAIVE_PLAYBOOK)
            (workdir / "default.cfg").write_text("[defaults]\nhost_key_checking = False\n")

            def fresh() -> None:
                reset_hosts(hosts)

            ours = median_of(options.rounds, fresh, lambda: relpromote(project, workdir, "promote", "1.0.0", "--to", "qa"))
            raw = median_of(options.rounds, fresh, lambda: run(
                [str(BIN / "ansible-playbook"), "-i", str(inventory), "-e", f"@{workdir / 'extravars.yml'}", "playbooks/promote.yml"],
                cwd=project, env={"ANSIBLE_CONFIG": str(project / "ansible.cfg")}))
            naive = median_of(options.rounds, fresh, lambda: run(
                [str(BIN / "ansible-playbook"), "-i", str(inventory), "-e", f"version=1.0.0 artifact={release['artifact']}", str(workdir / "naive.yml")],
                cwd=workdir, env={"ANSIBLE_CONFIG": str(workdir / "default.cfg")}))
            reset_hosts(hosts)
    report(
        f"promotion of a {options.size_mb:g} MB release to {options.hosts} fresh sshd hosts, median of {options.rounds}",
        [("relpromote promote", *ours), ("raw ansible-playbook playbooks/promote.yml", *raw),
         ("plain playbook (copy, unarchive, link, restart), Ansible defaults", *naive)],
        [("relpromote / raw ansible-playbook", ours[0] / raw[0], 1.05, "<="),
         ("relpromote / plain playbook with defaults", ours[0] / naive[0], 0.66, "<=")],
    )


if __name__ == "__main__":
    main()
