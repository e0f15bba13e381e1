"""Benchmark: masked QA refresh against a raw `pg_dump -Fc | pg_restore` of the same data, in one run.

Starts two PostgreSQL clusters (production and QA, durable settings unless --fast), loads
`--rows` rows into production (30% customers with four masked columns, 70% orders with a masked
notes column and a foreign key), then measures, interleaved `--repeat` times:

  raw     createdb qa_raw && pg_dump -Fc shop | pg_restore -d qa_raw   (no masking, no checks)
  module  the role's module called directly: inspect + plan + refresh (no Ansible start-up)
  role    playbooks/refresh_qa_data.yml through relpromote's runner adapter, as relpromote runs it

and prints rows/s for each (median) and the ratio masked/raw. The masked refresh does more than the
raw copy: verification of every masked column against production, the leak check, ANALYZE, the swap,
and dropping the QA database the previous refresh's swap retired (a refresh drops it as it starts: a
DROP DATABASE forces a checkpoint, which the swap would pay for the whole new copy); all of that is
inside its time. Its phases (seconds per step, the controller's inspect and plan included) are printed
as medians.

Before each measurement both clusters are checkpointed, and autovacuum is off, so one step's
dirty pages or background vacuum do not land in the next step's time.

On a machine shared with other work, wall times follow the others' load. Each path's CPU time is
printed too (both clusters' server processes and every client program it started, Ansible's
included): the ratio of CPU times says how much work the refresh does for the same rows, whatever
the load.

    .venv/bin/python benchmarks/refresh_qa.py            # 1,000,000 rows, 3 rounds
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relpromote.adapters.runner import PlaybookRun, run_playbook
from relpromote.refresh import Catalog, parse_masking, plan_refresh
from relpromote.testing.postgres import PostgresCluster, clusters

REPO = Path(__file__).resolve().parent.parent
MODULE = REPO / "roles" / "qa_data_refresh" / "library" / "pg_masked_refresh.py"
MODULE_UTILS = REPO / "roles" / "qa_data_refresh" / "module_utils"
# Run the module as a script, with the role's module_utils where Ansible would put them (AnsiballZ ships them along).
RUN_MODULE = (
    "import runpy, sys, ansible.module_utils as m; m.__path__.append(sys.argv[1]); sys.argv = sys.argv[2:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)
PLAYBOOK = REPO / "playbooks" / "refresh_qa_data.yml"
READER, READER_PASSWORD = "relpromote_reader", "bench-reader-password"
SALT = "bench-salt-not-a-secret"
MASKING: dict[str, Any] = {
    "customers": {"email": "fake_email", "full_name": "fake_name", "phone": "fake_phone", "card_number": {"partial": 4}},
    "orders": {"notes": None, "status": "keep"},
}

SCHEMA = """
CREATE TABLE customers (
    id bigserial PRIMARY KEY, email varchar(200) NOT NULL UNIQUE, full_name text NOT NULL, phone text, card_number text,
    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE orders (
    id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id), amount numeric(10, 2) NOT NULL,
    status text NOT NULL, notes text, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX orders_customer ON orders (customer_id);
"""
LOAD = """
INSERT INTO customers (email, full_name, phone, card_number, created_at)
SELECT 'person' || g || '@mail' || (g % 97) || '.example.com', 'First' || g || ' Last' || (g::bigint * 7 % 1000),
       '+1 (555) ' || lpad((g % 10000000)::text, 7, '0'),
       '4111-1111-' || lpad((g % 10000)::text, 4, '0') || '-' || lpad((g::bigint * 13 % 10000)::text, 4, '0'),
       now() - (g || ' minutes')::interval
  FROM generate_series(1, {customers}) g;
INSERT INTO orders (customer_id, amount, status, notes, created_at)
SELECT 1 + (g::bigint * 7919) % {customers}, (g % 50000) / 100.0, (ARRAY['new', 'paid', 'shipped', 'returned'])[1 + g % 4],
       CASE WHEN g % 3 = 0 THEN 'Please call ' || g || ' before delivery' END, now() - (g || ' seconds')::interval
  FROM generate_series(1, {orders}) g;
ANALYZE;
"""


def psql(cluster: PostgresCluster, database: str, sql: str) -> None:
    subprocess.run(
        [
            str(cluster.bin_dir / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(cluster.socket_dir),
            "-p",
            str(cluster.port),
            "-U",
            "postgres",
            "-d",
            database,
        ],
        input=sql,
        text=True,
        check=True,
        capture_output=True,
    )


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_fields(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def server_cpu(cluster: PostgresCluster) -> float:
    """CPU seconds of a cluster: the postmaster, its ended backends (reaped by it) and its living processes."""
    postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    ticks = sum(int(value) for value in _cpu_fields(postmaster)[11:15])
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _cpu_fields(entry)
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def cpu_now(*servers: PostgresCluster) -> float:
    """CPU seconds so far of the servers and of every ended child process of this one (clients, Ansible)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return sum(server_cpu(cluster) for cluster in servers) + children.ru_utime + children.ru_stime


def settle(*servers: PostgresCluster) -> None:
    for cluster in servers:
        cluster.execute("postgres", "CHECKPOINT")


def timed(action: Callable[[], Any]) -> float:
    return timed_result(action)[0]


def timed_result(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def raw_copy(prod: PostgresCluster, qa: PostgresCluster) -> None:
    """The baseline the brief names: pg_dump -Fc prod | pg_restore -d qa_raw."""
    bin_dir = prod.bin_dir
    subprocess.run(
        [str(bin_dir / "createdb"), "-h", str(qa.socket_dir), "-p", str(qa.port), "-U", "postgres", "qa_raw"], check=True
    )
    dump = subprocess.Popen(
        [str(bin_dir / "pg_dump"), "-Fc", "-h", str(prod.socket_dir), "-p", str(prod.port), "-U", "postgres", "shop"],
        stdout=subprocess.PIPE,
    )
    restore = subprocess.run(
        [str(bin_dir / "pg_restore"), "-h", str(qa.socket_dir), "-p", str(qa.port), "-U", "postgres", "-d", "qa_raw"],
        stdin=dump.stdout,
        check=False,
    )
    assert dump.stdout is not None
    dump.stdout.close()
    if dump.wait() != 0 or restore.returncode != 0:
        raise SystemExit("raw copy failed")


def module_args(prod: PostgresCluster, qa: PostgresCluster, jobs: int) -> dict[str, Any]:
    return {
        "source": {"host": "127.0.0.1", "port": prod.port, "database": "shop", "user": READER, "password": READER_PASSWORD},
        "target": {"host": str(qa.socket_dir), "port": qa.port, "database": "shop", "user": "postgres"},
        "pg_bin_dir": str(prod.bin_dir),
        "jobs": jobs,
    }


def call_module(args: dict[str, Any]) -> dict[str, Any]:
    # AnsibleModule reads its arguments from stdin when run as a script: the password never touches a file.
    result = subprocess.run(
        [sys.executable, "-c", RUN_MODULE, str(MODULE_UTILS), str(MODULE)],
        input=json.dumps({"ANSIBLE_MODULE_ARGS": args}),
        capture_output=True,
        text=True,
        check=False,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    if data.get("failed"):
        raise SystemExit(f"module failed: {data.get('msg')}")
    return data


def module_refresh(prod: PostgresCluster, qa: PostgresCluster, jobs: int) -> dict[str, Any]:
    """What the role does, without Ansible: inspect, plan (relpromote), refresh."""
    base = module_args(prod, qa, jobs)
    inspected = call_module({**base, "action": "inspect"})
    plan = plan_refresh(Catalog.model_validate(inspected["catalog"]), parse_masking(MASKING))
    return call_module({**base, "action": "refresh", "plan": plan.for_module(), "salt": SALT})["summary"]  # type: ignore[no-any-return]


def role_refresh(prod: PostgresCluster, qa: PostgresCluster, jobs: int, runs: Path, salt_file: Path) -> dict[str, Any]:
    """playbooks/refresh_qa_data.yml as relpromote runs it: its runner adapter (fresh private dir, the lifeline that
    binds the run to the command), a local-connection QA host."""
    inventory = runs / "inventory.yml"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "vault_relpromote_reader_password": READER_PASSWORD}
    inventory.write_text(json.dumps({"all": {"children": {"qa_database": {"hosts": {"qa-db": host}}}}}))
    run = run_playbook(PlaybookRun(
        playbook=PLAYBOOK, inventory=inventory, project_dir=REPO, runs_dir=runs, label="bench",
        extravars={
            "qa_data_refresh_database": "shop",
            "qa_data_refresh_source_host": "127.0.0.1",
            "qa_data_refresh_source_port": prod.port,
            "qa_data_refresh_source_user": READER,
            "qa_data_refresh_source_password": "{{ vault_relpromote_reader_password }}",
            "qa_data_refresh_target_host": str(qa.socket_dir),
            "qa_data_refresh_target_port": qa.port,
            "qa_data_refresh_masking": MASKING,
            "qa_data_refresh_salt_file": str(salt_file),
            "qa_data_refresh_pg_bin_dir": str(prod.bin_dir),
            "qa_data_refresh_jobs": jobs,
        },
    ))
    if not run.succeeded:
        raise SystemExit(f"role run failed (rc {run.rc}): {[h.message for h in run.hosts.values()]}; see {run.private_data_dir}")
    return dict(run.custom_stats["qa_data_refresh"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--fast", action="store_true", help="fsync off on both clusters (test settings)")
    parser.add_argument("--workdir", type=Path, help="where the clusters live (default: a temp dir, removed)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="relpromote-bench-"))
    customers = int(args.rows * 0.3)
    orders = args.rows - customers
    print(
        f"# {args.rows:,} rows ({customers:,} customers + {orders:,} orders); {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.2f}; clusters {'fast' if args.fast else 'durable'} in {workdir}",
        file=sys.stderr,
    )
    samples: dict[str, list[float]] = {"raw": [], "module": [], "role": []}
    cpu: dict[str, list[float]] = {"raw": [], "module": [], "role": []}
    summaries: list[dict[str, Any]] = []
    settings = {"autovacuum": "off"} if not args.fast else {"autovacuum": "off", "fsync": "off", "synchronous_commit": "off"}
    with clusters(workdir, "prod", "qa", settings=settings) as started:
        prod, qa = started["prod"], started["qa"]
        prod.create_role(READER, password=READER_PASSWORD, read_only=True)
        prod.create_database("shop")
        qa.create_database("shop")
        # Production as it usually is: loaded long ago, vacuumed and frozen.
        load = timed(
            lambda: psql(prod, "shop", SCHEMA + LOAD.format(customers=customers, orders=orders) + "VACUUM (FREEZE, ANALYZE);")
        )
        size = prod.scalar("postgres", "SELECT pg_size_pretty(pg_database_size('shop'))")
        print(f"# loaded production in {load:.1f} s ({size})", file=sys.stderr)
        salt_file = workdir / "salt"
        salt_file.write_text(SALT, encoding="utf-8")
        salt_file.chmod(0o600)
        runs = workdir / "runs"
        runs.mkdir()
        # One warm-up refresh, untimed: it creates QA's first masked copy, so every timed refresh runs in the steady
        # state of a nightly job (a previous database to keep, an older one to drop).
        module_refresh(prod, qa, args.jobs)
        def measure(path: str, action: Callable[[], Any]) -> Any:
            settle(prod, qa)
            before = cpu_now(prod, qa)
            seconds, result = timed_result(action)
            samples[path].append(seconds)
            cpu[path].append(cpu_now(prod, qa) - before)
            return result

        for round_ in range(args.repeat):
            measure("raw", lambda: raw_copy(prod, qa))
            qa.drop_database("qa_raw")
            summaries.append(measure("module", lambda: module_refresh(prod, qa, args.jobs)))
            summaries.append(measure("role", lambda: role_refresh(prod, qa, args.jobs, runs, salt_file)))
            print(
                f"# round {round_ + 1}: raw {samples['raw'][-1]:.2f} s, module {samples['module'][-1]:.2f} s, "
                f"role {samples['role'][-1]:.2f} s; CPU raw {cpu['raw'][-1]:.2f} s, module {cpu['module'][-1]:.2f} s, "
                f"role {cpu['role'][-1]:.2f} s (load {os.getloadavg()[0]:.2f})",
                file=sys.stderr,
            )
        rows = sum(summaries[-1]["tables"].values())
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    median = {name: statistics.median(values) for name, values in samples.items()}
    print(f"{'path':8} {'median s':>9} {'rows/s':>11} {'masked/raw':>11}   samples")
    for name in ("raw", "module", "role"):
        ratio = "" if name == "raw" else f"{median['raw'] / median[name]:.2f}"
        print(
            f"{name:8} {median[name]:9.2f} {rows / median[name]:11,.0f} {ratio:>11}   "
            + ", ".join(f"{v:.2f}" for v in samples[name])
        )
    # Rounds interleave the three paths, so a ratio within a round compares them under the same machine load.
    paired = {
        name: statistics.median(raw / other for raw, other in zip(samples["raw"], samples[name], strict=True))
        for name in ("module", "role")
    }
    print(f"masked/raw within each round (median): module {paired['module']:.2f}, role {paired['role']:.2f}")
    # What running it as Ansible runs it adds to the module's own work (start-up, tasks, the host-side steps' starts).
    overhead = statistics.median(role - module for role, module in zip(samples["role"], samples["module"], strict=True))
    overhead_cpu = statistics.median(role - module for role, module in zip(cpu["role"], cpu["module"], strict=True))
    print(f"role minus module within each round (median): {overhead:.2f} s wall, {overhead_cpu:.2f} s CPU")
    cpu_median = {name: statistics.median(values) for name, values in cpu.items()}
    print(
        f"CPU s (median): raw {cpu_median['raw']:.2f}, module {cpu_median['module']:.2f}, role {cpu_median['role']:.2f}; "
        f"masked/raw by CPU: module {cpu_median['raw'] / cpu_median['module']:.2f}, role {cpu_median['raw'] / cpu_median['role']:.2f}"
    )
    keys = list(dict.fromkeys(key for summary in summaries for key in summary["phases"]))
    phases = {key: statistics.median(s["phases"].get(key, 0.0) for s in summaries) for key in keys}
    print("refresh phases and jobs (median s): " + ", ".join(f"{key} {value:.2f}" for key, value in phases.items()))
    print(
        json.dumps(
            {
                "rows": rows,
                "median_seconds": median,
                "rows_per_second": {k: rows / v for k, v in median.items()},
                "ratio_masked_to_raw": {"module": median["raw"] / median["module"], "role": median["raw"] / median["role"]},
                "ratio_within_rounds": paired,
                "role_minus_module_seconds": {"wall": overhead, "cpu": overhead_cpu},
                "cpu_seconds": cpu,
                "ratio_masked_to_raw_by_cpu": {k: cpu_median["raw"] / cpu_median[k] for k in ("module", "role")},
                "samples": samples,
                "load_average": os.getloadavg()[0],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
