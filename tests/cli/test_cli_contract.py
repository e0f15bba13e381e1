"""The command-line contract, checked for every verb: global options after the verb, --help with examples and exit
codes, --json giving exactly one JSON document with `ok` on stdout and only JSON lines on stderr, documented exit codes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import pytest

from relpromote.cli import VERBS, LazyVerbs, cli, normalise_argv
from relpromote.cli.help import VERB_HELP
from tests.helpers import BIN, RELPROMOTE, make_app_source, make_project, write_manifest


def leaf_paths() -> list[str]:
    """Every command a user can run: "status", "lock status", "audit verify", ..."""
    assert isinstance(cli, LazyVerbs)
    paths: list[str] = []
    context = click.Context(cli)
    for name in VERBS:
        command = cli.get_command(context, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            paths.extend(f"{name} {sub}" for sub in command.commands)
        else:
            paths.append(name)
    return paths


LEAVES = leaf_paths()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A project with people and one built release; commands run from a folder outside it, so --config is needed."""
    base = tmp_path_factory.mktemp("contract")
    project = make_project(base / "proj")
    source = make_app_source(base / "app")
    manifest = write_manifest(project.cwd / "1.0.0.yml", "1.0.0")
    project.run("build", "1.0.0", "--source", str(source), "--manifest", str(manifest), identity="alice", check=True)
    project.run("keygen", "zoe", "--out", str(base / "zoe.key"), check=True)
    outside = base / "elsewhere"
    outside.mkdir()
    yield {"base": base, "project": project.cwd, "source": source, "manifest": manifest, "outside": outside}


