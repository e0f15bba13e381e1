"""`status` and `history` on a long ledger, and 8 writers appending to one PostgreSQL ledger at once.

1. A project (as `relpromote init` makes it, four people with real ed25519 keys, committed) whose
   ledger holds EVENTS (default 10,000) realistic entries appended through the ledger's own API
   (`Project.ledger.append`, each sealed, hashed and signed by its person's key): per release a build,
   then for qa, deployment and production a promotion started and finished with its host list and
   per-host outcomes, an acceptance in qa and deployment, and a change manager's approval with its plan
   before production. The same ledger is moved to PostgreSQL with `relpromote ledger migrate` (which
   verifies it there) when relpromote.testing.postgres can start a server (root needed: otherwise the
   PostgreSQL part is skipped and says so).
2. `relpromote status` and `relpromote history --env production` run as a user runs them (the console
   script, in the project folder), interleaved round by round with `python -c pass`: each median is
   printed in wall-clock and CPU time (user + system of the process and what it waited for: steadier on a
   loaded machine), with its ratio to `python -c pass` and against the 0.3 s goal. The first run after the
   ledger was written is shown apart ("cold": nothing of this ledger verified yet, see
   relpromote.adapters.verified_cache); the medians are of the runs after it, which answer from this
   user's checkpoint and board memo (relpromote.usecases.status_state) as a user who looks again does.
3. WRITERS processes (default 8) append to the one PostgreSQL ledger at once for SECONDS (default 10):
   appends per second in all, then `relpromote audit verify` checks the whole chain (signatures, links,
   signers, roles) and must pass.

Run: `.venv/bin/python -m benchmarks.long_ledger [--events 10000] [--rounds 5] [--writers 8 --seconds 10]`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from relpromote import events
from relpromote.identity import Identity, load_identity
from relpromote.ledger import format_time
from relpromote.project import Project

BIN = Path(sys.executable).parent
RELPROMOTE = str(BIN / "relpromote")
GOAL = 0.3
PEOPLE = {"rita": ["release_manager"], "otto": ["operator"], "quinn": ["qa"], "carl": ["change_manager"]}
HOSTS = {"qa": 3, "deployment": 10, "production": 20}
EVENTS_PER_RELEASE = 10  # built; qa started+finished, accepted; deployment started+finished, accepted; approved; production started+finished


def sh(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(args[:5])}…\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result


def git(project: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(project), "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args],
                   check=True, capture_output=True)


def make_project(folder: Path, env: dict[str, str]) -> tuple[Path, dict[str, Path]]:
    project = folder / "proj"
    sh([RELPROMOTE, "init", str(project)], folder, env)
    keys, people = {}, []
    for name, roles in PEOPLE.items():
        keys[name] = folder / f"{name}.key"
        line = sh([RELPROMOTE, "--json", "keygen", name, "--out", str(keys[name])], folder, env).stdout
        people.append({"name": name, "key": yaml.safe_load(line)["key"], "roles": roles})
    config_path = project / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["people"] = people
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    git(project, "commit", "-qam", "people")
    return project, keys


def host_outcomes(environment: str, version: str, previous: str | None) -> list[dict[str, Any]]:
    return [{"host": f"{environment[:4]}-app-{n:02d}", "succeeded": True, "changed": True, "unreachable": False, "message": "",
             "previous": previous, "current": version, "switched": True} for n in range(1, HOSTS[environment] + 1)]


def fill_ledger(project: Path, keys: dict[str, Path], count: int) -> float:
    """`count` entries through the ledger's API, each signed by the person who makes that decision."""
    opened = Project.open(project / "relpromote.yml")
    ledger = opened.ledger
    stamp = opened._stamp()  # the config's commit and digest, as every entry records it (asked of git once a release)
    ledger.stamp = lambda: stamp
    who: dict[str, Identity] = {name: load_identity(path) for name, path in keys.items()}
    started = time.perf_counter()
    written, release = 0, 0
    previous: dict[str, str | None] = dict.fromkeys(HOSTS)
    moment = datetime(2025, 1, 1, tzinfo=UTC)

    def add(kind: str, actor: str, payload: dict[str, Any]) -> None:
        nonlocal written
        if written < count:
            ledger.append(kind, actor, who[actor], payload)
            written += 1

    while written < count:
        release += 1
        version = f"1.{release // 100}.{release % 100}"
        digest = hashlib.sha256(version.encode()).hexdigest()
        moment += timedelta(hours=6)
        # As in a real project, the project moves on between releases (every entry records its commit), and now and
        # then the config itself changes: the ledger names many commits and several committed configs.
        with (project / "CHANGES.md").open("a") as changes:
            changes.write(f"- {version}\n")
        if release % 100 == 0:
            with (project / "relpromote.yml").open("a") as config:
                config.write(f"# reviewed for {version}\n")
        git(project, "add", "CHANGES.md", "relpromote.yml")
        git(project, "commit", "-qm", f"prepare {version}")
        stamp = opened._stamp()
        add(events.RELEASE_BUILT, "rita", {
            "version": version, "digest": digest, "size": 1_048_576 + release, "source": {"commit": digest[:40], "dirty": False},
            "manifest": {"version": version, "changes": [
                {"id": f"CH-{release}-{n}", "type": "enhancement", "title": f"change {n} of {version}", "owner": "dana",
                 "why": "customers asked for it", "how": "a new endpoint; no schema change", "commits": [digest[n:n + 7]]}
                for n in range(3)]}})
        for environment in HOSTS:
            lock_id = hashlib.sha256(f"{version}{environment}".encode()).hexdigest()[:12]
            actor = "rita" if environment == "production" else "otto"
            hosts = [h["host"] for h in host_outcomes(environment, version, None)]
            if environment == "production":
                expires = moment + timedelta(days=7)
                add(events.APPROVAL_GRANTED, "carl", {
                    "version": version, "digest": digest, "environment": environment, "ticket": f"CHG-{10000 + release}",
                    "approved_at": format_time(moment), "expires_at": format_time(expires),
                    "plan": {"hosts": hosts, "config": digest, "inventory": digest, "playbooks": digest, "roles": digest,
                             "ansible.cfg": digest}})
            add(events.PROMOTION_STARTED, actor, {
                "environment": environment, "version": version, "digest": digest, "lock_id": lock_id, "hosts": hosts,
                "recorded_release": previous[environment], "in_doubt_before": []})
            outcomes = host_outcomes(environment, version, previous[environment])
            add(events.PROMOTION_FINISHED, actor, {
                "version": version, "digest": digest, "environment": environment, "check": False, "result": "succeeded",
                "duration_s": 4.2, "changed": hosts, "switched": hosts, "hosts": outcomes, "run_id": f"run-{lock_id}",
                "project_commit": stamp["commit"], "project_dirty": False, "lock_id": lock_id})
            previous[environment] = version
            if environment != "production":
                add(events.VERDICT_ACCEPTED, "quinn", {"version": version, "digest": digest, "environment": environment,
                                                       "evidence": [], "note": "system tests green"})
    opened.close()
    return time.perf_counter() - started


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall clock, CPU time: user + system of the child and of what it waited for) of one run, in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(project: Path, env: dict[str, str], rounds: int, label: str) -> dict[str, tuple[float, float]]:
    """{step: (median wall clock, median CPU time) of `rounds` runs}, interleaved round by round with `python -c pass`."""
    steps = {
        "python -c pass": [sys.executable, "-c", "pass"],
        f"relpromote status ({label})": [RELPROMOTE, "status"],
        f"relpromote history --env production ({label})": [RELPROMOTE, "history", "--env", "production"],
    }
    for args in steps.values():  # the answers must be right before they are timed
        result = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0 or "DOES NOT COUNT" in result.stdout or "LEDGER:" in result.stdout:
            raise SystemExit(f"{' '.join(args)} failed or found entries that do not count:\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}")
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, args in steps.items():
            samples[name].append(timed(args, project, env))
    return {name: (statistics.median(wall for wall, _ in values), statistics.median(cpu for _, cpu in values))
            for name, values in samples.items()}


