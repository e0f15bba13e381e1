"""The auditor's evidence pack: one release's way to one environment, as one archive checked offline.

The pack is a plain, deterministic tar (USTAR; every member 0644, owner 0, time 0, in a fixed order):

  README.txt       what is inside and how to check it
  pack.json        project, version, environment, digest, the ledger head, and the sha256 of every other member
  release.json     the release as built: manifest (changes: what, who, how, why), digest, builder, source commit
  ledger.jsonl     the chain segment: every entry from the release's build to the ledger's head, with hashes and signatures
  people.json      the people (names, public keys, roles) of the config the pack was made under, and its commit
  evidence/*.xml   the JUnit reports the entries cite, by sha256
  summary.json     what the entries say, for reading: builds, verdicts, approvals, promotions with gates and per-host outcome

`verify_pack` needs nothing but the archive's bytes: it rebuilds the archive from its members and
requires the very same bytes (so one changed byte anywhere is refused), checks every member's sha256,
every entry's sequence, link, hash and signature (relpromote.ledger), that each signer's key is the key
people.json gives that name, that the evidence files are the cited bytes, that summary.json is what
the entries say, and that the release went live in the environment with the approval it needed
(signed by a change manager who is neither its builder nor its promoter). The ledger's head can be
compared with a checkpoint kept elsewhere (`expect_head`): that is what anchors the segment.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from relpromote import events
from relpromote.ledger import Entry, entry_problem, signer_names

FORMAT = "relpromote-evidence/1"
MAX_PACK_BYTES = 512 << 20
INDEX_KEYS = {"format", "project", "version", "environment", "digest", "created_at", "head", "first_seq", "files"}

README = """\
relpromote evidence pack: release {version} in {environment} of project {project}, made at {created_at}

Check it offline, without the project (any machine with relpromote installed, e.g. `pip install relpromote`):

    relpromote evidence verify PACK.tar
    relpromote evidence verify PACK.tar --expect-head SEQ:HASH    # a head you kept elsewhere (audit checkpoint)

It refuses the pack if any byte of it changed, if any entry's hash, link or signature does not verify, if an
entry is signed with a key people.json does not give its signer, if an evidence file is not the cited bytes,
or if the release did not go live in {environment} with the approval it needed.

