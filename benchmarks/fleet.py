"""Fleet benchmarks on real sshd hosts (issue 15), each figure a ratio against a baseline measured in the same run:

- scale:  promotion wall time of a 1 MB release to 1, 5, 20 and 50 fresh hosts, and the marginal cost of a host
          ((t(N) - t(1)) / (N - 1)) against a single host's time divided by forks (goal: <= 1.0x, i.e. at most
          1/forks of a single host's time per extra host)
- pull:   a 100 MB release to 20 fresh hosts pulled from a real nginx on loopback against the same pushed from the
          controller (goal: pull <= 0.5x push); then one host's share, in CPU seconds: release_unpack's work for that
          artifact pulled (streamed from nginx) against pushed (the upload hashed, then unpacked), run with this
          machine's python3 as the action plugin runs it on a host
- raw:    relpromote promote against raw `ansible-playbook playbooks/promote.yml` at 20 hosts (goal: <= 1.02x)
- tuning: raw `ansible-playbook playbooks/promote.yml` at 20 hosts with the project's ansible.cfg (forks 10, pipelining,
          ControlPersist, linear strategy, no facts) against one setting changed at a time (docs/fleet.md)

Every step starts from fresh hosts (nothing deployed, no application running) and cold SSH sockets. Steps that are
compared run interleaved, round by round, so a machine that gets busier during the run burdens both sides alike.

Run as root: `.venv/bin/python -m benchmarks.fleet [--only scale,pull,raw,tuning] [--rounds 3] [--counts 1,5,20,50]`
(RELPROMOTE_TEST_NET picks the loopback /24 of the hosts, as for the tests).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from benchmarks.harness import BIN, REPO, build, cold_sockets, farm, git, make_project, relpromote, report, reset_hosts, run, timed
from relpromote.testing.nginx import NginxServer
from relpromote.testing.sshd import SshHostFarm

FORKS = 10  # the project's ansible.cfg (forks = 10)
GATHER_FIRST = """\
- name: Gather facts first, as a play with gather_facts left on does
  hosts: "{{ relpromote_hosts | default('app') }}"
  gather_facts: true
  tasks: []
- name: Then the promotion
  ansible.builtin.import_playbook: PROMOTE