def run(cwd: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "80"}
    for name in ("RELPROMOTE_CONFIG", "RELPROMOTE_IDENTITY"):
        env.pop(name, None)
    return subprocess.run([RELPROMOTE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


# (command path, its arguments after the verb, who runs it, the exit code the contract promises).
# {project}, {source}, {manifest}, {base} are filled in from the world fixture.
CASES: list[tuple[str, list[str], str, int]] = [
    ("keygen", ["zed", "--out", "{base}/zed.key"], "alice", 0),
    ("keygen", ["Not A Name", "--out", "{base}/bad.key"], "alice", 2),
    ("init", ["{base}/second-project"], "alice", 0),
    ("init", ["{project}"], "alice", 2),
    ("build", ["1.0.0", "--source", "{source}", "--manifest", "{manifest}"], "alice", 0),
    ("build", ["2.0.0", "--source", "{source}", "--manifest", "{manifest}"], "alice", 2),
    ("build", ["1.0.0", "--source", "{source}", "--manifest", "{manifest}"], "oscar", 3),
    ("revise", ["1.0.0", "--drop", "CH-1", "--new-version", "1.0.1"], "alice", 3),
    ("revise", ["9.9.9", "--drop", "CH-1", "--new-version", "9.9.10"], "alice", 2),
    ("promote", ["1.0.0", "--to", "deployment"], "oscar", 3),
    ("promote", ["9.9.9", "--to", "qa"], "oscar", 2),
    ("promote", ["1.0.0", "--to", "nowhere"], "oscar", 2),
    ("accept", ["1.0.0", "--env", "qa"], "quinn", 3),
    ("accept", ["1.0.0"], "quinn", 2),
    ("reject", ["1.0.0", "--env", "qa", "--reason", "breaks invoices"], "quinn", 3),
    ("reject", ["1.0.0", "--env", "qa"], "quinn", 2),
    ("approve", ["1.0.0", "--env", "production", "--ticket", "CHG-1"], "carol", 3),
    ("approve", ["1.0.0", "--env", "production", "--ticket", "CHG-1", "--expires", "soon"], "carol", 2),
    ("rollback", ["--env", "qa", "--reason", "checkout errors"], "alice", 2),
    ("rollback", ["--env", "qa", "--reason", "checkout errors"], "oscar", 3),
    ("rollback", ["--env", "qa", "--to", "1.0.0", "--reason", "old spelling"], "alice", 2),
    ("reconcile", ["--env", "nowhere"], "alice", 2),
    ("reconcile", ["--env", "qa"], "oscar", 3),  # success: tests/integration/test_runs_in_doubt.py
    ("refresh-qa", ["--dry-run"], "alice", 2),
    ("releases", [], "alice", 0),
    ("releases", ["--unknown-option"], "alice", 2),
    ("show", ["1.0.0"], "alice", 0),
    ("show", ["9.9.9"], "alice", 2),
    ("status", [], "alice", 0),
    ("status", ["--env", "nowhere"], "alice", 2),
    ("history", ["--env", "qa"], "alice", 0),
    ("history", ["--env", "nowhere"], "alice", 2),
    ("history", ["--version", "9.9.9"], "alice", 2),  # a version no entry names, as `show` says it
    ("verify", ["nowhere"], "alice", 2),  # agreement (0) and drift (3): tests/integration/test_host_truth.py
    ("hosts trust", ["--env", "nowhere"], "alice", 2),  # pinning and a changed key: tests/integration/test_host_keys.py
    ("lock status", ["--env", "qa"], "alice", 0),
    ("lock status", ["qa"], "alice", 0),  # the deprecated positional spelling, with a note
    ("lock status", [], "alice", 2),
    ("lock release", ["--env", "qa", "--lock-id", "3f9c"], "oscar", 2),
    ("lock release", ["--env", "qa", "--lock-id", "3f9c"], "quinn", 3),
    ("audit verify", [], "alice", 0),
    ("audit verify", ["--expect-head", "999:" + "0" * 64], "alice", 1),
    ("audit verify", ["--expect-head", "999:0000"], "alice", 2),
    ("audit checkpoint", ["--out", "{base}/checkpoint.json"], "alice", 0),
    ("audit checkpoint", [], "nobody", 2),
    ("ledger init-db", ["--grant", "relpromote", "--sql"], "alice", 0),  # running it: tests/integration/test_pg_ledger.py
    ("ledger init-db", ["--url", "postgresql://owner:s3cret@localhost/ledger", "--grant", "relpromote"], "alice", 2),
    ("ledger migrate", ["--url", "sqlite:///{base}/other.db"], "alice", 2),
    ("people add", ["zoe", "--key", "{base}/zoe.key.pub", "--role", "qa"], "alice", 0),
    ("people add", ["zoe2", "--key", "ed25519:not-a-key", "--role", "qa"], "alice", 2),
    ("people list", [], "alice", 0),
    ("people list", ["extra"], "alice", 2),
    ("authority show", [], "alice", 0),
    ("authority show", ["extra"], "alice", 2),
    ("authority approve", [], "quinn", 3),  # quinn is no admin; approving a change: tests/cli/test_authority.py
    ("authority approve", ["--commit", "no-such-revision"], "alice", 2),
    ("demo", ["--stop", "--workdir", "{base}/no-demo-here"], "alice", 0),
    ("demo", ["--no-such-option"], "alice", 2),
    ("parity", ["deployment", "nowhere"], "oscar", 2),  # success and drift (exit 3): tests/integration/test_parity.py
    ("doctor", ["--pin", "--file", "{base}/toolchain.yml"], "alice", 0),  # mismatches (exit 3): tests/cli/test_doctor.py
    ("doctor", ["--file", "{base}/no-such-toolchain.yml"], "alice", 2),
    ("notes", ["1.0.0", "--format", "html", "--out", "{base}/notes-1.0.0.html"], "alice", 0),
    ("notes", ["9.9.9"], "alice", 2),
    ("evidence pack", ["1.0.0", "--env", "production", "--out", "{base}/never-live.tar"], "alice", 2),
    ("evidence verify", ["{manifest}"], "alice", 1),  # not a pack: refused
    ("evidence verify", ["{base}/no-such-pack.tar"], "alice", 2),
    ("metrics", ["--env", "production", "--since", "7d"], "alice", 0),
    ("metrics", ["--since", "last tuesday"], "alice", 2),
    ("announce", ["1.0.0", "--env", "qa"], "alice", 2),  # no channels configured; sending: tests/integration/test_announce.py
    ("announce", ["1.0.0", "--env", "qa"], "nobody", 2),
    ("node work", ["--node-config", "{base}/no-such-node.yml"], "alice", 2),  # running and refusing: tests/integration/test_execution_node.py
]


def fill(args: list[str], world: dict[str, Path]) -> list[str]:
    return [arg.format(**{k: str(v) for k, v in world.items()}) for arg in args]


# Verbs whose success needs real hosts: tests/integration/test_read_views.py runs them under --json and checks the same
# contract; refresh-qa's needs PostgreSQL (tests/integration/test_refresh_qa.py).
SUCCESS_ELSEWHERE = {"revise", "promote", "accept", "reject", "approve", "rollback", "reconcile", "refresh-qa", "lock release", "parity"}
# An evidence pack needs a release that went live: tests/integration/test_demo.py makes and verifies one.
SUCCESS_ELSEWHERE |= {"evidence pack", "evidence verify", "announce"}
# verify reads real hosts: tests/integration/test_host_truth.py.
SUCCESS_ELSEWHERE |= {"verify", "hosts trust"}
# Approving an authority needs an admin and a change to approve: tests/cli/test_authority.py.
SUCCESS_ELSEWHERE |= {"authority approve"}
# Migrating needs a PostgreSQL server: tests/integration/test_pg_ledger.py.
SUCCESS_ELSEWHERE |= {"ledger migrate"}
# An execution node needs a controller and real hosts: tests/integration/test_execution_node.py.
SUCCESS_ELSEWHERE |= {"node work"}


def test_every_verb_has_cases() -> None:
    assert sorted({path for path, *_ in CASES}) == sorted(LEAVES)
    assert {path for path, _, _, code in CASES if code == 0} == set(LEAVES) - SUCCESS_ELSEWHERE
    assert {path for path, _, _, code in CASES if code == 2} == set(LEAVES)  # bad input: exit 2 everywhere


@pytest.mark.parametrize("path", LEAVES)
def test_help_shows_an_example_and_the_exit_codes(path: str) -> None:
    result = run(Path.cwd(), [*path.split(), "--help"])
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "Example" in result.stdout and "Exit codes" in result.stdout, result.stdout
    examples, codes = VERB_HELP[path]
    for example in examples:
        assert (example == f"relpromote {path}" or example.startswith(f"relpromote {path} ")) and example in result.stdout
    for code in codes:
        assert re.search(rf"^\s+{int(code)}  \S", result.stdout, re.MULTILINE), (code, result.stdout)


def json_types(value: Any, key: str, seen: dict[str, set[str]]) -> None:
    """Collect the JSON type of every field, by name, across documents (null aside: absent is always allowed)."""
    if isinstance(value, dict):
        for name, inner in value.items():
            if name == "payload":
                continue  # the ledger's own payloads, documented by their kind
            json_types(inner, name, seen)
        kind = "object"
    elif isinstance(value, list):
        for inner in value:
            json_types(inner, f"{key}[]", seen)
        kind = "list"
    elif value is None:
        return
    else:
        kind = type(value).__name__
    seen.setdefault(key, set()).add(kind)


@pytest.mark.parametrize(("path", "args", "who", "code"), CASES, ids=[f"{p}-{i}" for i, (p, *_) in enumerate(CASES)])
def test_global_options_after_the_verb_and_json_shape(path: str, args: list[str], who: str, code: int, world: dict[str, Path]) -> None:
    """Run from outside the project with every global option after the verb's own arguments, in both spellings."""
    config = world["project"] / "relpromote.yml"
    key = world["project"] / ".keys" / f"{who}.key"
    argv = [*path.split(), *fill(args, world), "--json", f"--config={config}", "--identity", str(key)]
    result = run(world["outside"], argv)
    assert result.returncode == code, (argv, result.stdout, result.stderr)
    assert code in VERB_HELP[path][1], f"exit {code} is not documented in {path} --help"
    document = json.loads(result.stdout)  # exactly one JSON document: anything else on stdout fails to parse
    assert isinstance(document, dict) and document["ok"] is (code == 0), document
    if code:
        assert document["exit_code"] == code and isinstance(document["error"], str) and "\n" not in document["error"]
    events = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]  # every stderr line is JSON
    assert all(isinstance(event, dict) and "event" in event for event in events), result.stderr
    assert "Traceback" not in result.stderr


def test_old_spellings_get_a_hint(world: dict[str, Path]) -> None:
    config = str(world["project"] / "relpromote.yml")
    old = run(world["outside"], ["rollback", "--env", "qa", "--to", "1.0.0", "--reason", "x", "--config", config])
    assert old.returncode == 2 and "use --version" in old.stderr and old.stdout == ""
    positional = run(world["outside"], ["lock", "status", "qa", "--config", config])
    assert positional.returncode == 0 and positional.stdout.strip() == "qa is free"
    assert positional.stderr.strip() == "deprecated: `lock status qa`; write `lock status --env qa`"
    both = run(world["outside"], ["lock", "status", "qa", "--env", "production", "--config", config])
    assert both.returncode == 2 and "give only --env ENV" in both.stderr


def test_global_options_in_any_position(world: dict[str, Path]) -> None:
    config = str(world["project"] / "relpromote.yml")
    spellings = [
        ["--json", "--config", config, "status"],
        ["status", "--json", "--config", config],
        ["--config", config, "status", "--json"],
        ["status", f"--config={config}", "--json"],
        ["lock", "--json", "status", "--config", config, "--env", "qa"],
    ]
    for argv in spellings:
        result = run(world["outside"], argv)
        assert result.returncode == 0 and json.loads(result.stdout)["ok"] is True, (argv, result.stderr)
    # After `--` nothing is an option: "--json" is the version asked for, and the output stays text.
    literal = run(world["outside"], ["show", "--config", config, "--", "--json"])
    assert literal.returncode == 2 and literal.stdout == "" and "unknown version --json" in literal.stderr
    missing = run(world["outside"], ["status", "--config"])
    assert missing.returncode == 2 and "--config needs a value" in missing.stderr


def test_normalise_argv() -> None:
    assert normalise_argv(["status", "--json"]) == ["--json", "status"]
    assert normalise_argv(["lock", "status", "--env", "qa", "--identity=k", "--json"]) == ["--identity", "k", "--json", "lock", "status",
                                                                                          "--env", "qa"]
    assert normalise_argv(["show", "--", "--json", "--config", "x"]) == ["show", "--", "--json", "--config", "x"]
    assert normalise_argv(["--config", "a.yml", "status"]) == ["--config", "a.yml", "status"]
    with pytest.raises(click.UsageError):
        normalise_argv(["status", "--identity"])


# Known and reported, owned elsewhere; the tests fail on any other field with two types, and on these once they agree:
# - each host's `ok` (adapters/runner.py) counts the tasks that were ok, while a result's `ok` is a boolean;
# - a promotion's `switched` lists host names, each host's `switched` (promotion.py) is a boolean.
# The last two are also in the ledger's payloads (promotion.finished), a documented contract: renaming them is the lead's call.
KNOWN_MIXED: dict[str, set[str]] = {"ok": {"bool", "int"}, "switched": {"bool", "list"}}


def test_same_field_same_type_in_every_verb(world: dict[str, Path]) -> None:
    """One JSON type per field name across every verb's result (null aside); times are ISO 8601 strings."""
    config = str(world["project"] / "relpromote.yml")
    seen: dict[str, set[str]] = {}
    times: list[str] = []
    for path, args, who, code in CASES:
        if code != 0 or path in ("init", "keygen", "build", "demo", "people add"):
            continue
        key = str(world["project"] / ".keys" / f"{who}.key")
        result = run(world["outside"], [*path.split(), *fill(args, world), "--json", "--config", config, "--identity", key])
        document = json.loads(result.stdout)
        json_types(document, "", seen)
        times += [str(v) for k, v in walk(document) if k in ("at", "since", "built_at", "recorded_at", "expires_at") and v]
    mixed = {name: kinds for name, kinds in seen.items() if len(kinds) > 1}
    assert mixed == {}, mixed  # no host results without hosts
    assert seen["releases"] == {"list"} and seen["version"] == {"str"}
    assert times and all(datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times)


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for name, inner in value.items():
            yield name, inner
            yield from walk(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from walk(inner)


def visible_options() -> dict[str, list[tuple[str, str]]]:
    """Option name → [(command path, metavar)] over every command, hidden options aside."""
    context = click.Context(cli)
    found: dict[str, list[tuple[str, str]]] = {}

    def walk(command: click.Command, path: str) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")
            return
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                for name in param.opts:
                    found.setdefault(name, []).append((path, param.metavar or ("FLAG" if param.is_flag else param.type.name)))

    for verb in VERBS:
        command = cli.get_command(context, verb)
        assert command is not None
        walk(command, verb)
    return found


# Known and reported: audit verify's `--hosts ENV` (named so in the product's contract) compares what the hosts of ENV
# witnessed; it names an environment without being `--env`.
ENVIRONMENT_OPTIONS = {"--env", "--to", "--hosts"}


def test_one_meaning_per_option_name() -> None:
    options = visible_options()
    for name, uses in options.items():
        assert len({metavar for _, metavar in uses}) == 1, (name, uses)  # same placeholder: same kind of value
    assert {metavar for _, metavar in options["--to"]} == {"ENV"} and {metavar for _, metavar in options["--env"]} == {"ENV"}
    assert {name for name, uses in options.items() if any(metavar == "ENV" for _, metavar in uses)} <= ENVIRONMENT_OPTIONS
    assert {metavar for _, metavar in options["--version"]} == {"VERSION"}
    assert {path for path, _ in options["--env"]} >= {"accept", "reject", "approve", "rollback", "lock status", "lock release"}


def test_top_level_help_shows_examples_exit_codes_and_where_global_options_go() -> None:
    result = run(Path.cwd(), ["--help"])
    assert result.returncode == 0 and "Examples:" in result.stdout and "Exit codes:" in result.stdout
    assert all(f"  {code}  " in result.stdout for code in range(6))
    assert "may come before or after the verb" in " ".join(result.stdout.split())
