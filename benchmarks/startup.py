"""Start-up of the command line, against the interpreter's own start-up measured in the same run:

- `relpromote --help`                                   (goal: <= 0.2 s)
- `relpromote status` in a small project (one release)  (goal: <= 0.2 s)

Each figure is also printed as a ratio to `python -c pass` (the same interpreter, interleaved round
by round, so the machine's load weighs on both sides alike), in wall-clock and in CPU time (user +
system of the child and of the processes it waited for, e.g. git: steadier on a loaded machine).
`status` answers from this user's board memo after its first run in a project (see
relpromote.usecases.status_state): the rounds measure that, as a user who looks again sees it. Find what to make lazy with
`.venv/bin/python -X importtime -c 'from relpromote.cli import main' 2>&1 | sort -t'|' -k2 -n | tail`.

Run: `.venv/bin/python -m benchmarks.startup [--rounds 15]` (no root needed).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent
RELPROMOTE = str(BIN / "relpromote")
GOAL = 0.2


def run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall clock, CPU time: user + system of the child and of what it waited for) of one run, in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(args)}\n{result.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def small_project(folder: Path, env: dict[str, str]) -> Path:
    """A project as `init` makes it, with one person and one built release in its ledger."""
    project = folder / "proj"
    run([RELPROMOTE, "init", str(project)], folder, env)
    key = folder / "alice.key"
    line = subprocess.run([RELPROMOTE, "--json", "keygen", "alice", "--out", str(key)], cwd=folder, env=env,
                          capture_output=True, text=True, check=True).stdout
    config_path = project / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["people"] = [{"name": "alice", "key": yaml.safe_load(line)["key"], "roles": ["release_manager"]}]
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run(["git", "-C", str(project), "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qam", "people"],
                   check=True, capture_output=True)
    app = folder / "app"
    app.mkdir()
    (app / "app.py").write_text("print('hello')\n")
    manifest = folder / "manifest.yml"
    manifest.write_text(yaml.safe_dump({"version": "1.0.0", "changes": [
        {"id": "CH-1", "type": "fix", "title": "A fix", "owner": "dana", "why": "It broke", "how": "Mended"}]}))
    run([RELPROMOTE, "--identity", str(key), "build", "1.0.0", "--source", str(app), "--manifest", str(manifest)], project, env)
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    options = parser.parse_args()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RELPROMOTE_CONFIG", None)
    # As an installed package runs: its bytecode compiled once (pip compiles on install). A shell that sets
    # PYTHONDONTWRITEBYTECODE (CI images do) would otherwise make every round compile the modules edited since.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parents[1] / "relpromote")],
                   check=True)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as name:
        folder = Path(name)
        project = small_project(folder, env)
        steps = {
            "python -c pass": ([sys.executable, "-c", "pass"], folder),
            "relpromote --help": ([RELPROMOTE, "--help"], folder),
            "relpromote status (small project)": ([RELPROMOTE, "status"], project),
        }
        for args, cwd in steps.values():  # warm the page cache and the bytecode caches
            run(args, cwd, env)
        samples: dict[str, list[tuple[float, float]]] = {label: [] for label in steps}
        for _ in range(options.rounds):
            for label, (args, cwd) in steps.items():
                samples[label].append(run(args, cwd, env))
    walls = {label: statistics.median(wall for wall, _ in values) for label, values in samples.items()}
    cpus = {label: statistics.median(cpu for _, cpu in values) for label, values in samples.items()}
    print(f"\nstart-up of the command line, median of {options.rounds} interleaved rounds "
          "(wall clock; CPU = user + system time of the process and what it waited for)")
    for label in samples:
        ratio = walls[label] / walls["python -c pass"]
        cpu_ratio = cpus[label] / max(cpus["python -c pass"], 1e-3)
        goal = "" if label.startswith("python") else f"   (goal <= {GOAL:.2f} s: {'meets' if walls[label] <= GOAL else 'MISSES'})"
        print(f"  {label:<36} wall {walls[label] * 1000:6.0f} ms {ratio:5.1f}x   CPU {cpus[label] * 1000:6.0f} ms "
              f"{cpu_ratio:5.1f}x python -c pass{goal}")


if __name__ == "__main__":
    main()
