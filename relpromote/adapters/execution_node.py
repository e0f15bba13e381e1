"""A run on an execution node, over SSH, through ansible-runner's streaming (docs/execution-node.md).

Controller side (`run_through_node`): the run's private data dir is laid out as ansible-runner's worker expects it
(project/ with ansible.cfg, playbooks, roles and the environment's inventory; artifact/ with the release), streamed
with `transmit` into a file, and sent over `ssh NODE relpromote node work` after a request line carrying the signed
plan (relpromote.node_plan), which binds the stream by its sha256. What the node's worker streams back is read with
`process`, and every event goes to the same handler as a local run's. The controller's stdin to the node stays open
while the run lasts: closing it is how the controller cancels.

Node side (`read_request`, `unpack_stream`, `work`): the request and the stream are read, the stream is unpacked only
after the plan was judged, and the worker runs with what the node alone holds (its vault password source, its SSH key,
its known hosts), never with the environment, command line or binary the stream carried. What goes back leaves out
the node's environment and command line.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import ansible_runner
from ansible_runner.streaming import Worker

from relpromote.errors import BadInput, Refused, RunFailed

PROJECT_PARTS = ("ansible.cfg", "playbooks", "roles", "library", "module_utils", "plugins", "collections")
MAX_REQUEST = 16 << 20  # the request line: a plan and a few approval entries
EOF_LINE = b'{"eof": true}\n'
REFUSED_EXIT = 3


@dataclass(frozen=True)
class NodeRoute:
    """How the controller reaches an environment's execution node, and the signed request a run sends ahead."""

    host: str
    user: str | None
    port: int
    command: str  # relpromote on the node
    config: str | None  # the node's config path on the node
    identity_file: str | None
    known_hosts: str | None
    request: Callable[[str, str], bytes]  # (playbook relative to the project, stream sha256) -> request line

    def ssh_argv(self) -> list[str]:
        argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-p", str(self.port)]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
        if self.identity_file:
            argv += ["-i", self.identity_file, "-o", "IdentitiesOnly=yes"]
        remote = [self.command, "node", "work", *(["--node-config", self.config] if self.config else [])]
        return [*argv, f"{self.user}@{self.host}" if self.user else self.host, "--", " ".join(shlex.quote(p) for p in remote)]


@dataclass(frozen=True)
class NodeOutcome:
    rc: int
    status: str


