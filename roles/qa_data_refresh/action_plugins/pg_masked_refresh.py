"""Controller side of pg_masked_refresh: a refresh's reading, planning, probing and copying in one task, the host's
work run with the host's Python directly.

A module task costs a worker on the controller and, on the host, Ansible's module wrapper (AnsiballZ) unpacked and its
module library imported; the role used to pay that four times before the swap (read the catalog, plan with a filter in a
set_fact, probe, prepare), plus the tasks that published the results. With `masking` (and no `plan`), one task of this
plugin does all of it:

1. `inspect` on the host (reads production's catalog and QA's state, checks the reader role);
2. with `check_reader`, stops there and publishes the reader's report (`qa_data_refresh_reader`);
3. plans on the controller with relpromote's core (relpromote.refresh.plan_refresh: one implementation of the
   masking rules), a plan that does not fit production failing with `error.kind` `masking_misfit`;
4. in a dry run or check mode, tries the plan on production's CHECK constraints (`probe`) and publishes the dry
   run's summary (`qa_data_refresh`);
5. otherwise `prepare` on the host, which probes first: the new database is built and verified, and the task returns
   its summary with `prepared: true`; the swap is left to a task of its own (`action: swap`), which publishes the
   final summary.

Host-side steps run as one command each with the host's Python (action_plugins/_host_python.py: the module file and
its module_utils piped to `python3 -`, parameters checked here against the module's ARGUMENT_SPEC and REQUIRED_IF
first): no module wrapper, no module library. Without pipelining the module runs as usual, step by step; the result is
the same. Any other use (`action` inspect, probe, prepare with a `plan`, swap, refresh) is one step.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

MODULE = "ansible.legacy.pg_masked_refresh"
# The module's work imports these, each after those it imports; then the module file itself (host_call()).
UTILS = ("relpromote_pg_run", "relpromote_pg_state", "relpromote_pg_copy", "relpromote_pg_probe", "relpromote_pg_swap")
MISFIT = "masking_misfit"  # error.kind of a plan or a probe that refuses the masking rules: nothing was copied


def _helper() -> Any:
    here = os.path.dirname(os.path.realpath(__file__))
    spec = importlib.util.spec_from_file_location("relpromote_host_python", os.path.join(here, "_host_python.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOST = _helper()


def _import_meanwhile(*names: str) -> threading.Thread:
    """Import relpromote's core (pydantic: 0.3 s of CPU on a quiet controller, 1 s under load) in a thread while the host
    reads production's catalog, instead of after it. Here, not at the top of this file, nor in a filter plugin, which
    ansible-playbook itself would import at start-up: the swap's worker, forked from it, need not import it. An
    ImportError is left to the import that follows the join, which reports it."""

    def load() -> None:
        with contextlib.suppress(ImportError):
            for name in names:
                importlib.import_module(name)

    thread = threading.Thread(target=load, name="relpromote-core-import", daemon=True)
    thread.start()
    return thread


def _plain(value: Any) -> Any:
    """Plain dicts, lists and scalars (Ansible may hand over its own container types)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        del tmp
        args = _plain(dict(self._task.args))
        masking = args.pop("masking", None)
        dry_run = boolean(args.pop("dry_run", False), strict=False)
        if masking is None or args.get("plan") or args.get("action") != "prepare":
            done = self._step(args, task_vars, bool(self._task.check_mode))
            if args.get("action") == "swap" and not done.get("failed"):
                done["ansible_stats"] = {"data": {"qa_data_refresh": done.get("summary")}, "per_host": False, "aggregate": False}
            result.update(done)
            return result
        result.update(self._refresh(args, masking, dry_run or bool(self._task.check_mode), task_vars))
        return result

    def _refresh(self, args: dict[str, Any], masking: Any, dry_run: bool, task_vars: dict[str, Any] | None) -> dict[str, Any]:
        check_reader = boolean(args.get("check_reader", False), strict=False)
        looked: dict[str, Any] = {key: args[key] for key in ("source", "target", "carry_over", "pg_bin_dir", "check_reader") if key in args}
        looked.update(action="inspect", count_rows=dry_run and not check_reader)
        clock = time.monotonic()
        core = None if check_reader else _import_meanwhile("relpromote.errors", "relpromote.refresh")
        inspected = self._step(looked, task_vars, False)  # reads only: also in check mode
        if core is not None:
            core.join()
        timings = {"inspect": round(time.monotonic() - clock, 3)}
        if inspected.get("failed"):
            return inspected
        if check_reader:
            return {"changed": False, "reader": inspected.get("reader"), "prepared": False,
                    "ansible_stats": {"data": {"qa_data_refresh_reader": inspected.get("reader")}, "per_host": False}}
        try:  # here, not at the top: the swap's worker need not import relpromote's core (pydantic)
            from relpromote.errors import RelpromoteError
            from relpromote.refresh import Catalog, dry_run_report, parse_masking, plan_refresh
        except ImportError as exc:  # pragma: no cover - only when the role is used without relpromote
            return {"failed": True, "msg": f"the qa_data_refresh role needs relpromote on the controller ({exc}); pip install relpromote"}
        target = args.get("target") or {}
        try:
            plan = plan_refresh(
                Catalog.model_validate(inspected["catalog"]),
                parse_masking(masking),
                carry_over=list(args.get("carry_over") or []),
                qa_database=target.get("database") or None,
            ).for_module()
        except RelpromoteError as exc:
            return {"failed": True, "msg": f"qa_data_refresh: {exc.message}", "error": {"kind": MISFIT}}
        timings["plan"] = round(time.monotonic() - clock - timings["inspect"], 3)
        base = {key: value for key, value in args.items() if key not in ("count_rows", "check_reader", "carry_over")}
        if dry_run:
            if any(table.get("probes") for table in plan["tables"]):
                probed = self._step({**base, "action": "probe", "plan": plan, "salt": None}, task_vars, False)
                if probed.get("failed"):
                    return self._misfit(probed)
            summary = dry_run_report(plan, inspected.get("qa"))
            return {"changed": False, "plan": plan, "prepared": False,
                    "ansible_stats": {"data": {"qa_data_refresh": summary}, "per_host": False}}
        prepared = self._step({**base, "action": "prepare", "plan": plan}, task_vars, False)
        if prepared.get("failed"):
            return self._misfit(prepared)
        summary = prepared.get("summary") or {}
        # The controller's share (reading the catalog, planning) ahead of the host's phases.
        summary["phases"] = {**timings, **dict(summary.get("phases") or {})}
        prepared["prepared"] = summary.get("result") == "prepared"
        if not prepared["prepared"]:  # skipped (min_interval): this is the refresh's summary
            prepared["ansible_stats"] = {"data": {"qa_data_refresh": summary}, "per_host": False}
        return prepared

    @staticmethod
    def _misfit(failed: dict[str, Any]) -> dict[str, Any]:
        if failed.get("misfit"):
            failed["error"] = {**dict(failed.get("error") or {}), "kind": MISFIT}
        return failed

    def _step(self, module_args: dict[str, Any], task_vars: dict[str, Any] | None, check_mode: bool) -> dict[str, Any]:
        """One action of the module: its work run with the host's Python (no module wrapper), or the module itself
        without pipelining."""
        module_args = {key: value for key, value in module_args.items() if value is not None}
        done = None
        if self._connection.is_pipelining_enabled():
            utils = HOST.utils_dir(os.path.realpath(__file__))
            shipped = HOST.read_sources(utils, UTILS)
            with open(os.path.join(os.path.dirname(utils), "library", "pg_masked_refresh.py"), encoding="utf-8") as handle:
                shipped.append(("pg_masked_refresh", handle.read()))
            try:
                params = HOST.checked(HOST.argument_spec(shipped[-1][1]), module_args, HOST.literal(shipped[-1][1], "REQUIRED_IF"))
            except ValueError as exc:
                return {"failed": True, "msg": "pg_masked_refresh: %s" % exc}
            program = HOST.program(shipped, "pg_masked_refresh", "host_call", params, check_mode)
            done = HOST.run_on_host(self, program, task_vars)
        if done is None:  # in check mode the module still reads (inspect, probe); the plugin runs nothing else then
            done = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)
        return dict(done)
