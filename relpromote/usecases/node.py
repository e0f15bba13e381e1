"""Runs of a protected environment on its execution node (docs/execution-node.md).

Controller: `through_node` makes every run of the environment started inside it (the promotion, its host unlock, an
automatic or manual rollback) go to the environment's node over SSH, each with a plan signed by the person who runs it
and, for a promotion, the ledger's approval entries for those bytes.

Node: `serve` judges the request against the node's own config, checks the stream against the signed plan, and only
then runs ansible-runner's worker with the node's vault password source and SSH key. A refusal runs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from relpromote import events
from relpromote.adapters import execution_node as node
from relpromote.adapters.control_path import RunTemp
from relpromote.adapters.control_path import ssh_envvars as control_envvars
from relpromote.adapters.files import read_named_file
from relpromote.adapters.known_hosts import ssh_envvars as known_hosts_envvars
from relpromote.adapters.runner import NODE_ROUTE
from relpromote.adapters.vault import vault_access
from relpromote.config import Person
from relpromote.errors import BadInput, Refused
from relpromote.identity import Identity
from relpromote.ledger import format_time, utc_now
from relpromote.node_plan import (
    NodeConfig,
    NodePlan,
    RequestRefused,
    check_run_vars,
    judge_request,
    make_request,
    parse_request,
)
from relpromote.project import Project
from relpromote.yamlfile import load

PLAYBOOK_ACTIONS = {"playbooks/promote.yml": "promote", "playbooks/rollback.yml": "rollback", "playbooks/host_unlock.yml": "unlock"}
DEFAULT_NODE_CONFIG = Path("/etc/relpromote/node.yml")
IDENT = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,120}")


@contextmanager
def through_node(
    project: Project, identity: Identity, actor: Person, environment: str, run_id: str, version: str, digest: str,
    limit: str | None, check: bool, *, tests: bool = False,
) -> Iterator[bool]:
    """Inside: the environment's runs go through its execution node (True), or run here when it has none (False).
    `tests`: the run may go on to the environment's automated tests (a promotion)."""
    settings = project.config.environment(environment).execution_node
    if settings is None:
        yield False
        return
    env = project.config.environment(environment)
    if tests and any(step.playbook for step in env.tests):
        raise BadInput(f"{environment} runs on an execution node, which does not run test playbooks yet: make its tests: steps "
                       "commands, or remove them (docs/execution-node.md)")
    if getattr(project.config, "content", "project") != "project":
        raise BadInput(f"{environment} runs on an execution node, which runs the project's playbooks and roles only, not an "
                       "installed collection's: remove content: or execution_node: (docs/execution-node.md)")
    approvals = [e for e in project.ledger.entries([events.APPROVAL_GRANTED])
                 if (e.payload.get("environment"), e.payload.get("version"), e.payload.get("digest")) == (environment, version, digest)]

    def request(playbook: str, stream: str) -> bytes:
        action = PLAYBOOK_ACTIONS.get(playbook)
        if action is None:
            raise BadInput(f"{playbook} cannot run on {environment}'s execution node (only {', '.join(PLAYBOOK_ACTIONS)})")
        plan = NodePlan(project.config.project, environment, action, version, digest, run_id, playbook, limit, check, stream,
                        actor.name, identity.public_key, format_time(utc_now()))
        return make_request(plan, identity.sign(plan.message()), approvals[-5:] if action == "promote" else [])

    known_hosts = str(project.resolve(settings.known_hosts)) if settings.known_hosts else None
    route = node.NodeRoute(settings.host, settings.user, settings.port, settings.command, settings.config,
                           settings.identity_file, known_hosts, request)
    token = NODE_ROUTE.set((environment, route))
    try:
        yield True
    finally:
        NODE_ROUTE.reset(token)