def stage_private_dir(private: Path, project_dir: Path, playbook: Path, inventory: Path, extravars: Mapping[str, Any]) -> dict[str, Any]:
    """Copy what the run applies into `private` as ansible-runner's worker expects it; the transmit kwargs."""
    project = private / "project"
    project.mkdir(mode=0o700)
    for part in PROJECT_PARTS:
        source = project_dir / part
        if source.is_dir():
            shutil.copytree(source, project / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            shutil.copy2(source, project / part)
    try:
        inventory_rel = inventory.resolve().relative_to(project_dir.resolve())
        playbook_rel = playbook.resolve().relative_to(project_dir.resolve())
    except ValueError:
        raise BadInput(f"{inventory} or {playbook} is outside the project {project_dir}: an execution node receives only the project") from None
    if inventory.is_dir():
        shutil.copytree(inventory, project / inventory_rel, symlinks=True)
    else:
        (project / inventory_rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(inventory, project / inventory_rel)
    variables = dict(extravars)
    artifact = variables.get("release_artifact")
    if isinstance(artifact, str) and artifact:
        folder = private / "artifact"
        folder.mkdir(mode=0o700)
        shutil.copy2(artifact, folder / Path(artifact).name)
        variables["release_artifact"] = f"artifact/{Path(artifact).name}"
    return {"playbook": str(project / playbook_rel), "inventory": str(project / inventory_rel), "extravars": variables}


def run_through_node(
    route: NodeRoute,
    private: Path,
    ident: str,
    kwargs: Mapping[str, Any],
    playbook: str,
    handle: Callable[[Mapping[str, Any]], bool],
    should_cancel: Callable[[], bool] | None,
) -> NodeOutcome:
    """Transmit the staged run, have the node's worker run it, process its stream here. Refused (exit 3) with the
    node's one-line reason when the node does not run it."""
    stream_path = private / "transmit.stream"
    with open(stream_path, "w+b") as out:
        # A cancel callback given, always: without one ansible-runner installs its own SIGINT/SIGTERM handlers over
        # relpromote's (cli._common.interruptible), and Ctrl-C would no longer stop the run cleanly.
        ansible_runner.run(streamer="transmit", _output=out, private_data_dir=str(private), ident=ident,
                           suppress_env_files=True, cancel_callback=lambda: False, **kwargs)
    data = stream_path.read_bytes()
    stream_path.unlink()
    request = route.request(playbook, hashlib.sha256(data).hexdigest())
    stderr_file = private / "node.stderr"
    with open(stderr_file, "w+b") as err:
        proc = subprocess.Popen(route.ssh_argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                start_new_session=True)
        assert proc.stdin is not None and proc.stdout is not None
        stdin = proc.stdin
        done = threading.Event()
        canceled = [False]

        def send() -> None:
            with contextlib.suppress(OSError):
                stdin.write(request)
                stdin.write(data)
                stdin.flush()
            # Kept open while the run lasts: closing it asks the node to end the run.
            while not done.wait(0.2):
                if should_cancel is not None and should_cancel():
                    canceled[0] = True
                    break
            with contextlib.suppress(OSError):
                stdin.close()

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        statuses: list[str] = []
        try:
            processor = ansible_runner.run(
                streamer="process", _input=proc.stdout, private_data_dir=str(private), ident=ident, quiet=True,
                cancel_callback=lambda: canceled[0],
                event_handler=handle, status_handler=lambda data, runner_config=None: statuses.append(str(data.get("status"))),
            )
        finally:
            done.set()
            sender.join()
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        err.seek(0)
        said = [line for line in err.read().decode(errors="replace").splitlines() if line.strip()]
    stderr_file.unlink()
    status = str(processor.status or (statuses[-1] if statuses else "failed"))
    reason = said[-1].strip()[:500] if said else ""
    if rc == REFUSED_EXIT and status in ("error", "unstarted"):
        raise Refused(f"execution node {route.host} refused the run: {reason.removeprefix('error: ')}")
    if rc == 255 and status in ("error", "unstarted"):
        raise BadInput(f"execution node {route.host} could not be reached over SSH: {reason or 'ssh exited 255'}")
    if status in ("error", "unstarted") and not canceled[0]:
        raise RunFailed(f"execution node {route.host} did not run the playbook (exit {rc}): {reason or 'no reason given'}")
    if canceled[0]:
        return NodeOutcome(-1, "canceled")
    return NodeOutcome(0 if status == "successful" else 2, status)


# -- the node's side ---------------------------------------------------------------------------------------------------


def read_request(source: IO[bytes]) -> bytes:
    line = source.readline(MAX_REQUEST + 1)
    if not line.endswith(b"\n"):
        raise ValueError("no request line")
    return line


def read_stream(source: IO[bytes], target: IO[bytes]) -> str:
    """Copy the transmit stream up to and including its eof line into `target`; its sha256."""
    digest = hashlib.sha256()
    while True:
        line = source.readline(1 << 20)
        if not line:
            raise ValueError("the transmit stream ended before its eof line")
        digest.update(line)
        target.write(line)
        if line.endswith(EOF_LINE) and line.endswith(b"\n"):
            return digest.hexdigest()


def unpack_stream(stream: IO[bytes], folder: Path) -> dict[str, Any]:
    """The transmitted kwargs, and the private data dir unpacked into `folder` (refusing links and paths that leave it)."""
    kwargs: dict[str, Any] = {}
    while True:
        line = stream.readline()
        if not line:
            raise ValueError("the transmit stream ended early")
        data = json.loads(line) if line.startswith(b"{") and line.rstrip(b"\n").endswith(b"}") else {}
        if "kwargs" in data:
            kwargs = dict(data["kwargs"])
        elif "zipfile" in data:
            _extract_zip(stream, int(data["zipfile"]), folder)
        elif "eof" in data or line.endswith(EOF_LINE):
            return kwargs


def _extract_zip(stream: IO[bytes], length: int, folder: Path) -> None:
    """ansible-runner's unstream_dir, except that a link or a path leaving the folder is refused, not restored."""
    import zipfile

    from ansible_runner.utils.base64io import Base64IO

    raw = io.BytesIO()
    with Base64IO(stream) as source:
        remaining = length
        while remaining > 0:
            chunk = source.read(min(1 << 20, remaining))
            if not chunk:
                raise ValueError("the transmitted folder is cut short")
            raw.write(chunk)
            remaining -= len(chunk)
    with zipfile.ZipFile(raw) as archive:
        for info in archive.infolist():
            name = PurePosixPath(info.filename)
            if name.is_absolute() or ".." in name.parts or (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise ValueError(f"the transmitted folder holds {info.filename!r}: a link or a path outside it")
    raw.seek(0)
    with zipfile.ZipFile(raw) as archive:
        for info in archive.infolist():
            archive.extract(info, folder)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(folder / info.filename, mode | 0o600)


class _NodeWorker(Worker):  # type: ignore[misc]
    """ansible-runner's worker, minus what would carry the node's environment or command line back to the controller."""

    def status_handler(self, status_data: dict[str, Any], runner_config: Any) -> None:
        super().status_handler({k: v for k, v in status_data.items() if k not in ("env", "command", "cwd")}, runner_config)

    def artifacts_handler(self, artifact_dir: str) -> None:
        for name in ("command", "env"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(artifact_dir, name))
        super().artifacts_handler(artifact_dir)


def work(private: Path, kwargs: Mapping[str, Any], output: IO[bytes], cancel: Callable[[], bool]) -> tuple[str, int | None]:
    """Run the judged, unpacked run with ansible-runner's worker, streaming events, status and artifacts to `output`."""
    worker = _NodeWorker(_input=io.BytesIO(b'{"kwargs": {}}\n' + EOF_LINE), _output=output, private_data_dir=str(private),
                         cancel_callback=cancel, **kwargs)
    status, rc = worker.run()
    return str(status), rc


def watch_for_hangup(source: IO[bytes]) -> Callable[[], bool]:
    """A cancel check that turns true when the controller closes our stdin (it cancelled, or it is gone)."""
    gone = threading.Event()

    def watch() -> None:
        with contextlib.suppress(OSError, ValueError):
            while source.read(4096):
                pass
        gone.set()

    threading.Thread(target=watch, daemon=True).start()
    return gone.is_set


def lifeline(folder: Path, playbook: Path, hangup: Callable[[], bool]) -> tuple[str, Callable[[], bool]]:
    """The worker's binary: ansible-playbook under relpromote's lifeline, bound to this node process (nothing of the run
    outlives it), and a cancel check that ends the whole run once the controller hung up."""
    pid_file = folder / "lifeline.pid"
    binary = folder / "ansible-playbook"
    binary.write_text(
        "#!/bin/sh\n"
        f"exec {shlex.quote(sys.executable)} -m relpromote.adapters.lifeline {os.getpid()} {shlex.quote(str(pid_file))} -- "
        f"{shlex.quote(str(Path(ansible_bin_dir()) / 'ansible-playbook'))} \"$@\" {shlex.quote(str(playbook))}\n"
    )
    binary.chmod(0o700)

    def cancel() -> bool:
        if not hangup():
            return False
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            return True  # not started yet: ansible-runner ends what it started
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        return True

    return str(binary), cancel


def ansible_bin_dir() -> str:
    beside = Path(sys.executable).parent
    return str(beside) if (beside / "ansible-playbook").exists() else str(Path(shutil.which("ansible-playbook") or "ansible-playbook").parent)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
