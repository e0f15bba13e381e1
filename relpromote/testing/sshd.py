"""Real sshd "hosts" on the local machine, for integration tests that run real Ansible.

This module owns the whole life of a small farm of OpenSSH daemons: the client key (unless the
caller brings its own public keys), each host's key and sshd_config, the sshd processes and
everything left running inside a host when it stops, and the inventory that points Ansible at
them. It does not own the workdir: that is the caller's (pytest's tmp_path, say), and the files
stay there after stop() for post-mortems.

As root (CI containers, these machines) each host is one `sshd -D` started under
`unshare --mount --uts`: it listens on 127.0.77.N:22 (RELPROMOTE_TEST_NET picks another /24), has its own hostname, a private tmpfs on
/run, and private /opt, /srv, /root and /home bind-mounted from `SshHost.root` on the
controller. A file deployed to /opt on one host is invisible to the other hosts and to the
controller, except through `host.path("/opt/...")`. Everything else (/usr, /etc, /tmp, /work,
the process table, the network) is shared with the controller: isolated file trees, not
containers. `SshHost.isolated` is True.

Without root no namespaces can be made, so each host is a plain sshd on 127.0.0.1:2200+N that
only lets the current user in, and `SshHost.isolated` is False. `host.root` is then just a
folder and "/opt" on such a host is the controller's real /opt: configure the code under test to
use base directories under the host's root, e.g. `str(host.path("/opt/shop"))` instead of
"/opt/shop". Processes that tests start over SSH are not swept up on stop in this mode.

    with SshHostFarm(tmp_path / "farm", ["web1", "web2"]) as farm:
        inventory = farm.inventory(group_by={"web": ["web1", "web2"]})
        ...  # run Ansible against the inventory
        assert farm["web1"].path("/opt/shop/current").is_symlink()
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, BinaryIO

SSHD = "/usr/sbin/sshd"
# The directories each isolated host gets its own copy of; the rest of the tree is the controller's.
PRIVATE_DIRS = ("opt", "srv", "root", "home")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 3.0
SSH_COMMON_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"

# A host name becomes a hostname, a directory name and an inventory name: keep it to what all three accept.
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

# Runs inside the new mount and UTS namespaces, with the farm workdir as cwd; $1 is the host name,
# $2 the sshd binary. The paths are relative on purpose: they resolve from the cwd, which keeps
# pointing at the workdir even after a mount covers one of its ancestors (a workdir under /root,
# /home or /run still works). sshd reads its config, host key and authorized_keys through
# /run/sshd-host for the same reason.
_WRAPPER = """\
set -eu
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir /run/sshd /run/sshd-host
mount --bind "sshd/$1" /run/sshd-host
for d in opt srv root home; do mount --bind "hosts/$1/$d" "/$d"; done
hostname "$1"
exec "$2" -D -e -f /run/sshd-host/sshd_config
"""


class SshHostError(RuntimeError):
    """A host's sshd could not be started or stopped."""


@dataclass(frozen=True)
class SshHost:
    """One running sshd host, as tests see it from the controller."""

    name: str
    address: str
    port: int
    root: Path  # controller-side folder holding the host's opt/, srv/, root/ and home/
    pid: int  # the sshd process; a restarted host gets a new SshHost with a new pid
    isolated: bool = True  # False: plain sshd without namespaces (not root), see the module docstring
    user: str = "root"

    def path(self, remote: str) -> Path:
        """The controller-side Path of an absolute path on the host, e.g. "/opt/shop/current"."""
        pure = PurePosixPath(remote)
        parts = pure.parts[1:]
        # Only the private directories have a controller-side copy; "/tmp/x" would name a file
        # that is not the one the host sees, so refuse rather than let a test assert on the wrong file.
        if not pure.is_absolute() or not parts or parts[0] not in PRIVATE_DIRS or ".." in parts:
            raise ValueError(f"{remote!r} is not an absolute path under a host-private directory (/{', /'.join(PRIVATE_DIRS)})")
        return self.root.joinpath(*parts)


