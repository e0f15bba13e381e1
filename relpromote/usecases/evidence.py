"""`evidence VERSION --env ENV --out FILE` and `evidence verify FILE`: the auditor's pack, made and checked."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from relpromote.adapters.config_history import committed_config_bytes
from relpromote.adapters.files import read_named_file, write_atomically
from relpromote.errors import BadInput, Refused
from relpromote.evidence_pack import MAX_PACK_BYTES, PackReport, build_pack, cited_configs, cited_evidence, segment_of, verify_pack
from relpromote.identity import verify_signature
from relpromote.ledger import Entry, canonical_json, format_time, utc_now
from relpromote.project import Project
from relpromote.usecases.audit import HEAD_PATTERN, parse_head


def make_pack(project: Project, version: str, environment: str, out: Path) -> dict[str, Any]:
    project.config.environment(environment)  # an unknown environment is a user mistake (exit 2)
    state = project.state()
    release = state.release(version)
    if state.ignored:
        first = state.ignored[0]
        raise Refused(f"the ledger has entries that do not verify (first #{first.seq}: {first.reason}); run `relpromote audit verify` "
                      "and settle them before making an evidence pack")
    entries = project.ledger.entries()
    if (version, environment) not in state.promoted:
        raise BadInput(f"{version} never went live in {environment}; an evidence pack covers a release that did "
                       f"(see `relpromote show {version}`)")
    folder = project.store.root / "evidence"
    evidence: dict[str, bytes] = {}
    for digest in cited_evidence(entries, version):
        path = folder / f"{digest}.xml"
        if not path.is_file():
            raise BadInput(f"evidence {digest[:12]}… cited by the ledger is missing from the store ({path}); restore it from a backup")
        evidence[digest] = path.read_bytes()
    configs = _committed_configs(project, segment_of(entries, version))
    data = build_pack(project.config.project, version, environment, entries, configs, evidence, format_time(utc_now()))
    report = verify_pack(data)  # never hand over a pack that would not verify
    if not report.ok:
        raise Refused(f"{version} in {environment}: {report.problems[0]}")
    write_atomically(out, data, "evidence")
    return {"out": str(out), "bytes": len(data), "version": version, "environment": environment, "digest": release.digest,
            "head": report.index.get("head"), "evidence_files": len(evidence), "config_files": len(configs)}


def _committed_configs(project: Project, segment: list[Entry]) -> dict[str, bytes]:
    """The committed relpromote.yml (`git show COMMIT:relpromote.yml`) of every config the segment's entries stamp, by sha256:
    what lets the pack's verifier read people, keys, roles and approval policy from signed data. A config git no longer
    has (a commit rewritten away) is left out: verify then names the entries made under it as not vouched for."""
    at = committed_config_bytes(project.config_path)
    found: dict[str, bytes] = {}
    for sha, commit in cited_configs(segment).items():
        body = at(commit)
        if body is not None and hashlib.sha256(body).hexdigest() == sha:
            found[sha] = body
    return found


def check_pack(path: Path, expect_head: str | None) -> PackReport:
    try:
        size = path.stat().st_size
        if size > MAX_PACK_BYTES:
            raise BadInput(f"{path}: {size >> 20} MiB is larger than an evidence pack can be")
        data = read_named_file(path, MAX_PACK_BYTES)  # stat's size says nothing of a pipe or /dev/zero
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the pack ({exc.strerror})") from None
    return verify_pack(data, _head(expect_head) if expect_head else None)


def _head(expect: str) -> tuple[int, str]:
    """SEQ:HASH, or a checkpoint file (`audit checkpoint --out`) whose signature is checked first."""
    path = Path(expect).expanduser()
    if HEAD_PATTERN.match(expect.strip()) or not path.is_file():
        return parse_head(expect)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        body = {k: data[k] for k in ("project", "seq", "hash", "taken_at", "signer", "public_key")}
        signed = verify_signature(str(body["public_key"]), canonical_json(body), str(data["signature"]))
    except (OSError, ValueError, KeyError, TypeError):
        raise BadInput(f"{path}: not a checkpoint written by `relpromote audit checkpoint --out`") from None
    if not signed:
        raise BadInput(f"{path}: the checkpoint's signature does not verify; it was edited")
    return parse_head(f"{body['seq']}:{body['hash']}")