def load_node_config(path: Path) -> NodeConfig:
    try:
        text = read_named_file(path, 1 << 20).decode("utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such node config; write it on the node (docs/execution-node.md) or pass --config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the node config ({exc})") from None
    try:
        return NodeConfig.model_validate(load(text, str(path)))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadInput(f"{path}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


def serve(config_path: Path, source: IO[bytes], output: IO[bytes]) -> str:
    """Judge the request on `source`, then run it with the node's secrets, streaming to `output`; the run's status.
    Refused (exit 3) when the request is unsigned, wrongly signed, unapproved, or not the planned run."""
    config = load_node_config(config_path)
    try:
        try:
            line = node.read_request(source)
        except ValueError:
            raise RequestRefused("no request line: the node runs only a signed run plan") from None
        plan, signature, approvals = parse_request(line)
        judge_request(plan, signature, approvals, config.pinned(), config.environment, config.approval_required, utc_now())
        temp = RunTemp("node")
        try:
            stream_file = temp.path / "stream"
            with open(stream_file, "w+b") as stream:
                try:
                    digest = node.read_stream(source, stream)
                except ValueError as exc:
                    raise RequestRefused(str(exc)) from None
                if digest != plan.stream:
                    raise RequestRefused("the transmit stream is not the one the plan was signed for (sha256 differs)")
                stream.seek(0)
                private = temp.path / "private"
                private.mkdir(mode=0o700)
                try:
                    kwargs = node.unpack_stream(stream, private)
                except (ValueError, OSError) as exc:
                    raise RequestRefused(f"the transmit stream cannot be unpacked: {exc}") from None
            stream_file.unlink()
            run_kwargs = _run_kwargs(config, plan, kwargs, private, temp.path)
            binary, cancel = node.lifeline(temp.path, private / "project" / plan.playbook, node.watch_for_hangup(source))
            run_kwargs["binary"] = binary
            with vault_access(config.vault) as access:
                run_kwargs["envvars"] |= access.envvars
                run_kwargs["cmdline"] = " ".join([*(f"--vault-id={v}" for v in access.vault_ids),
                                                  *(["--check"] if plan.check else [])]) or None
                status, _ = node.work(private, run_kwargs, output, cancel)
            return status
        finally:
            temp.close()
    except RequestRefused as exc:
        raise Refused(exc.reason) from None


def _run_kwargs(config: NodeConfig, plan: NodePlan, sent: dict[str, Any], private: Path, temp: Path) -> dict[str, Any]:
    """What the worker runs: the planned playbook and variables from the stream; environment, command line and binary
    from the node alone."""
    playbook = str(sent.get("playbook") or "")
    inventory = str(sent.get("inventory") or "")
    extravars = dict(sent.get("extravars") or {})
    ident = str(sent.get("ident") or "")
    check_run_vars(plan, playbook, extravars)
    for what, path in (("playbook", f"project/{playbook}"), ("inventory", inventory)):
        resolved = (private / path).resolve()
        if not resolved.is_relative_to(private.resolve()) or not resolved.exists():
            raise RequestRefused(f"the stream's {what} {path} is not in the transmitted folder")
    if not IDENT.fullmatch(ident):
        raise RequestRefused("the stream's run id is malformed")
    artifact = extravars.get("release_artifact")
    if artifact is not None:
        received = (private / str(artifact)).resolve()
        if not received.is_relative_to(private.resolve()) or not received.is_file():
            raise RequestRefused("the stream's release artifact is not in the transmitted folder")
        wanted = plan.digest if plan.action == "promote" else str(extravars.get("release_digest") or "")
        if node.sha256_of(received) != wanted:
            raise RequestRefused(f"the transmitted artifact does not hash to {wanted[:12]}")
        extravars["release_artifact"] = str(received)
    inventory_path = private / inventory
    local_temp = temp / "ansible"
    local_temp.mkdir(mode=0o700)
    envvars = {
        "ANSIBLE_CONFIG": str(private / "project" / "ansible.cfg"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_LOCAL_TEMP": str(local_temp),
        "PATH": f"{node.ansible_bin_dir()}:/usr/local/bin:/usr/bin:/bin",
        **control_envvars(),
        **(known_hosts_envvars(inventory_path) if not config.known_hosts else {
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_SSH_COMMON_ARGS": f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={config.known_hosts} "
                                       "-o GlobalKnownHostsFile=/dev/null",
        }),
    }
    if config.ssh_key:
        envvars["ANSIBLE_PRIVATE_KEY_FILE"] = config.ssh_key
    return {
        "playbook": playbook, "inventory": str(inventory_path), "extravars": extravars, "limit": plan.limit,
        "ident": ident, "envvars": envvars, "suppress_env_files": True, "settings": {"pexpect_timeout": 0.2},
    }
