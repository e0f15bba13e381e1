# -*- coding: utf-8 -*-
"""The restart hook's side of the application contract, on the host (release_finish and release_rollback).

Owns where the hook's program is found once `current` points to a release, what the hook gets
(arguments: none added; environment: the RELEASE_* and APP_* variables below; working directory:
the release; stdin: /dev/null), and how a hook that cannot run or fails is told: one line naming the
command, its exit code and the last lines of its output, plus the same as data (`error`).

Shipped with every module that imports it (Ansible's module_utils); roles/release_rollback holds a
link to this file, so it is written once. Python standard library only.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import shlex
import subprocess

__metaclass__ = type

# The last lines of the hook's output that are reported, and how long they may be in all: enough to
# see why it failed, short enough for a one-line error.
TAIL_LINES = 5
TAIL_LINE_CHARS = 200
TAIL_CHARS = 400


class HookError(Exception):
    """The hook could not run, or failed: `msg` is one line, `error` the same as data."""

    def __init__(self, msg, error):
        super(HookError, self).__init__(msg)
        self.msg = msg
        self.error = error


def hook_command(command, base_dir):
    """The configured command, or the hook the release ships: <base_dir>/current/bin/restart (quoted: the
    base directory may hold spaces, and the command is split into arguments as a shell would)."""
    return (command or "").strip() or shlex.quote(os.path.join(base_dir, "current", "bin", "restart"))


def quoted(command):
    return json.dumps(command)


def split(command):
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise HookError(
            "the restart hook %s cannot be split into arguments: %s" % (quoted(command), exc),
            error_data(command, step="hook", problem="cannot be split into arguments"),
        )
    if not argv:
        raise HookError("the restart hook is empty", error_data(command, step="hook", problem="empty"))
    return argv


def error_data(command, step, rc=None, output=None, problem=None):
    data = {"step": step, "command": command, "rc": rc, "output": list(output or [])}
    if problem:
        data["problem"] = problem
    return data


def program_path(program, base_dir, release_dir):
    """Where `program` (the hook's argv[0]) is, once `current` points to `release_dir`; None: look it up on PATH.

    A path under <base_dir>/current, or a relative path with a slash (the hook runs in the release
    directory), is inside the release.
    """
    link = os.path.join(base_dir, "current")
    if program.startswith(link + "/"):
        return release_dir + program[len(link):]
    if "/" not in program:
        return None
    if not program.startswith("/"):
        return os.path.normpath(os.path.join(release_dir, program))
    return program


def find_problem(command, base_dir, release_dir):
    """Why the hook cannot run once `current` points to `release_dir`, or None when its program is there and executable."""
    program = split(command)[0]
    path = program_path(program, base_dir, release_dir)
    if path is None:
        for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
            candidate = os.path.join(directory, program)
            if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return None
        return "%s is not found on the PATH" % program
    if not os.path.exists(path):
        return "%s is missing" % path
    if not os.path.isfile(path):
        return "%s is not a file" % path
    if not os.access(path, os.X_OK):
        return "%s is not executable" % path
    return None


def check(command, base_dir, release_dir):
    """Raise HookError (step `hook`) when the hook cannot run: called before anything is switched."""
    problem = find_problem(command, base_dir, release_dir)
    if problem:
        raise HookError(
            "the restart hook %s cannot run: %s" % (quoted(command), problem),
            error_data(command, step="hook", problem=problem),
        )


def environment(base_dir, version, previous, action, service_host, service_port, health_url):
    """What the hook finds in its environment, besides the connection's own (PATH, HOME, ...)."""
    return {
        "RELEASE_BASE_DIR": base_dir,
        "RELEASE_DIR": os.path.join(base_dir, "releases", version),
        "RELEASE_VERSION": version,
        "RELEASE_PREVIOUS_VERSION": previous or "",
        "RELEASE_ACTION": action,
        "RELEASE_HEALTH_URL": health_url,
        "APP_HOST": service_host,
        "APP_PORT": str(service_port),
    }


def tail(output):
    """The last non-empty lines of `output`, each cut short, at most TAIL_CHARS in all."""
    lines = [line.strip()[:TAIL_LINE_CHARS] for line in output.splitlines() if line.strip()][-TAIL_LINES:]
    while len(lines) > 1 and sum(len(line) + 3 for line in lines) > TAIL_CHARS:
        lines.pop(0)
    return lines


def run(command, env):
    """Run the hook without a shell, in the release directory, stdin from /dev/null; its output's tail.

    Raises HookError (step `restart`) when it cannot be started or exits with anything but 0.
    """
    argv = split(command)
    check(command, env["RELEASE_BASE_DIR"], env["RELEASE_DIR"])
    full = dict(os.environ)
    full.update(env)
    try:
        process = subprocess.Popen(
            argv, cwd=env["RELEASE_DIR"], env=full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        out, _ = process.communicate()
    except OSError as exc:
        raise HookError(
            "the restart hook %s could not be started: %s" % (quoted(command), exc),
            error_data(command, step="restart", problem=str(exc)),
        )
    lines = tail(out.decode("utf-8", "replace"))
    if process.returncode != 0:
        rc = process.returncode
        how = "was killed by signal %d" % -rc if rc < 0 else "exited with %d" % rc
        raise HookError(
            "the restart hook %s %s: %s" % (quoted(command), how, " | ".join(lines) or "(no output)"),
            error_data(command, step="restart", rc=rc, output=lines),
        )
    return lines
