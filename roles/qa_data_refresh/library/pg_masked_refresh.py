#!/usr/bin/python
"""Refresh a QA PostgreSQL database from production, masked, on the QA database host.

Only the Python standard library and the PostgreSQL client programs (psql, pg_dump, pg_restore)
are used, so the module runs on any database host. Data moves as
`COPY (SELECT <masked list> FROM ONLY t) TO STDOUT` on production piped, raw and without Python in
between, into `COPY t FROM STDIN` on a new QA database: production values leave production only
masked. See DOCUMENTATION for the guarantees and the order of the steps.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from ansible.module_utils.relpromote_pg_copy import Refresh
from ansible.module_utils.relpromote_pg_probe import probe
from ansible.module_utils.relpromote_pg_run import (
    WORKDIR_PREFIX,
    Children,
    Interrupted,
    RefreshError,
    bind_to_controller,
    find_bin_dir,
    sweep_stale_workdirs,
)
from ansible.module_utils.relpromote_pg_state import inspect
from ansible.module_utils.relpromote_pg_swap import swap

MIN_SALT_LENGTH = 16

DOCUMENTATION = r"""
---
module: pg_masked_refresh
short_description: Refresh a QA PostgreSQL database from production with sensitive columns masked
description:
  - Runs on the QA database host. C(action=inspect) reads production's catalog (tables, columns,
    types, optionally exact row counts) and the state of QA. C(action=prepare) executes a plan made
    by relpromote (C(relpromote.refresh.plan_refresh)) from that catalog and the masking rules into a
    new database and verifies it; C(action=swap), a task of its own, makes that database QA's.
    C(action=refresh) does both in one process (for direct use; the role runs two tasks, so that a
    refresh stopped before its swap task is known to have left QA as it was).
  - The module stops, dropping what it built, as soon as its controller is gone (nobody reads its
    output any more - relpromote, ansible-playbook or its worker was stopped or killed), and checks
    once more right before the swap's rename.
  - The phases live in role-level module_utils (C(relpromote_pg_run) processes and scheduler,
    C(relpromote_pg_state) catalog and QA's state, C(relpromote_pg_copy) copy and verification,
    C(relpromote_pg_swap) the swap); Ansible ships them with the module.
  - Production is only read, by a read-only role, in READ ONLY transactions that share one exported
    snapshot (C(pg_export_snapshot)); its credentials reach libpq through an in-memory PGPASSFILE
    (a memfd, never a file on disk, never a command line) and the salt through stdin SQL.
  - The schema is restored into a new database C(<db>__incoming_<time>) in three steps (pre-data,
    data, post-data, so indexes and foreign keys are built after the load and validate it); every
    table is streamed masked with COPY; QA tables listed for carry-over are copied from the current
    QA database; row counts and masked columns are verified; then the current database becomes
    C(<db>__previous) and the new one C(<db>) in one transaction (the swap); the former previous becomes
    C(<db>__retired_<time>), dropped when the next refresh starts (a DROP DATABASE forces a checkpoint, costly
    right after the copy), so QA's server holds at most three copies.
  - Any failure or interruption before the swap drops the new database and leaves QA as it was; a
    new database left by a killed run is dropped at the next start. Only databases a refresh of this
    QA database marked (a C(relpromote_leftover) comment naming it) are ever dropped, whatever their name.
