"""Rollback speed on real sshd hosts, in one run on the same hosts:

- rollback (release still on the hosts) against the deploy of a new release   (goal: <= 0.2x)
- rollback between 100 MB releases against rollback between 1 MB releases    (goal: <= 1.1x:
  a rollback's cost does not grow with the artifact)

Run as root: `.venv/bin/python -m benchmarks.rollback_speed [--hosts 5] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from benchmarks.harness import build, farm, make_project, relpromote, report, reset_hosts, timed


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
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