class SshHostFarm:
    """Starts one sshd per host name, stops them all (and what runs inside them) on exit."""

    def __init__(
        self,
        workdir: Path,
        names: Sequence[str],
        first_octet: int = 1,
        authorized_keys: Sequence[str] | None = None,
        network: str | None = None,
    ) -> None:
        if isinstance(names, str):  # a str is a Sequence[str] too; "web1" must not become five hosts
            raise TypeError("names must be a list of host names, not a string")
        if not names:
            raise ValueError("a farm needs at least one host name")
        for name in names:
            if not _HOST_NAME.fullmatch(name):
                raise ValueError(f"host name {name!r} is not a valid hostname")
        if len(set(names)) != len(names):
            raise ValueError(f"host names repeat: {list(names)}")
        if first_octet < 1 or first_octet + len(names) - 1 > 254:
            raise ValueError(f"first_octet {first_octet} with {len(names)} hosts leaves .1-.254 of the /24")
        keys = [key.strip() for key in authorized_keys or []]
        if authorized_keys is not None and (not keys or any(not key or "\n" in key for key in keys)):
            raise ValueError("authorized_keys must be non-empty, one single-line public key each")
        self.workdir = Path(workdir).absolute()
        self.names = list(names)
        self.first_octet = first_octet
        # The /24 of loopback the hosts listen on: RELPROMOTE_TEST_NET lets two test sessions on one machine coexist.
        self.network = network or os.environ.get("RELPROMOTE_TEST_NET", "127.0.77")
        if not re.fullmatch(r"127\.\d{1,3}\.\d{1,3}", self.network):
            raise ValueError(f"network {self.network!r} must be three octets of 127.0.0.0/8, e.g. 127.0.77")
        # unshare and mount need root; without it every host is a plain sshd (see module docstring).
        self.isolated = os.geteuid() == 0
        self.user = "root" if self.isolated else pwd.getpwuid(os.geteuid()).pw_name
        self.public_keys: list[str] = keys  # filled from the generated key in start() otherwise
        self._owns_key = authorized_keys is None
        self.private_key: Path | None = self.workdir / "id_ed25519" if self._owns_key else None
        # The hosts share /usr with the controller, so the system python3 exists on every host, even
        # when the controller's interpreter sits in a folder a host cannot see (a venv under /root).
        self.python_interpreter = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
        self._hosts: dict[str, SshHost] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, tuple[BinaryIO, int]] = {}
        self._mnt_ns: dict[str, str] = {}
        self._prepared = False

    # -- the public surface -------------------------------------------------------------------

    def __enter__(self) -> SshHostFarm:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __getitem__(self, name: str) -> SshHost:
        return self._hosts[name]

    @property
    def hosts(self) -> list[SshHost]:
        """The hosts started so far, in the order of `names` (a stopped host keeps its last entry)."""
        return [self._hosts[name] for name in self.names if name in self._hosts]

    def endpoint(self, name: str) -> tuple[str, int]:
        """The (address, port) a host listens on; fixed from construction, running or not."""
        index = self.names.index(name)
        if self.isolated:
            return f"{self.network}.{self.first_octet + index}", 22
        return "127.0.0.1", 2200 + self.first_octet + index

    def start(self) -> None:
        """Start every host that is not running, all at once, and wait until each listens (10 s at most)."""
        self._prepare()
        try:
            todo = [name for name in self.names if name not in self._procs]
            for name in todo:
                self._launch(name)
            self._wait_ready(todo)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every host and whatever still runs inside it. Safe to call more than once."""
        self._stop(list(self._procs))

    def start_host(self, name: str) -> SshHost:
        """(Re)start one host's sshd, with the same address, keys and private folders."""
        self._check_name(name)
        self._prepare()
        if name not in self._procs:
            try:
                self._launch(name)
                self._wait_ready([name])
            except BaseException:
                self._stop([name])
                raise
        return self._hosts[name]

    def stop_host(self, name: str) -> None:
        """Stop one host: its sshd, its open SSH sessions and everything started inside it, so it is unreachable."""
        self._check_name(name)
        self._stop([name])

    def is_running(self, name: str) -> bool:
        self._check_name(name)
        proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def inventory(
        self,
        group_by: Mapping[str, Sequence[str]] | None = None,
        extra_vars: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An Ansible inventory (YAML/JSON-ready dict) of every host, running or not.

        group_by maps group names to host names; extra_vars become `all.vars`. Without the
        farm's own key, the caller supplies the key (e.g. `ansible_ssh_private_key` from a vault).
        """
        hosts: dict[str, dict[str, Any]] = {}
        for name in self.names:
            address, port = self.endpoint(name)
            host_vars: dict[str, Any] = {
                "ansible_host": address,
                "ansible_port": port,
                "ansible_user": self.user,
                "ansible_ssh_common_args": SSH_COMMON_ARGS,
                "ansible_python_interpreter": self.python_interpreter,
            }
            if self.private_key is not None:
                host_vars["ansible_ssh_private_key_file"] = str(self.private_key)
            hosts[name] = host_vars
        inventory: dict[str, Any] = {"all": {"hosts": hosts}}
        if group_by:
            children: dict[str, Any] = {}
            for group, members in group_by.items():
                for member in members:
                    self._check_name(member)
                children[group] = {"hosts": {member: {} for member in members}}
            inventory["all"]["children"] = children
        if extra_vars:
            inventory["all"]["vars"] = dict(extra_vars)
        return inventory

    # -- files ----------------------------------------------------------------------------------

    def _check_name(self, name: str) -> None:
        if name not in self.names:
            raise KeyError(f"no host {name!r} in this farm (hosts: {', '.join(self.names)})")

    def _state_dir(self, name: str) -> Path:
        return self.workdir / "sshd" / name

    def _prepare(self) -> None:
        """Write keys and configs once; later starts reuse them so a restarted host keeps its identity."""
        if self._prepared:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        keygens: list[subprocess.Popen[bytes]] = []
        if self.private_key is not None and not self.private_key.exists():
            keygens.append(_keygen(self.private_key, "relpromote-sshd-farm-client"))
        for name in self.names:
            state = self._state_dir(name)
            state.mkdir(parents=True, exist_ok=True)
            root = self.workdir / "hosts" / name
            for private in PRIVATE_DIRS:
                (root / private).mkdir(parents=True, exist_ok=True)
            (root / "root").chmod(0o700)
            if not (state / "ssh_host_ed25519_key").exists():
                keygens.append(_keygen(state / "ssh_host_ed25519_key", f"relpromote-sshd-farm-{name}"))
        # ssh-keygen runs are independent: run them side by side, then check them all.
        for keygen in keygens:
            _, err = keygen.communicate()
            if keygen.returncode != 0:
                raise SshHostError(f"ssh-keygen failed: {err.decode(errors='replace').strip()}")
        if self.private_key is not None:
            self.private_key.chmod(0o600)
            self.public_keys = [Path(f"{self.private_key}.pub").read_text().strip()]
        authorized = "".join(f"{key}\n" for key in self.public_keys)
        _write_private(self.workdir / "authorized_keys", authorized)
        for name in self.names:
            state = self._state_dir(name)
            # A copy per host, because an isolated sshd sees only its own state dir (at /run/sshd-host).
            _write_private(state / "authorized_keys", authorized)
            seen_as = "/run/sshd-host" if self.isolated else str(state)
            (state / "sshd_config").write_text(self._sshd_config(name, seen_as))
        self._prepared = True

    def _sshd_config(self, name: str, state: str) -> str:
        address, port = self.endpoint(name)
        return "\n".join(
            [
                f"# sshd for test host {name}, written by relpromote.testing.sshd",
                f"ListenAddress {address}:{port}",
                f"HostKey {state}/ssh_host_ed25519_key",
                f"PidFile {state}/sshd.pid",
                f"AuthorizedKeysFile {state}/authorized_keys",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                # No PAM: no login sessions, no account checks that containers cannot satisfy.
                "UsePAM no",
                # The key files live in a test workdir whose owners and modes sshd would otherwise reject.
                "StrictModes no",
                "Subsystem sftp internal-sftp",
                # No AcceptEnv line: the controller's locale and environment never leak into a host.
                "UseDNS no",
                "PrintMotd no",
                # Ansible forks and ControlMaster multiplexing open many connections and sessions at once;
                # the defaults (10) would make sshd drop some and Ansible report a host unreachable.
                "MaxStartups 200",
                "MaxSessions 200",
                "LogLevel ERROR",
                "",
            ]
        )

    # -- processes ------------------------------------------------------------------------------

    def _launch(self, name: str) -> None:
        address, port = self.endpoint(name)
        # A listener already there (a leftover farm, a system sshd on 0.0.0.0:22) would make the
        # readiness check below succeed against the wrong daemon.
        if _accepts_tcp(address, port):
            raise SshHostError(f"host {name}: {address}:{port} already accepts connections; another sshd holds it")
        state = self._state_dir(name)
        log = (state / "sshd.log").open("ab")
        offset = log.tell()
        if self.isolated:
            argv = ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", _WRAPPER, "sh", name, SSHD]
        else:
            argv = [SSHD, "-D", "-e", "-f", str(state / "sshd_config")]
        try:
            # A session of its own, so stopping the host can signal its whole process group; and
            # unshare without --fork execs, so this pid ends up being sshd itself.
            proc = subprocess.Popen(argv, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        except BaseException:
            log.close()
            raise
        self._procs[name] = proc
        self._logs[name] = (log, offset)

    def _log_text(self, name: str) -> str:
        if name not in self._logs:
            return ""
        log, offset = self._logs[name]
        log.flush()
        with (self._state_dir(name) / "sshd.log").open("rb") as reader:
            reader.seek(offset)
            return reader.read().decode(errors="replace").strip()

    def _wait_ready(self, names: Sequence[str]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        pending = list(names)
        while pending:
            for name in list(pending):
                proc = self._procs[name]
                address, port = self.endpoint(name)
                if proc.poll() is not None:
                    raise SshHostError(
                        f"sshd for host {name} ({address}:{port}) exited with code {proc.returncode} before accepting"
                        f" connections; its stderr:\n{self._log_text(name) or '(empty)'}"
                    )
                if _listening(address, port):
                    pending.remove(name)
                    self._hosts[name] = SshHost(
                        name=name,
                        address=address,
                        port=port,
                        root=self.workdir / "hosts" / name,
                        pid=proc.pid,
                        isolated=self.isolated,
                        user=self.user,
                    )
                    if self.isolated:
                        # Read only now: until the wrapper has run unshare, the pid is still in our namespace.
                        self._mnt_ns[name] = _mount_namespace(proc.pid) or ""
            if pending and time.monotonic() > deadline:
                details = "\n".join(f"{name}: {self._log_text(name) or '(no stderr)'}" for name in pending)
                raise SshHostError(f"hosts did not listen within {START_TIMEOUT:.0f} s: {', '.join(pending)}\n{details}")
            if pending:
                time.sleep(0.02)

    def _stop(self, names: Sequence[str]) -> None:
        own_ns = _mount_namespace(os.getpid())
        stopping: dict[str, tuple[subprocess.Popen[bytes], str | None]] = {}
        for name in names:
            proc = self._procs.pop(name, None)
            if proc is None:
                continue
            namespace = self._mnt_ns.pop(name, None) or None
            if namespace == own_ns:
                # Never sweep the controller's own namespace: that would kill the test run itself.
                namespace = None
            stopping[name] = (proc, namespace)
            if namespace:
                _signal_namespace(namespace, signal.SIGTERM, spare=proc.pid)
        # Listeners go last, once their sessions have exited, so that sshd itself reaps them: an
        # orphan would wait as a zombie for the machine's init, which may reap late.
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and any(_others_in_namespace(ns, proc.pid) for proc, ns in stopping.values() if ns):
            time.sleep(0.01)
        for proc, _ in stopping.values():
            _signal_group(proc.pid, signal.SIGTERM)
        errors: list[str] = []
        for name, (proc, namespace) in stopping.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
            # sshd's session children (setsid) and whatever tests started over SSH outlive the
            # process group; they are found by their mount namespace, which only this host uses.
            if namespace and not _drain_namespace(namespace, deadline):
                errors.append(f"{name}: processes {_pids_in_namespace(namespace)} survived SIGKILL")
            log, _ = self._logs.pop(name)
            log.close()
        if errors:
            raise SshHostError("could not stop every host: " + "; ".join(errors))


def _keygen(path: Path, comment: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def _listening(address: str, port: int) -> bool:
    """Whether a socket listens on address:port, read from /proc/net/tcp rather than by connecting.

    A probe connection would make sshd log "kex_exchange_identification: Connection closed" into
    the very stderr a failed start shows, and fork a child for nothing.
    """
    # /proc/net/tcp prints the IPv4 address as the native-endian integer of its network-order bytes.
    wanted = f"{int.from_bytes(socket.inet_aton(address), sys.byteorder):08X}:{port:04X}"
    with open("/proc/net/tcp") as table:
        next(table)  # header
        for line in table:
            fields = line.split()
            if fields[1] == wanted and fields[3] == "0A":  # 0A: TCP_LISTEN
                return True
    return False


def _accepts_tcp(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.2):
            return True
    except OSError:
        return False


def _mount_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None  # gone, or a zombie: nothing left to signal


def _pids_in_namespace(namespace: str) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and _mount_namespace(int(entry.name)) == namespace:
            pids.append(int(entry.name))
    return pids


def _others_in_namespace(namespace: str, listener: int) -> bool:
    return any(pid != listener for pid in _pids_in_namespace(namespace))


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _signal_namespace(namespace: str, sig: signal.Signals, spare: int | None = None) -> None:
    for pid in _pids_in_namespace(namespace):
        if pid == spare:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _drain_namespace(namespace: str, deadline: float) -> bool:
    """Wait for the namespace to empty; SIGKILL what ignores SIGTERM past the deadline. True when empty."""
    while _pids_in_namespace(namespace):
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    # Signal repeatedly: a dying parent may still fork, and killing is racy with that.
    for _ in range(50):
        if not _pids_in_namespace(namespace):
            return True
        _signal_namespace(namespace, signal.SIGKILL)
        time.sleep(0.02)
    return not _pids_in_namespace(namespace)