"""


def use_hosts(project: Path, hosts: SshHostFarm, count: int) -> None:
    """The qa inventory holds the first `count` hosts of the farm."""
    names = list(hosts.names)[:count]
    inventory = hosts.inventory(group_by={"app": names})
    inventory["all"]["hosts"] = {name: value for name, value in inventory["all"]["hosts"].items() if name in names}
    (project / "inventories" / "qa" / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    git(project, "commit", "-q", "--allow-empty", "-am", f"{count} hosts")


def set_transfer(project: Path, url: str | None) -> None:
    config_path = project / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["environments"]["qa"]["artifacts"] = {"transfer": "pull", "url": url} if url else {"transfer": "push"}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    git(project, "commit", "-q", "--allow-empty", "-am", f"transfer {'pull' if url else 'push'}")


def fresh(hosts: SshHostFarm) -> Callable[[], None]:
    def prepare() -> None:
        reset_hosts(hosts)
        cold_sockets()
    return prepare


def interleaved(rounds: int, prepare: Callable[[], None], steps: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            prepare()
            samples[name].append(timed(step))
    return samples


def row(name: str, samples: list[float]) -> tuple[str, float, list[float]]:
    return name, statistics.median(samples), samples


def scale(workdir: Path, hosts: SshHostFarm, project: Path, counts: list[int], rounds: int) -> None:
    promote = lambda: relpromote(project, workdir, "promote", "1.0.0", "--to", "qa")  # noqa: E731
    times: dict[int, list[float]] = {}
    for count in counts:
        use_hosts(project, hosts, count)
        times[count] = interleaved(rounds, fresh(hosts), {"promote": promote})["promote"]
    single = statistics.median(times[counts[0]])
    rows = [row(f"relpromote promote, {count} host(s)", times[count]) for count in counts]
    ratios = []
    for count in counts[1:]:
        marginal = (statistics.median(times[count]) - single) / (count - counts[0])
        rows.append((f"  marginal cost per host, {counts[0]} -> {count} hosts", marginal, []))
        ratios.append((f"marginal per host at {count} / (t({counts[0]}) / forks {FORKS})", marginal / (single / FORKS), 1.0, "<="))
    report(f"promotion of a 1 MB release to fresh sshd hosts, median of {rounds}", rows, ratios)


def pull_against_push(workdir: Path, hosts: SshHostFarm, count: int, size_mb: int, rounds: int) -> None:
    folder = workdir / "pull"
    folder.mkdir()
    project = make_project(folder, hosts)
    use_hosts(project, hosts, count)
    big = build(project, folder, "1.0.0", size_mb * 1024 * 1024)
    build(project, folder, "0.1.0", 1024 * 1024)  # the baseline: what a promotion costs besides moving the artifact
    with NginxServer(folder / "nginx", root=folder / "served", address=f"{hosts.network}.250", workers=2) as server:
        server.publish(project / ".relpromote" / "store")

        def push() -> None:
            set_transfer(project, None)
            relpromote(project, folder, "promote", "1.0.0", "--to", "qa")

        def pull() -> None:
            set_transfer(project, server.url)
            relpromote(project, folder, "promote", "1.0.0", "--to", "qa")

        def small() -> None:
            set_transfer(project, None)
            relpromote(project, folder, "promote", "0.1.0", "--to", "qa")

        samples = interleaved(rounds, fresh(hosts), {"push": push, "pull": pull, "small": small})
        host_samples = host_share(folder, server, big["digest"], rounds)
        host_samples.update(upload_share(hosts, server.root / "sha256" / f"{big['digest']}.tar.gz", rounds))
    push_time, pull_time, small_time = (statistics.median(samples[name]) for name in ("push", "pull", "small"))
    report(f"a {size_mb} MB release to {count} fresh sshd hosts, median of {rounds} (nginx on loopback, 2 workers)",
           [row("push (the controller uploads over each host's SSH connection)", samples["push"]),
            row("pull (each host downloads from nginx, checks the sha256)", samples["pull"]),
            row("baseline: a 1 MB release, pushed", samples["small"])],
           [("pull / push", pull_time / push_time, 0.5, "<="),
            (f"pull / push, time above the 1 MB baseline (moving {size_mb} MB)", (pull_time - small_time) / (push_time - small_time), 0.5, "<=")])
    pushed = [sum(parts) for parts in zip(host_samples["push"], host_samples["upload host"], host_samples["upload controller"], strict=True)]
    report(f"one host's share of moving the {size_mb} MB release: CPU seconds (user + system), median of {rounds}",
           [row("pull: release_unpack streaming it from nginx (sha256, gunzip, checks)", host_samples["pull"]),
            row("push: release_unpack hashing the upload, then unpacking it", host_samples["push"]),
            row("push: the upload, the host's sshd receiving and writing it", host_samples["upload host"]),
            row("push: the upload, the controller's ssh client sending it", host_samples["upload controller"]),
            row("push: all three", pushed)], [])
    # No goal of its own: the CPU a host and the controller spend per host, what the wall times above are made of.
    print(f"  ratio {'CPU per host, pull / push':<52} {statistics.median(host_samples['pull']) / statistics.median(pushed):5.2f}x")


def children_cpu() -> float:
    """CPU seconds of this process's children that have ended and been waited for (the hosts' sshd count when stopped)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def upload_share(hosts: SshHostFarm, artifact: Path, rounds: int) -> dict[str, list[float]]:
    """CPU seconds of moving `artifact` into one host over SSH as a push does (`ssh host 'cat > file'`, the same cipher
    as Ansible's transfer, no control master): the controller's ssh client, and the host's sshd and cat, counted when that
    host (freshly started) is stopped and its sshd waited for (its own start-up, a few milliseconds, included)."""
    name = hosts.names[0]
    address, port = hosts.endpoint(name)
    settings = hosts.inventory()["all"]["hosts"][name]
    ssh = ["ssh", "-p", str(port), "-o", "ControlMaster=no", "-o", "BatchMode=yes", *str(settings["ansible_ssh_common_args"]).split(),
           *(["-i", str(settings["ansible_ssh_private_key_file"])] if settings.get("ansible_ssh_private_key_file") else []),
           f"{settings['ansible_user']}@{address}", "cat > /opt/upload.tar.gz"]
    samples: dict[str, list[float]] = {"upload controller": [], "upload host": []}
    for _ in range(rounds):
        reset_hosts(hosts)
        before = children_cpu()
        with artifact.open("rb") as data:
            subprocess.run(ssh, stdin=data, capture_output=True, check=True)
        sent = children_cpu()
        hosts.stop_host(name)  # only this host's sshd, so that the others' start-up is not counted
        samples["upload controller"].append(sent - before)
        samples["upload host"].append(children_cpu() - sent)
        hosts.start_host(name)
    reset_hosts(hosts)
    return samples


