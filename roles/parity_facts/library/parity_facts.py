#!/usr/bin/python
"""Report, in one round trip, the facts `relpromote parity` compares between two environments.

Read-only: it reads /etc/os-release, /proc, the package database, the app's Python environment and
configuration files, and runs the runtime command it is given. Configuration values never leave
the host: only a salted hash of each (HMAC-SHA256 with a salt that lives for one parity check).
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: parity_facts
short_description: Gather what an environment must share with the one it mirrors
description:
  - Reports the operating system and version, the kernel, the CPUs this host's processes may use
    (affinity, bounded by a cgroup CPU quota), total memory, the versions of the listed system
    packages (dpkg, else rpm) and Python distributions, the Python version, the app's runtime
    version, the keys of the app's configuration files with a salted hash of each value, the TCP
    ports it listens on, its host name, and the release live under O(base_dir) with its digest.
  - Configuration values are never returned, only C(HMAC-SHA256(salt, value)), so hashes compare
    within one check and mean nothing outside it.
  - Changes nothing; supports check mode.
version_added: "1.0.0"
author: relpromote
options:
  packages:
    description: System package names whose installed versions are reported (missing ones as null).
    type: list
    elements: str
    default: []
  python_packages:
    description: Python distribution names whose installed versions are reported as C(python:<name>).
    type: list
    elements: str
    default: []
  python_path:
    description:
      - Directories (glob patterns) holding the app's Python distributions (C(*.dist-info), C(*.egg-info)).
      - Empty means the C(sys.path) of the Python running this module.
    type: list
    elements: str
    default: []
  runtime:
    description: A command (split like a shell would, run without one) printing the app's runtime version.
    type: str
    default: ""
  app_config:
    description:
      - The app's configuration files. C(KEY=VALUE) lines (C(.env), C(.properties), C(.conf)), INI
        sections, JSON or YAML mappings (nested keys joined with C(.)).
    type: list
    elements: path
    default: []
  salt:
    description: The secret salt of the configuration values' hashes; at least 16 characters.
    type: str
    default: ""
  base_dir:
    description: The app's base directory; C(<base_dir>/current) names the live release.
    type: path
    default: /opt/app
notes:
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Gather the parity facts
  parity_facts:
    packages: [openssl, libc6]
    python_packages: [requests]
    python_path: ["/opt/shop/venv/lib/python3*/site-packages"]
    runtime: /opt/shop/venv/bin/python --version
    app_config: [/opt/shop/shared/app.env]
    salt: "{{ lookup('ansible.builtin.file', salt_file) }}"
    base_dir: /opt/shop
"""

RETURN = r"""
parity:
  description: The facts, by name (os, kernel, cpu_count, memory, packages, python, runtime, config, ports, hostname, release).
  returned: always
  type: dict
"""

import configparser
import glob
import hashlib
import hmac
import json
import math
import os
import platform
import re
import shlex
import socket
import subprocess
import sys

from ansible.module_utils.basic import AnsibleModule

DPKG_STATUS = "/var/lib/dpkg/status"


def os_release():
    fields = {}
    try:
        with open("/etc/os-release") as handle:
            for line in handle:
                key, sep, value = line.strip().partition("=")
                if sep:
                    fields[key] = value.strip().strip('"')
    except OSError:
        return None
    return " ".join(part for part in (fields.get("ID", ""), fields.get("VERSION_ID", "")) if part) or None