def cold_run(project: Path, env: dict[str, str], args: list[str]) -> tuple[float, float]:
    """The first run with nothing of this ledger remembered as verified (the user's cache of it removed)."""
    try:
        from relpromote.adapters import verified_cache
    except ImportError:  # before the cache existed: every run is cold
        pass
    else:
        verified_cache.forget_all()
    return timed(args, project, env)


def report(title: str, figures: dict[str, tuple[float, float]], colds: dict[str, tuple[float, float]], rounds: int) -> None:
    wall_base, cpu_base = figures["python -c pass"]
    cpu_base = max(cpu_base, 1e-3)
    print(f"\n{title}: median of {rounds} interleaved rounds (wall clock; CPU = user + system of the process and what it "
          "waited for)")
    for name, (wall, cpu) in figures.items():
        goal = "" if name.startswith("python") else f"   (goal <= {GOAL:.1f} s: {'meets' if wall <= GOAL else 'MISSES'})"
        print(f"  {name:<52} wall {wall * 1000:6.0f} ms {wall / wall_base:5.1f}x   CPU {cpu * 1000:6.0f} ms "
              f"{cpu / cpu_base:5.1f}x python -c pass{goal}")
    for name, (wall, cpu) in colds.items():
        print(f"  {name + ' cold':<52} wall {wall * 1000:6.0f} ms {wall / wall_base:5.1f}x   CPU {cpu * 1000:6.0f} ms "
              f"{cpu / cpu_base:5.1f}x python -c pass (first run, nothing cached)")


WRITER = r"""
import json, sys, time
from relpromote.adapters.pg_ledger import PgLedger
from relpromote.identity import load_identity
url, key, actor, stamp, number, seconds = sys.argv[1:7]
me = load_identity(__import__("pathlib").Path(key))
store = PgLedger(url)
fixed = json.loads(stamp)
store.stamp = lambda: fixed
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
end, n = time.monotonic() + float(seconds), 0
while time.monotonic() < end:
    version = f"9.{number}.{n}"
    store.append("release.built", actor, me, {"version": version, "digest": "%064x" % (int(number) * 10**9 + n), "size": n,
                 "manifest": {"version": version, "changes": []}, "source": {}})
    n += 1
store.close()
print(n)
"""