def host_share(folder: Path, server: NginxServer, digest: str, rounds: int) -> dict[str, list[float]]:
    """CPU seconds of release_unpack's work for the artifact `digest`, pulled from `server` and pushed (its upload copied
    into place first, not counted), each run as its action plugin runs it on a host: the module_utils and the module piped
    to python3 with the checked parameters (_host_python.py)."""
    plugins = REPO / "roles" / "release_deploy" / "action_plugins"
    spec = importlib.util.spec_from_file_location("bench_host_python", plugins / "_host_python.py")
    assert spec and spec.loader
    host = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(host)
    utils = plugins.parent / "module_utils"
    shipped = host.read_sources(str(utils), ("release_integrity", "release_hostcall", "release_download"))
    shipped.append(("release_unpack", (plugins.parent / "library" / "release_unpack.py").read_text()))
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    base = folder / "host"
    samples: dict[str, list[float]] = {"pull": [], "push": []}
    for _ in range(rounds):
        for how in samples:
            shutil.rmtree(base, ignore_errors=True)
            (base / "releases").mkdir(parents=True)
            (base / ".incoming").mkdir()
            args: dict[str, Any] = {"dest": str(base / "releases" / "1.0.0"), "digest": digest, "version": "1.0.0",
                                    "leftovers": str(base / ".incoming")}
            if how == "pull":
                args["url"] = f"{server.url}/sha256/{digest}.tar.gz"
            else:
                args["src"] = str(base / ".incoming" / "upload.tar.gz")
                shutil.copyfile(server.root / "sha256" / f"{digest}.tar.gz", args["src"])
                os.sync()
            text = host.program(shipped, "release_unpack", "unpack_host", host.checked(host.argument_spec(shipped[-1][1]), args), False)
            before = children_cpu()
            done = subprocess.run([python, "-"], input=text, capture_output=True, text=True, check=True)
            used = children_cpu() - before
            if '"failed": true' in done.stdout or not (base / "releases" / "1.0.0" / ".release" / "DIGEST").is_file():
                raise SystemExit(f"benchmark step failed: release_unpack ({how}): {done.stdout[-2000:]}")
            samples[how].append(used)
    shutil.rmtree(base, ignore_errors=True)
    return samples


def raw_playbook(project: Path, workdir: Path, env: dict[str, str] | None = None, playbook: str = "playbooks/promote.yml") -> None:
    run([str(BIN / "ansible-playbook"), "-i", "inventories/qa", "-e", f"@{workdir / 'extravars.yml'}", playbook], cwd=project,
        env={"ANSIBLE_CONFIG": str(project / "ansible.cfg"), **(env or {})})


def write_extravars(workdir: Path, release: dict[str, Any]) -> None:
    extravars = {"relpromote_hosts": "app", "release_version": "1.0.0", "release_digest": release["digest"],
                 "release_artifact": release["artifact"]}
    (workdir / "extravars.yml").write_text(yaml.safe_dump(extravars))


