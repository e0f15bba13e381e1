"""Rollback speed on real sshd hosts, in one run on the same hosts:

- rollback (release still on the hosts) against the deploy of a new release   (goal: <= 0.2x)
- rollback between 100 MB releases against rollback between 1 MB releases    (goal: <= 1.1x:
  a rollback's cost does not grow with the artifact)
- against `ansible -m ping` to the same hosts (the floor: one round trip per host plus Ansible's start-up), every
  step with cold SSH sockets, integrity checks included: rollback (goal: <= 1.2x), re-promotion of the live release
  (goal: <= 1.2x), deploy of a new 1 MB release (goal: <= 2x)

`--against-ping` measures only the last group.

Run as root: `.venv/bin/python -m benchmarks.rollback_speed [--hosts 5] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from benchmarks.harness import build, cold_sockets, farm, make_project, ping, relpromote, report, reset_hosts, timed


def measure(workdir: Path, hosts: object, size: int, rounds: int, label: str) -> tuple[list[float], list[float]]:
    deploys, rollbacks = [], []
    for round_number in range(rounds):
        reset_hosts(hosts)  # type: ignore[arg-type]
        folder = workdir / f"{label}-{round_number}"
        folder.mkdir()
        project = make_project(folder, hosts)  # type: ignore[arg-type]
        build(project, folder, "1.0.0", size)
        build(project, folder, "1.1.0", size)
        relpromote(project, folder, "promote", "1.0.0", "--to", "qa")
        deploys.append(timed(lambda: relpromote(project, folder, "promote", "1.1.0", "--to", "qa")))  # noqa: B023
        rollbacks.append(timed(lambda: relpromote(project, folder, "rollback", "--env", "qa", "--reason", "benchmark")))  # noqa: B023
    return deploys, rollbacks


def measure_against_ping(workdir: Path, hosts: object, rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"ping": [], "deploy": [], "rollback": [], "repromote": []}
    for round_number in range(rounds):
        reset_hosts(hosts)  # type: ignore[arg-type]
        folder = workdir / f"ping-{round_number}"
        folder.mkdir()
        project = make_project(folder, hosts)  # type: ignore[arg-type]
        build(project, folder, "1.0.0", 1024 * 1024)
        build(project, folder, "1.1.0", 1024 * 1024)
        relpromote(project, folder, "promote", "1.0.0", "--to", "qa")
        steps = [
            ("ping", lambda: ping(project)),  # noqa: B023
            ("deploy", lambda: relpromote(project, folder, "promote", "1.1.0", "--to", "qa")),  # noqa: B023
            ("rollback", lambda: relpromote(project, folder, "rollback", "--env", "qa", "--reason", "benchmark")),  # noqa: B023
            ("repromote", lambda: relpromote(project, folder, "promote", "1.0.0", "--to", "qa")),  # noqa: B023
            ("ping", lambda: ping(project)),  # noqa: B023
        ]
        for name, step in steps:
            cold_sockets()
            samples[name].append(timed(step))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against-ping", action="store_true", help="Only rollback, re-promotion and deploy against ping.")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ping-") as folder, farm(Path(folder), options.hosts, first_octet=160) as hosts:
        against = measure_against_ping(Path(folder), hosts, options.rounds)
        reset_hosts(hosts)
    floor, deploy, rollback, again = (statistics.median(against[k]) for k in ("ping", "deploy", "rollback", "repromote"))
    report(
        f"against ansible -m ping on {options.hosts} sshd hosts, cold SSH sockets, median of {options.rounds} (ping: of {2 * options.rounds})",
        [("ansible -m ping", floor, against["ping"]), ("deploy of a new 1 MB release (relpromote promote)", deploy, against["deploy"]),
         ("rollback to the previous release (relpromote rollback)", rollback, against["rollback"]),
         ("re-promotion of the live release (relpromote promote)", again, against["repromote"])],
        [("rollback / ping", rollback / floor, 1.2, "<="), ("re-promotion / ping", again / floor, 1.2, "<="),
         ("deploy 1 MB / ping", deploy / floor, 2.0, "<=")],
    )
    if options.against_ping:
        return
    with tempfile.TemporaryDirectory(prefix="bench-rollback-") as folder:
        workdir = Path(folder)
        with farm(workdir, options.hosts, first_octet=160) as hosts:
            small_deploys, small_rollbacks = measure(workdir, hosts, 1024 * 1024, options.rounds, "1mb")
            _, big_rollbacks = measure(workdir, hosts, 100 * 1024 * 1024, options.rounds, "100mb")
            reset_hosts(hosts)
    deploy, small, big = (statistics.median(x) for x in (small_deploys, small_rollbacks, big_rollbacks))
    report(
        f"rollback on {options.hosts} sshd hosts, median of {options.rounds} (relpromote CLI, wall clock)",
        [("deploy of a new 1 MB release (relpromote promote)", deploy, small_deploys),
         ("rollback to the previous 1 MB release (relpromote rollback)", small, small_rollbacks),
         ("rollback to the previous 100 MB release (relpromote rollback)", big, big_rollbacks)],
        [("rollback / deploy (1 MB)", small / deploy, 0.2, "<="),
         ("rollback 100 MB / rollback 1 MB", big / small, 1.1, "<=")],
    )


if __name__ == "__main__":
    main()