options:
  action:
    description:
      - C(inspect) reads; C(probe) tries the plan's masking on a sample against production's CHECK constraints;
        C(prepare) probes, then builds and verifies the new database; C(swap) puts it in place; C(refresh) prepares
        and swaps.
    type: str
    choices: [inspect, probe, prepare, swap, refresh]
    default: refresh
  source:
    description: Production's database server (read-only role); not needed by C(swap).
    type: dict
    suboptions:
      host: {description: Address of the server., type: str, required: true}
      port: {description: Port., type: int, default: 5432}
      database: {description: Database to copy., type: str, required: true}
      user: {description: Read-only role (member of pg_read_all_data)., type: str, required: true}
      password: {description: Its password., type: str, default: "", no_log: true}
      sslmode: {description: libpq sslmode., type: str, default: prefer}
      connect_timeout: {description: Seconds., type: int, default: 10}
  target:
    description: QA's database server, usually local.
    type: dict
    required: true
    suboptions:
      host: {description: Socket directory or address., type: str, default: /var/run/postgresql}
      port: {description: Port., type: int, default: 5432}
      database: {description: QA's database name., type: str, required: true}
      user: {description: Role with CREATEDB that owns QA's database., type: str, default: postgres}
      password: {description: Its password., type: str, default: "", no_log: true}
      maintenance_database: {description: Database to connect to for CREATE/ALTER/DROP DATABASE., type: str, default: postgres}
      owner: {description: Owner of the new database and its objects (default the user)., type: str, default: ""}
  plan:
    description: The plan (C(RefreshPlan.for_module())); required for C(prepare) and C(refresh).
    type: dict
  prepared:
    description: With C(swap), the C(summary) C(prepare) returned (the new database's name and this run's token).
    type: dict
  salt:
    description: Masking salt; set in each production session with set_config, never in SQL text on a command line.
    type: str
    no_log: true
  jobs:
    description: Tables copied at the same time.
    type: int
    default: 2
  min_interval:
    description: Seconds; when QA's database was refreshed more recently, do nothing (changed=false).
    type: int
    default: 0
  count_rows:
    description: With C(inspect), count every table's rows exactly (production) and the carried-over tables' (QA).
    type: bool
    default: false
  check_reader:
    description:
      - With C(inspect), only check production's reader role and report (C(reader)) instead of refusing a role that
        can write. Without it, C(inspect) fails when the role can write or more (superuser, CREATEROLE, write grants).
    type: bool
    default: false
  carry_over:
    description: With C(inspect), QA tables (schema.table) kept across refreshes, whose rows are counted.
    type: list
    elements: str
    default: []
  pg_bin_dir:
    description: Folder of psql, pg_dump and pg_restore; default the newest /usr/lib/postgresql/*/bin, else PATH.
    type: str
    default: ""
  masking:
    description:
      - Read by the role's action plugin (the module itself does not use it). With C(action=prepare) and no C(plan),
        the masking rules (table -> column -> rule); the task reads production's catalog, plans on the controller with
        relpromote's core (C(relpromote.refresh.plan_refresh)), tries the plan and prepares, in one task.
    type: dict
  dry_run:
    description:
      - Read by the role's action plugin (the module itself does not use it). With C(masking), stop after the plan and
        its probe and return the dry run's summary.
    type: bool
    default: false
requirements:
  - Python >= 3.10 and the PostgreSQL client programs (psql, pg_dump, pg_restore) on the host, of a version at least production's.
author: relpromote
"""

EXAMPLES = r"""
- name: Read production's catalog
  pg_masked_refresh:
    action: inspect
    source: {host: prod-db-1.internal, database: shop, user: relpromote_reader, password: "{{ reader_password }}"}
    target: {database: shop}
  register: catalog
"""

RETURN = r"""
catalog:
  description: (inspect) production's tables and columns.
  returned: inspect
  type: dict
reader:
  description: (inspect) what production's reader role can do beyond reading (refused, findings, notes).
  returned: inspect
  type: dict
qa:
  description: (inspect) QA's database, its last refresh and leftovers of killed runs.
  returned: inspect
  type: dict
summary:
  description:
    - (refresh) result, snapshot_time, started_at, duration_seconds, tables (rows), masked_columns, carried_over,
      previous_database, remasked, phases.
  returned: refresh
  type: dict
"""


ARGUMENT_SPEC: dict[str, Any] = {
    "action": {"type": "str", "choices": ["inspect", "probe", "prepare", "swap", "refresh"], "default": "refresh"},
    "source": {
        "type": "dict",
        "options": {
            "host": {"type": "str", "required": True},
            "port": {"type": "int", "default": 5432},
            "database": {"type": "str", "required": True},
            "user": {"type": "str", "required": True},
            "password": {"type": "str", "default": "", "no_log": True},
            "sslmode": {"type": "str", "default": "prefer"},
            "connect_timeout": {"type": "int", "default": 10},
        },
    },
    "target": {
        "type": "dict",
        "required": True,
        "options": {
            "host": {"type": "str", "default": "/var/run/postgresql"},
            "port": {"type": "int", "default": 5432},
            "database": {"type": "str", "required": True},
            "user": {"type": "str", "default": "postgres"},
            "password": {"type": "str", "default": "", "no_log": True},
            "maintenance_database": {"type": "str", "default": "postgres"},
            "owner": {"type": "str", "default": ""},
        },
    },
    "plan": {"type": "dict"},
    "prepared": {"type": "dict"},
    "salt": {"type": "str", "no_log": True},
    "jobs": {"type": "int", "default": 2},
    "min_interval": {"type": "int", "default": 0},
    "count_rows": {"type": "bool", "default": False},
    "check_reader": {"type": "bool", "default": False},
    "carry_over": {"type": "list", "elements": "str", "default": []},
    "pg_bin_dir": {"type": "str", "default": ""},
    "masking": {"type": "dict"},
    "dry_run": {"type": "bool", "default": False},
}


# What each action needs (AnsibleModule's required_if); a literal, read by the action plugin too.
REQUIRED_IF = [
    ["action", "inspect", ["source"]],
    ["action", "probe", ["source", "plan"]],
    ["action", "prepare", ["source", "plan", "salt"]],
    ["action", "refresh", ["source", "plan", "salt"]],
    ["action", "swap", ["prepared"]],
]
# Options only the role's action plugin reads (it plans on the controller): the module itself ignores them.
CONTROLLER_OPTIONS = ("masking", "dry_run")


class Done(BaseException):
    """The work ended (HostCall's exit_json or fail_json), as AnsibleModule's SystemExit does: its result."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("done")
        self.result = result


class HostCall:
    """What work() needs of AnsibleModule, for the action plugin that runs it with the host's Python directly
    (action_plugins/pg_masked_refresh.py): parameters already checked on the controller, warnings collected."""

    def __init__(self, params: dict[str, Any], check_mode: bool) -> None:
        self.params = dict(params)
        self.check_mode = bool(check_mode)
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def exit_json(self, **result: Any) -> None:
        raise Done(result)

    def fail_json(self, **result: Any) -> None:
        raise Done(dict(result, failed=True))


def host_call(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """The action plugin's entry: work()'s result for checked parameters, as the module would have printed it. Its
    invocation names the options but none of the secrets (passwords, salt) nor the plan."""
    call = HostCall(params, check_mode)
    try:
        work(call)
        result: dict[str, Any] = {"failed": True, "msg": "the work ended without a result"}
    except Done as done:
        result = done.result
    except Interrupted as exc:  # a signal outside the steps that handle it (inspect, probe): nothing was changed
        result = {"failed": True, "msg": f"interrupted ({exc}); QA left as it was"}
    if call.warnings:
        result["warnings"] = call.warnings
    shown = {key: value for key, value in params.items() if key not in ("salt", "plan", "prepared", "source", "target")}
    for side in ("source", "target"):
        if params.get(side):
            shown[side] = {key: value for key, value in params[side].items() if key != "password"}
    result["invocation"] = {"module_args": shown}
    return result


def main() -> None:
    # Imported here: the action plugin runs work() without Ansible's module library (host_call).
    from ansible.module_utils.basic import AnsibleModule

    work(AnsibleModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True))


def work(module: Any) -> None:
    params = module.params
    action = params["action"]
    database = params["target"]["database"]
    if action in ("prepare", "refresh") and len(params["salt"] or "") < MIN_SALT_LENGTH:
        module.fail_json(msg=f"the masking salt has fewer than {MIN_SALT_LENGTH} characters; refusing to mask with a guessable key")
    if action not in ("inspect", "probe") and module.check_mode:
        module.exit_json(changed=True, msg=f"would refresh {database} from production")
    bind_to_controller()
    children = Children()
    sweep_stale_workdirs()
    workdir = tempfile.mkdtemp(prefix=WORKDIR_PREFIX)  # 0700: the schema dump and error output only
    with open(os.path.join(workdir, "pid"), "w", encoding="ascii") as handle:
        handle.write(str(os.getpid()))
    refresh: Refresh | None = None
    try:
        bin_dir = find_bin_dir(params["pg_bin_dir"])
        if action == "inspect":
            module.exit_json(changed=False, **inspect(params, bin_dir, children, workdir))
        if action == "probe":
            misfits = probe(params, bin_dir, children, workdir)
            if misfits:
                module.fail_json(msg="; ".join(misfits), misfit=True)
            module.exit_json(changed=False)
        if action == "swap":
            try:
                summary = swap(params, bin_dir, children, workdir)
            except Interrupted as exc:
                module.fail_json(msg=f"swap of {database} interrupted ({exc}): QA may or may not have been swapped")
            module.exit_json(changed=True, summary=summary)
        # prepare and refresh first try the masking on production's CHECK constraints (the probe: reads a sample only).
        misfits = probe(params, bin_dir, children, workdir)
        if misfits:
            module.fail_json(msg="; ".join(misfits), misfit=True)
        refresh = Refresh(module.warn, params, bin_dir, children, workdir)
        try:
            summary = refresh.prepare()
        except (Exception, Interrupted) as exc:
            refresh.abandon()
            message = exc.message if isinstance(exc, RefreshError) else f"{type(exc).__name__}: {exc}"
            module.fail_json(
                msg=f"refresh of {database} failed, QA left as it was: {message}",
                busy=isinstance(exc, RefreshError) and exc.busy,
                summary=refresh.summary_on_failure(message),
            )
        if action == "refresh" and summary["result"] == "prepared":
            refresh.close()  # its sessions end, and with them its hold on QA's lock, which the swap takes again
            summary = swap(dict(params, prepared=summary), bin_dir, children, workdir)
        module.exit_json(changed=summary["result"] != "skipped", summary=summary)
    except RefreshError as exc:
        module.fail_json(msg=f"{exc.message}; QA left as it was", busy=exc.busy, error=exc.error)
    except Exception as exc:  # a bug must still come back as a result, with the processes stopped
        module.fail_json(msg=f"{type(exc).__name__}: {exc}")
    finally:
        if refresh is not None:
            refresh.close()
        children.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
