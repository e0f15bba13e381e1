"""Run host-side work written in module_utils with the host's Python directly: one command, no module wrapper.

A module execution ships Ansible's wrapper and its module library (AnsiballZ), which the host unpacks and compiles
on every run: about a second per run for five hosts on a busy two-core controller, for a few milliseconds of work.
The roles' host-side code lives in module_utils as plain functions of their parameters, using the Python standard
library only; release_lock, release_live and release_rollback's action plugins pipe those files, a few lines that
make them importable under their usual names (ansible.module_utils.<name>), and one call with the task's checked
parameters to the host's Python, and read back the result it prints. The parameters are checked on the controller
with Ansible's own validator against the module's ARGUMENT_SPEC (a literal in the entry file), so the work gets
what the module would have got. Without pipelining (a connection that cannot feed a command's stdin) the action
plugins run the module as usual; the result is the same.

Not an action plugin itself (the leading underscore): the action plugins load it by path.
"""

from __future__ import annotations

import ast
import json
import os
import shlex

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

RESULT_MARK = "relpromote host result: "

PRELUDE = r'''
import json, sys, traceback, types
for _package in ("ansible", "ansible.module_utils"):
    if _package not in sys.modules:
        _stub = types.ModuleType(_package)
        _stub.__path__ = []
        sys.modules[_package] = _stub
def _load(name, source):
    full = "ansible.module_utils." + name
    module = types.ModuleType(full)
    module.__file__ = "<%s>" % full
    sys.modules[full] = module
    setattr(sys.modules["ansible.module_utils"], name, module)
    exec(compile(source, full, "exec"), module.__dict__)
'''

CALL = r'''
try:
    for _name, _source in json.loads(%(sources)r):
        _load(_name, _source)
    _result = getattr(sys.modules["ansible.module_utils." + %(entry)r], %(function)r)(json.loads(%(params)r), %(check)r)
    _result.setdefault("invocation", {"module_args": json.loads(%(params)r)})  # as AnsibleModule reports it
except Exception:
    _result = {"failed": True, "msg": "the host-side work failed: " + traceback.format_exc(limit=3).strip().splitlines()[-1],
               "exception": traceback.format_exc()}
sys.stdout.write("\n" + %(mark)r + json.dumps(_result) + "\n")
'''


def utils_dir(action_file):
    """The module_utils folder of the role (or playbooks folder) an action plugin lives in."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(action_file))), "module_utils")


def read_sources(folder, names):
    """[(name, source)] of module_utils files, in the order given (each after those it imports)."""
    sources = []
    for name in names:
        with open(os.path.join(folder, name + ".py"), encoding="utf-8") as handle:
            sources.append((name, handle.read()))
    return sources


def literal(source, name):
    """The literal assigned to `name` at the top of a source (`NAME = ...` or `NAME: type = ...`)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name and node.value:
            return ast.literal_eval(node.value)
    raise ValueError("no %s literal" % name)


def argument_spec(source):
    """The literal ARGUMENT_SPEC assigned in a module or module_utils source."""
    return literal(source, "ARGUMENT_SPEC")


def checked(spec, args, required_if=None):
    """The task's arguments as AnsibleModule would give them to the module (defaults, types, required_if), or
    ValueError saying what is wrong. Paths stay as given: the host expands them."""
    spec = {name: dict(option, type="str") if option.get("type") == "path" else option for name, option in spec.items()}
    result = ArgumentSpecValidator(spec, required_if=required_if).validate(dict(args))
    if result.error_messages:
        raise ValueError("; ".join(result.error_messages))
    return result.validated_parameters


def program(sources, entry, function, params, check_mode):
    """The Python program the host runs: the sources made importable, then `entry.function(params, check_mode)`."""
    return PRELUDE + CALL % {
        "sources": json.dumps(sources), "entry": entry, "function": function, "params": json.dumps(params),
        "check": bool(check_mode), "mark": RESULT_MARK,
    }


def interpreter(task_vars):
    """The host's Python: ansible_python_interpreter when the inventory names one, else python3."""
    configured = str((task_vars or {}).get("ansible_python_interpreter") or "")
    return configured if configured and not configured.startswith("auto") and "{{" not in configured else "python3"


def run_on_host(action, text, task_vars):
    """Run `text` with the host's Python over the action's connection: the result it printed, a failure saying why, or
    None when the host has no such Python (exit 127): then the caller runs the module, whose interpreter Ansible finds."""
    python = interpreter(task_vars)
    ran = action._low_level_execute_command("%s -" % shlex.quote(python), in_data=text.encode("utf-8"), sudoable=True)
    output = next((line[len(RESULT_MARK):] for line in (ran.get("stdout") or "").splitlines() if line.startswith(RESULT_MARK)), None)
    if output is None and ran.get("rc") == 127:
        return None  # no such Python on the host: the caller runs the module instead (interpreter discovery)
    if output is None:
        said = (ran.get("stderr") or ran.get("stdout") or "").strip()[-500:]
        return {"failed": True, "rc": ran.get("rc"), "msg": "%s on the host gave no result (exit %s): %s" % (python, ran.get("rc"), said or "no output")}
    return json.loads(output)