def cpu_count():
    """CPUs this host's processes may run on: the affinity mask, bounded by a cgroup v2 quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 0
    try:
        with open("/sys/fs/cgroup/cpu.max") as handle:
            quota, period = handle.read().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return count


def memory_mib():
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def dpkg_versions(names, status=DPKG_STATUS):
    found = {}
    with open(status, encoding="utf-8", errors="replace") as handle:
        stanza = {}
        for line in [*handle, "\n"]:
            if line.strip():
                if not line[0].isspace():
                    key, _, value = line.partition(":")
                    stanza[key] = value.strip()
                continue
            name = stanza.get("Package")
            if name in names and stanza.get("Status", "").endswith(" installed"):
                found[name] = stanza.get("Version")
            stanza = {}
    return found


def rpm_versions(names):
    found = {}
    for name in names:
        result = subprocess.run(["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", name], capture_output=True, text=True, check=False)
        if result.returncode == 0:
            found[name] = result.stdout.strip()
    return found


def system_packages(names):
    if not names:
        return {}
    if os.path.exists(DPKG_STATUS):
        found = dpkg_versions(set(names))
    elif any(os.access(os.path.join(d, "rpm"), os.X_OK) for d in os.environ.get("PATH", "/usr/bin").split(os.pathsep)):
        found = rpm_versions(names)
    else:
        found = {}
    return {name: found.get(name) for name in names}


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def python_distributions(names, patterns):
    wanted = {normalise(n): n for n in names}
    if not wanted:
        return {}
    folders = [f for pattern in patterns for f in sorted(glob.glob(pattern))] if patterns else list(sys.path)
    found = {}
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.listdir(folder)):
            stem, ext = os.path.splitext(entry)
            if ext not in (".dist-info", ".egg-info"):
                continue
            name, version = metadata(os.path.join(folder, entry), stem)
            key = normalise(name)
            if key in wanted and wanted[key] not in found:
                found[wanted[key]] = version
    return {f"python:{name}": found.get(name) for name in names}


def metadata(path, stem):
    name, _, version = stem.partition("-")
    for member in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(path, member), encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if not line.strip():
                        break
                    if line.startswith("Name:"):
                        name = line.split(":", 1)[1].strip()
                    elif line.startswith("Version:"):
                        version = line.split(":", 1)[1].strip()
            break
        except OSError:
            continue
    return name, version


def runtime_version(command):
    if not command:
        return None
    try:
        result = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=20, check=False, stdin=subprocess.DEVNULL)
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        return f"cannot run: {exc}"
    output = (result.stdout.strip() or result.stderr.strip()).splitlines()
    return output[0].strip() if output and result.returncode == 0 else f"exited {result.returncode}"


def flatten(value, prefix=""):
    if isinstance(value, dict):
        items = {}
        for key, inner in value.items():
            items.update(flatten(inner, f"{prefix}{key}."))
        return items
    return {prefix[:-1]: value if isinstance(value, str) else json.dumps(value, sort_keys=True)}


def read_config(path):
    """The file's settings as {key: value text}; None when there is no such file."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    name = path.lower()
    if name.endswith(".json"):
        return flatten(json.loads(text))
    if name.endswith((".yml", ".yaml")):
        import yaml  # present wherever Ansible's controller side is; a host without it fails this file only

        return flatten(yaml.safe_load(text) or {})
    if re.search(r"^\s*\[[^\]]+\]\s*$", text, re.MULTILINE):
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str
        parser.read_string(text)
        return {f"{section}.{key}": value for section in parser.sections() for key, value in parser.items(section)}
    settings = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        line = line[len("export "):] if line.startswith("export ") else line
        key, sep, value = line.partition("=")
        if sep:
            settings[key.strip()] = value.strip().strip('"').strip("'")
    return settings


def config_hashes(paths, salt):
    hashes = {}
    for path in paths:
        name = os.path.basename(path)
        try:
            settings = read_config(path)
        except (OSError, ValueError, configparser.Error) as exc:
            hashes[f"{name}:(unreadable)"] = type(exc).__name__
            continue
        if settings is None:
            hashes[f"{name}:(file)"] = None
            continue
        for key, value in settings.items():
            hashes[f"{name}:{key}"] = hmac.new(salt.encode(), str(value).encode(), hashlib.sha256).hexdigest()[:16]
    return hashes


def listening_ports():
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return sorted(ports)


def live_release(base_dir):
    link = os.path.join(base_dir, "current")
    try:
        target = os.readlink(link)
    except OSError:
        return None
    digest = None
    try:
        with open(os.path.join(link, ".release", "DIGEST")) as handle:
            digest = handle.read().strip() or None
    except OSError:
        pass
    return {"version": os.path.basename(target.rstrip("/")), "digest": digest}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            packages=dict(type="list", elements="str", default=[]),
            python_packages=dict(type="list", elements="str", default=[]),
            python_path=dict(type="list", elements="str", default=[]),
            runtime=dict(type="str", default=""),
            app_config=dict(type="list", elements="path", default=[]),
            salt=dict(type="str", default="", no_log=True),
            base_dir=dict(type="path", default="/opt/app"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["app_config"] and len(params["salt"]) < 16:
        module.fail_json(msg="app_config needs a salt of at least 16 characters, so that values are never compared in the clear")
    packages = system_packages(params["packages"])
    packages.update(python_distributions(params["python_packages"], params["python_path"]))
    facts = {
        "os": os_release(),
        "kernel": platform.release(),
        "cpu_count": cpu_count(),
        "memory": memory_mib(),
        "packages": packages,
        "python": platform.python_version(),
        "runtime": runtime_version(params["runtime"]),
        "config": config_hashes(params["app_config"], params["salt"]),
        "ports": listening_ports(),
        "hostname": socket.gethostname(),
        "release": live_release(params["base_dir"]),
    }
    module.exit_json(changed=False, parity=facts)


if __name__ == "__main__":
    main()