Members: pack.json (index: sha256 of every member), release.json (the manifest: each change's what, who, how,
why), ledger.jsonl (entries #{first}..#{last}: the release's build to the ledger's head, each with its hash,
the previous entry's hash and its signer's signature), people.json (names, public keys and roles; the config
commit), evidence/*.xml (JUnit reports by sha256), summary.json (what the entries say, for reading).

An entry's hash is sha256 over the canonical JSON (sorted keys, no spaces, UTF-8) of its seq, recorded_at,
kind, actor, public_key, payload and prev_hash; the signature is the signer's ed25519 signature of that hash's
hex text (an OpenSSH key's SSHSIG signature, namespace relpromote, for ssh-ed25519 keys).
"""


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def archive_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    """The tar of these members, byte for byte the same for the same members (no times, owners or modes of the machine)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = len(data), 0o644, 0, 0, 0, "", ""
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _about(entry: Entry, version: str) -> bool:
    p = entry.payload
    return p.get("version") == version or p.get("from_version") == version


def summarize(entries: Sequence[Entry], version: str, environment: str) -> dict[str, Any]:
    """What the segment's entries say about the release: the same function builds summary.json and checks it."""

    def who(entry: Entry) -> dict[str, Any]:
        return {"seq": entry.seq, "at": entry.recorded_at, "by": entry.actor, "key": entry.public_key}

    summary: dict[str, Any] = {"version": version, "environment": environment, "build": None, "revisions": [], "acceptances": [],
                               "rejections": [], "approvals": [], "promotions": [], "rollbacks": []}
    for entry in entries:
        p = entry.payload
        if not _about(entry, version):
            continue
        if entry.kind == events.RELEASE_BUILT:
            summary["build"] = {**who(entry), "digest": p.get("digest"), "source": p.get("source"), "config": p.get("config")}
        elif entry.kind == events.RELEASE_REVISED:
            summary["revisions"].append({**who(entry), "from_version": p.get("from_version"), "version": p.get("version"),
                                         "dropped": p.get("dropped")})
        elif entry.kind == events.VERDICT_ACCEPTED:
            summary["acceptances"].append({**who(entry), "environment": p.get("environment"), "note": p.get("note"),
                                           "evidence": p.get("evidence") or []})
        elif entry.kind == events.VERDICT_REJECTED:
            summary["rejections"].append({**who(entry), "environment": p.get("environment"), "changes": p.get("changes"), "reason": p.get("reason")})
        elif entry.kind == events.APPROVAL_GRANTED:
            summary["approvals"].append({**who(entry), "environment": p.get("environment"), "digest": p.get("digest"), "ticket": p.get("ticket"),
                                         "expires_at": p.get("expires_at"), "plan": p.get("plan")})
        elif entry.kind == events.PROMOTION_FINISHED and not p.get("check"):
            summary["promotions"].append({
                **who(entry), "environment": p.get("environment"), "digest": p.get("digest"), "result": p.get("result"),
                "reason": p.get("reason"), "limit": p.get("limit"), "gates": p.get("gates") or [], "approval": p.get("approval"),
                "break_glass": p.get("break_glass"), "evidence": p.get("evidence") or [],
                "hosts": [{k: h.get(k) for k in ("host", "previous", "current", "switched", "failed", "unreachable", "message")}
                          for h in p.get("hosts") or []],
                "project_commit": p.get("project_commit"), "project_dirty": p.get("project_dirty"), "config": p.get("config"),
            })
        elif entry.kind == events.ROLLBACK_FINISHED:
            summary["rollbacks"].append({**who(entry), "environment": p.get("environment"), "from_version": p.get("from_version"),
                                         "to_version": p.get("version"), "result": p.get("result"), "reason": p.get("reason")})
    return summary


def cited_evidence(entries: Iterable[Entry], version: str) -> list[str]:
    """The sha256 of every JUnit report the release's verdicts and promotions cite, in order of first citation."""
    found: dict[str, None] = {}
    for entry in entries:
        if entry.kind in (events.VERDICT_ACCEPTED, events.PROMOTION_FINISHED) and entry.payload.get("version") == version:
            for item in entry.payload.get("evidence") or []:
                if isinstance(item, dict) and isinstance(item.get("sha256"), str):
                    found[item["sha256"]] = None
    return list(found)


def build_pack(
    project: str, version: str, environment: str, entries: Sequence[Entry], people: list[dict[str, Any]],
    config: dict[str, Any], evidence: dict[str, bytes], created_at: str, policy: dict[str, Any] | None = None,
    roles_when_signed: dict[str, list[str]] | None = None,
) -> bytes:
    """The archive for `version` in `environment`: `entries` is the whole ledger, `evidence` the cited reports by sha256.

    `roles_when_signed` (entry seq -> roles) gives an approver's roles under the committed config the approval was made
    under: a change manager who later moved on (or retired) still approved as a change manager."""
    start = next(i for i, e in enumerate(entries) if e.kind == events.RELEASE_BUILT and e.payload.get("version") == version)
    segment = list(entries[start:])
    built = segment[0].payload
    head = segment[-1]
    release = {"version": version, "digest": built["digest"], "size": built.get("size"), "built_by": segment[0].actor,
               "built_at": segment[0].recorded_at, "manifest": built.get("manifest"), "source": built.get("source")}
    members: list[tuple[str, bytes]] = [
        ("README.txt", README.format(version=version, environment=environment, project=project, created_at=created_at,
                                     first=segment[0].seq, last=head.seq).encode()),
        ("release.json", _json(release)),
        ("ledger.jsonl", b"".join(json.dumps(e.as_data(), sort_keys=True, ensure_ascii=False).encode() + b"\n" for e in segment)),
        ("people.json", _json({"config": config, "people": people, "policy": policy or {},
                               **({"roles_when_signed": roles_when_signed} if roles_when_signed else {})})),
        *((f"evidence/{digest}.xml", evidence[digest]) for digest in sorted(evidence)),
        ("summary.json", _json(summarize(segment, version, environment))),
    ]
    index = {"format": FORMAT, "project": project, "version": version, "environment": environment, "digest": built["digest"],
             "created_at": created_at, "head": f"{head.seq}:{head.hash}", "first_seq": segment[0].seq,
             "files": {member: hashlib.sha256(data).hexdigest() for member, data in members}}
    return archive_bytes([("pack.json", _json(index)), *members])


@dataclass
class PackReport:
    """What verifying a pack found: problems (any one refuses the pack) and the facts an auditor reads."""

    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    index: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_data(self) -> dict[str, Any]:
        return {"verified": self.ok, "problems": self.problems, "facts": self.facts,
                **{k: self.index.get(k) for k in ("project", "version", "environment", "digest", "head")}}


def read_members(data: bytes) -> list[tuple[str, bytes]]:
    """The archive's members in order; ValueError when it is not a tar of plain files with safe names."""
    members: list[tuple[str, bytes]] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for info in tar:
                if not info.isfile() or info.name.startswith("/") or ".." in info.name.split("/"):
                    raise ValueError(f"member {info.name!r} is not a plain file inside the pack")
                stream = tar.extractfile(info)
                assert stream is not None
                members.append((info.name, stream.read()))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ValueError(f"not a readable tar archive ({exc})") from None
    return members


def verify_pack(data: bytes, expect_head: tuple[int, str] | None = None) -> PackReport:
    """Check a pack from its bytes alone; any problem refuses it."""
    try:
        return _verify(data, expect_head)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return PackReport([f"a member of the pack is malformed ({type(exc).__name__}: {exc})"])


def _verify(data: bytes, expect_head: tuple[int, str] | None) -> PackReport:
    report = PackReport()
    try:
        members = read_members(data)
    except ValueError as exc:
        report.problems.append(f"the pack {exc}")
        return report
    if archive_bytes(members) != data:
        report.problems.append("the archive's bytes are not the bytes relpromote wrote for its members: the pack was altered")
    files = dict(members)
    if len(files) != len(members):
        report.problems.append("the pack holds a member twice")
    try:
        index = json.loads(files["pack.json"])
        assert isinstance(index, dict) and set(index) == INDEX_KEYS and index["format"] == FORMAT and isinstance(index["files"], dict)
    except (KeyError, ValueError, AssertionError):
        report.problems.append(f"pack.json is missing or not a {FORMAT} index")
        return report
    report.index = index
    for name, digest in index["files"].items():
        if name not in files:
            report.problems.append(f"{name} is listed in pack.json but missing")
        elif hashlib.sha256(files[name]).hexdigest() != digest:
            report.problems.append(f"{name} is not the file pack.json lists (sha256 differs): it was altered")
    for name in files:
        if name != "pack.json" and name not in index["files"]:
            report.problems.append(f"{name} is in the archive but not in pack.json")
    if report.problems:
        return report
    try:
        entries = [Entry(**json.loads(line)) for line in files["ledger.jsonl"].decode().splitlines() if line.strip()]
        people_file = json.loads(files["people.json"])
        people, policy = people_file["people"], people_file.get("policy") or {}
        roles_when_signed = {str(seq): set(roles) for seq, roles in (people_file.get("roles_when_signed") or {}).items()}
        release = json.loads(files["release.json"])
        summary = json.loads(files["summary.json"])
    except (KeyError, ValueError, TypeError) as exc:
        report.problems.append(f"a member cannot be read ({type(exc).__name__}: {exc})")
        return report
    _verify_segment(report, entries, people, index, release, expect_head)
    if report.problems:
        return report
    version, environment = str(index["version"]), str(index["environment"])
    if summarize(entries, version, environment) != summary:
        report.problems.append("summary.json is not what the ledger entries say")
    for digest in cited_evidence(entries, version):
        report_file = files.get(f"evidence/{digest}.xml")
        if report_file is None:
            report.problems.append(f"evidence {digest[:12]}… is cited by the ledger but not in the pack")
        elif hashlib.sha256(report_file).hexdigest() != digest:
            report.problems.append(f"evidence/{digest}.xml is not the cited report")
    _verify_way(report, entries, people, version, environment, str(index["digest"]), policy, roles_when_signed)
    if not report.problems:
        # Last, the whole: the pack these entries, people and reports make must be these very bytes (README, index and all).
        evidence = {name.removeprefix("evidence/").removesuffix(".xml"): body for name, body in members if name.startswith("evidence/")}
        try:
            again = build_pack(str(index["project"]), version, environment, entries, people, people_file.get("config") or {}, evidence,
                               str(index["created_at"]), policy, people_file.get("roles_when_signed"))
        except (KeyError, StopIteration, TypeError, ValueError):
            again = b""
        if again != data:
            report.problems.append("the pack is not the pack its own entries, people and reports make: pack.json or README.txt was altered")
    return report


def _verify_segment(
    report: PackReport, entries: list[Entry], people: list[dict[str, Any]], index: dict[str, Any], release: dict[str, Any],
    expect_head: tuple[int, str] | None,
) -> None:
    if not entries:
        report.problems.append("ledger.jsonl holds no entries")
        return
    keys = {str(p["key"]): str(p["name"]) for p in people}
    signers = signer_names(entries, keys)
    previous_hash, expected_seq = entries[0].prev_hash, entries[0].seq  # the segment's first link is anchored by the head, below
    for entry in entries:
        why = entry_problem(entry, expected_seq, previous_hash, signers)
        if why is not None:
            report.problems.append(f"ledger entry #{entry.seq}: {why}")
        previous_hash, expected_seq = entry.hash, entry.seq + 1
    first, head = entries[0], entries[-1]
    if first.kind != events.RELEASE_BUILT or first.payload.get("version") != index["version"] or first.payload.get("digest") != index["digest"]:
        report.problems.append(f"the segment does not start with the build of {index['version']} with digest {str(index['digest'])[:12]}…")
    elif release.get("digest") != index["digest"] or release.get("manifest") != first.payload.get("manifest"):
        report.problems.append("release.json is not the release the build entry recorded")
    if index.get("head") != f"{head.seq}:{head.hash}":
        report.problems.append("pack.json's head is not the segment's last entry")
    if expect_head is not None and expect_head != (head.seq, head.hash):
        seq, digest = expect_head
        found = next((e for e in entries if e.seq == seq), None)
        if found is None or found.hash != digest:
            report.problems.append(f"the expected head #{seq} ({digest[:12]}…) is not in the pack's chain, which ends at "
                                   f"#{head.seq} ({head.hash[:12]}…)")
        else:
            report.facts.append(f"the expected head #{seq} is in the chain; {head.seq - seq} entries follow it")
    report.facts.append(f"entries #{first.seq}..#{head.seq} link, hash and verify; head {head.seq}:{head.hash}")


def _verify_way(
    report: PackReport, entries: list[Entry], people: list[dict[str, Any]], version: str, environment: str, digest: str, policy: dict[str, Any],
    roles_when_signed: dict[str, set[str]],
) -> None:
    """The release went live in `environment`, with an approval by a change manager who neither built nor promoted it."""
    roles = {str(p["key"]): set(p.get("roles") or []) for p in people}
    build = entries[0]
    report.facts.append(f"{version} (sha256:{digest}) built by {build.actor} at {build.recorded_at}")
    for entry in entries:
        p = entry.payload
        if entry.kind == events.VERDICT_ACCEPTED and p.get("version") == version:
            kinds = ", ".join(f"{e.get('kind')} {e.get('passed')}/{e.get('tests')} passed" for e in p.get("evidence") or []) or "no files"
            report.facts.append(f"accepted in {p.get('environment')} by {entry.actor} at {entry.recorded_at} (evidence: {kinds})")
        elif entry.kind == events.APPROVAL_GRANTED and p.get("version") == version:
            report.facts.append(f"approved for {p.get('environment')} by {entry.actor} at {entry.recorded_at}, ticket {p.get('ticket')}, "
                                f"until {p.get('expires_at')}")
    live = [e for e in entries if e.kind == events.PROMOTION_FINISHED and e.payload.get("version") == version
            and e.payload.get("environment") == environment and e.payload.get("result") == "succeeded" and not e.payload.get("check")]
    if not live:
        report.problems.append(f"no entry records {version} going live in {environment}")
        return
    for promotion in live:
        p = promotion.payload
        hosts = ", ".join(f"{h.get('host')} {h.get('previous') or '-'}→{h.get('current') or '-'}" for h in p.get("hosts") or [])
        report.facts.append(f"promoted to {environment} by {promotion.actor} at {promotion.recorded_at} from project commit "
                            f"{str(p.get('project_commit'))[:12]} (config {str((p.get('config') or {}).get('commit'))[:12]}); hosts: {hosts}")
        failed = [g for g in p.get("gates") or [] if not g.get("passed")]
        if failed:
            report.problems.append(f"the promotion #{promotion.seq} records a failed gate: {failed[0].get('rule')}: {failed[0].get('reason')}")
        if p.get("digest") != digest:
            report.problems.append(f"the promotion #{promotion.seq} put other bytes live ({str(p.get('digest'))[:12]}…)")
        if not p.get("approval"):
            continue
        approvals = [e for e in entries if e.kind == events.APPROVAL_GRANTED and e.seq < promotion.seq
                     and e.payload.get("version") == version and e.payload.get("environment") == environment
                     and e.payload.get("digest") == digest and e.payload.get("ticket") == p["approval"].get("ticket")
                     and str(e.payload.get("expires_at")) > promotion.recorded_at]
        if not approvals:
            report.problems.append(f"the promotion #{promotion.seq} cites ticket {p['approval'].get('ticket')}, but no approval of these "
                                   "bytes for this environment under it, valid at the time, precedes it")
            continue
        approval = approvals[-1]
        held = roles_when_signed.get(str(approval.seq), roles.get(approval.public_key, set()))
        if "change_manager" not in held:
            report.problems.append(f"the approval #{approval.seq} is signed by {approval.actor}, who is not a change manager in people.json")
        elif "change_manager" not in roles.get(approval.public_key, set()):
            report.facts.append(f"{approval.actor} approved #{approval.seq} as a change manager under the config of that time "
                                "(people.json's roles_when_signed); today's config gives them other roles")
        if approval.public_key in (build.public_key, promotion.public_key) and policy.get("separation_of_duties", True):
            report.problems.append(f"the approval #{approval.seq} is signed by the release's builder or its promoter (same key)")