def against_raw(workdir: Path, hosts: SshHostFarm, project: Path, count: int, rounds: int) -> None:
    use_hosts(project, hosts, count)
    samples = interleaved(rounds, fresh(hosts), {
        "ours": lambda: relpromote(project, workdir, "promote", "1.0.0", "--to", "qa"),
        "raw": lambda: raw_playbook(project, workdir),
    })
    report(f"promotion of a 1 MB release to {count} fresh sshd hosts, median of {rounds}",
           [row("relpromote promote", samples["ours"]), row("raw ansible-playbook playbooks/promote.yml", samples["raw"])],
           [("relpromote / raw ansible-playbook", statistics.median(samples["ours"]) / statistics.median(samples["raw"]), 1.02, "<=")])


def tuning(workdir: Path, hosts: SshHostFarm, project: Path, count: int, rounds: int) -> None:
    use_hosts(project, hosts, count)
    gather = workdir / "gather_first.yml"
    gather.write_text(GATHER_FIRST.replace("PROMOTE", str(project / "playbooks" / "promote.yml")))
    variants: dict[str, dict[str, str]] = {
        "project's ansible.cfg (forks 10, pipelining, ControlPersist 60s, linear, no facts)": {},
        "forks 5 (ANSIBLE_FORKS=5)": {"ANSIBLE_FORKS": "5"},
        "forks 20 (ANSIBLE_FORKS=20)": {"ANSIBLE_FORKS": "20"},
        "no pipelining (ANSIBLE_PIPELINING=False)": {"ANSIBLE_PIPELINING": "False"},
        "no ControlPersist (ANSIBLE_SSH_ARGS='-o ControlMaster=no')": {"ANSIBLE_SSH_ARGS": "-o ControlMaster=no"},
        "strategy free (ANSIBLE_STRATEGY=free)": {"ANSIBLE_STRATEGY": "free"},
    }
    def with_env(env: dict[str, str]) -> Callable[[], object]:
        return lambda: raw_playbook(project, workdir, env)

    steps = {name: with_env(env) for name, env in variants.items()}
    steps["facts gathered first (a play with gather_facts: true)"] = lambda: raw_playbook(project, workdir, playbook=str(gather))
    samples = interleaved(rounds, fresh(hosts), steps)
    baseline = statistics.median(next(iter(samples.values())))
    report(f"raw ansible-playbook playbooks/promote.yml, a 1 MB release to {count} fresh sshd hosts, median of {rounds}",
           [row(name, values) for name, values in samples.items()], [])
    for name, values in list(samples.items())[1:]:  # the effect of each setting; no goal
        print(f"  ratio {name.split(' (')[0] + ' / the project' + chr(39) + 's settings':<52} {statistics.median(values) / baseline:5.2f}x")


def main() -> None:
    # A benchmark stopped with SIGTERM stops its hosts and nginx on the way out, as it does on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="scale,pull,raw,tuning")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale-rounds", type=int, default=1)
    parser.add_argument("--counts", default="1,5,20,50")
    parser.add_argument("--hosts", type=int, default=20, help="hosts of the pull and raw steps")
    parser.add_argument("--tuning-hosts", type=int, default=10)
    parser.add_argument("--size-mb", type=int, default=100, help="artifact of the pull step")
    options = parser.parse_args()
    only = set(options.only.split(","))
    counts = [int(n) for n in options.counts.split(",")]
    needed = max([*(counts if "scale" in only else []), options.hosts, options.tuning_hosts])
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as folder:
        workdir = Path(folder)
        with farm(workdir, needed, first_octet=1) as hosts:
            project = make_project(workdir, hosts)
            release = build(project, workdir, "1.0.0", 1024 * 1024)
            write_extravars(workdir, release)
            if "scale" in only:
                scale(workdir, hosts, project, counts, options.scale_rounds)
            if "raw" in only:
                against_raw(workdir, hosts, project, options.hosts, options.rounds)
            if "tuning" in only:
                tuning(workdir, hosts, project, options.tuning_hosts, options.rounds)
            if "pull" in only:
                pull_against_push(workdir, hosts, options.hosts, options.size_mb, options.rounds)
            reset_hosts(hosts)


if __name__ == "__main__":
    main()