def concurrent_appends(project: Path, url: str, keys: dict[str, Path], env: dict[str, str], writers: int, seconds: float) -> None:
    opened = Project.open(project / "relpromote.yml")
    stamp = json.dumps(opened._stamp())
    opened.close()
    extra = [name for name, roles in PEOPLE.items() if "release_manager" in roles]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(keys[extra[0]]), extra[0], stamp, str(n), str(seconds)],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for n in range(writers)]
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("a writer did not start")
    started = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    counts = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 120)
        if proc.returncode != 0:
            raise SystemExit(f"a writer failed (exit {proc.returncode})")
        counts.append(int(out.strip().splitlines()[-1]))
    elapsed = time.perf_counter() - started
    verified = subprocess.run([RELPROMOTE, "--json", "audit", "verify"], cwd=project, env=env, capture_output=True, text=True)
    verdict = json.loads(verified.stdout or "{}")
    print(f"\n{writers} processes appending to one PostgreSQL ledger at once for {seconds:.0f} s")
    print(f"  appends: {sum(counts)} ({', '.join(map(str, counts))} per writer) in {elapsed:.1f} s: "
          f"{sum(counts) / elapsed:.0f} appends/s in all")
    print(f"  relpromote audit verify afterwards: exit {verified.returncode}, {verdict.get('entry_count', '?')} entries, "
          f"{'the chain verifies' if verified.returncode == 0 and verdict.get('ok') else 'DOES NOT VERIFY: ' + verified.stdout[-500:]}")


@contextlib.contextmanager
def postgres(folder: Path) -> Any:
    """A PostgreSQL server with an empty ledger (`relpromote ledger init-db`), or None and why not."""
    try:
        from relpromote.adapters.pg_ledger import init_database
        from relpromote.testing.postgres import PostgresCluster, PostgresError
    except ImportError as exc:
        yield None, f"psycopg is not installed ({exc})"
        return
    if os.geteuid() != 0 and shutil.which("initdb") is None:
        yield None, "not root and no initdb on PATH"
        return
    try:
        cluster = PostgresCluster.start(folder / "pg", name="long-ledger")
    except (PostgresError, OSError) as exc:
        yield None, f"relpromote.testing.postgres could not start a server ({exc}); root is needed"
        return
    try:
        cluster.create_role("ledger_owner")
        cluster.create_role("app")
        cluster.create_database("relpromote", owner="ledger_owner")
        base = f"postgresql:///relpromote?host={cluster.socket_dir}&port={cluster.port}"
        init_database(f"{base}&user=ledger_owner", "app")
        yield f"{base}&user=app", ""
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "120"}
    env.pop("RELPROMOTE_CONFIG", None)
    with tempfile.TemporaryDirectory(prefix="bench-long-ledger-") as name:
        folder = Path(name)
        os.chmod(folder, 0o755)  # the PostgreSQL server (another user) reaches its folder below
        project, keys = make_project(folder, env)
        env["RELPROMOTE_IDENTITY"] = str(keys["rita"])
        took = fill_ledger(project, keys, options.events)
        print(f"SQLite ledger: {options.events} entries appended through the ledger's API in {took:.1f} s "
              f"({options.events / took:.0f}/s)")
        colds = {f"relpromote status (SQLite, {options.events})": cold_run(project, env, [RELPROMOTE, "status"])}
        sqlite_figures = measure(project, env, options.rounds, f"SQLite, {options.events}")
        report(f"{options.events} entries on SQLite", sqlite_figures, colds, options.rounds)
        with postgres(folder) as (url, why):
            if url is None:
                print(f"\nPostgreSQL: skipped: {why}")
                return
            pg_project = folder / "proj-pg"
            shutil.copytree(project, pg_project)
            started = time.perf_counter()
            sh([RELPROMOTE, "ledger", "migrate", "--url", url], pg_project, env)
            print(f"\nrelpromote ledger migrate to PostgreSQL (copies, then verifies the whole chain there): "
                  f"{time.perf_counter() - started:.1f} s")
            config_path = pg_project / "relpromote.yml"
            config = yaml.safe_load(config_path.read_text())
            config["ledger"] = {"url": url}
            config_path.write_text(yaml.safe_dump(config, sort_keys=False))
            git(pg_project, "commit", "-qam", "ledger on PostgreSQL")
            colds = {f"relpromote status (PostgreSQL, {options.events})": cold_run(pg_project, env, [RELPROMOTE, "status"])}
            pg_figures = measure(pg_project, env, options.rounds, f"PostgreSQL, {options.events}")
            report(f"{options.events} entries on PostgreSQL", pg_figures, colds, options.rounds)
            if options.writers:
                concurrent_appends(pg_project, url, keys, env, options.writers, options.seconds)


if __name__ == "__main__":
    main()
