"""The auditor's evidence pack: one release's way to one environment, as one archive checked offline.

The pack is a plain, deterministic tar (USTAR; every member 0644, owner 0, time 0, in a fixed order):

  README.txt       what is inside and how to check it
  pack.json        format, project, version, environment, digest, the ledger head, and the sha256 of every other member
  release.json     the release as built: manifest (changes: what, who, how, why), digest, builder, source commit
  ledger.jsonl     the chain segment: every entry from the release's build to the ledger's head, with hashes and signatures
  config/*.yml     the committed relpromote.yml of every config the entries were made under, named by its sha256
  people.json      for reading: each config file's project, people (names, keys, roles) and approval policy per environment
  evidence/*.xml   the JUnit reports the entries cite, by sha256
  summary.json     what the entries say, for reading: builds, verdicts, approvals, promotions with gates and per-host outcome

Every ledger entry's signed payload stamps its config (`config`: the project's commit, the config file's sha256, and
whether the file was exactly as committed). `verify_pack` needs nothing but the archive's bytes: it rebuilds the
archive from its members and requires the very same bytes (so one changed byte is refused), checks every member's
sha256, every config file against the sha256 the signed entries stamp, every entry's sequence, link, hash and
signature (relpromote.ledger), that each signer's key is the key the config the entry was made under gives that name,
that people.json and pack.json's project are what the config files say, that the evidence files are the cited bytes,
that summary.json is what the entries say, and that the release went live in the environment with the approval the
config in force at the promotion required (signed by a change manager under the approval's config, who is neither
the builder nor the promoter, by key), or says plainly that that config required none.

An entry whose stamp says its config was not committed (or that names no config) is not vouched for: its hash, link
and signature are checked, but no committed config names its signer; verify names such entries, and refuses the pack
when the release's promotion to the environment or the approval it used is one of them. Packs of the first format
(relpromote-evidence/1, whose people.json nothing signed bound) are refused with a message to make the pack again.
The ledger's head can be compared with a checkpoint kept elsewhere (`expect_head`): that is what anchors the segment.
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
from relpromote.config import Config, parse_config
from relpromote.errors import BadInput
from relpromote.ledger import Entry, entry_problem

FORMAT = "relpromote-evidence/2"
OLD_FORMATS = {"relpromote-evidence/1"}
MAX_PACK_BYTES = 512 << 20
INDEX_KEYS = {"format", "project", "version", "environment", "digest", "created_at", "head", "first_seq", "files"}

README = """\
relpromote evidence pack: release {version} in {environment} of project {project}, made at {created_at}

Check it offline, without the project (any machine with relpromote installed, e.g. `pip install relpromote`):

    relpromote evidence verify PACK.tar
    relpromote evidence verify PACK.tar --expect-head SEQ:HASH    # a head you kept elsewhere (audit checkpoint)

It refuses the pack if any byte of it changed, if any entry's hash, link or signature does not verify, if a
config file is not the bytes the signed entries stamp, if an entry is signed with a key its config does not
give its signer, if people.json or the project name is not what the config files say, if an evidence file is
not the cited bytes, or if the release did not go live in {environment} with the approval its config required.

Members: pack.json (index: sha256 of every member), release.json (the manifest: each change's what, who, how,
why), ledger.jsonl (entries #{first}..#{last}: the release's build to the ledger's head, each with its hash,
the previous entry's hash and its signer's signature; each payload's `config` stamps the project commit and
the sha256 of the config it was made under), config/SHA256.yml (those committed relpromote.yml files: the
people, keys, roles and approval policy), people.json (what the config files say, for reading),
evidence/*.xml (JUnit reports by sha256), summary.json (what the entries say, for reading).

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


def segment_of(entries: Sequence[Entry], version: str) -> list[Entry]:
    """The entries from the release's build to the ledger's head (StopIteration when the ledger never built it)."""
    start = next(i for i, e in enumerate(entries) if e.kind == events.RELEASE_BUILT and e.payload.get("version") == version)
    return list(entries[start:])


def _stamp(entry: Entry) -> dict[str, Any]:
    stamp = entry.payload.get("config")
    return stamp if isinstance(stamp, dict) else {}


def cited_configs(entries: Iterable[Entry]) -> dict[str, str]:
    """sha256 -> commit (the first citing entry's) of every committed config file the entries were made under."""
    found: dict[str, str] = {}
    for entry in entries:
        stamp = _stamp(entry)
        if stamp.get("committed") is True and isinstance(stamp.get("sha256"), str) and isinstance(stamp.get("commit"), str):
            found.setdefault(stamp["sha256"], stamp["commit"])
    return found


def config_member(sha256: str) -> str:
    return f"config/{sha256}.yml"


def read_config(body: bytes, commit: str) -> Config | str:
    """The config file as this relpromote reads it, or why it cannot."""
    try:
        return parse_config(body.decode("utf-8"), f"relpromote.yml at {commit[:12]}")
    except (BadInput, UnicodeDecodeError) as exc:
        return str(exc)


def people_index(segment: Sequence[Entry], configs: dict[str, bytes]) -> dict[str, Any]:
    """people.json: what each config file says of the project, its people and its environments' approval policy."""
    cited = cited_configs(segment)
    described: dict[str, Any] = {}
    for sha in sorted(configs):
        config = read_config(configs[sha], cited.get(sha, ""))
        if not isinstance(config, Config):
            described[sha] = {"commit": cited.get(sha), "unreadable": config}
            continue
        approval = {}
        for name, env in sorted(config.environments.items()):
            policy = env.approval_policy()
            approval[name] = {"protected": env.protected, "required": policy is not None,
                              "separation_of_duties": policy.separation_of_duties if policy is not None else None}
        described[sha] = {"commit": cited.get(sha), "project": config.project, "approval": approval,
                          "people": [{"name": p.name, "key": p.key, "roles": sorted(p.roles)} for p in sorted(config.people, key=lambda p: p.name)]}
    return {"configs": described}


def build_pack(
    project: str, version: str, environment: str, entries: Sequence[Entry], configs: dict[str, bytes], evidence: dict[str, bytes],
    created_at: str,
) -> bytes:
    """The archive for `version` in `environment`: `entries` is the whole ledger, `configs` the committed config files the
    segment's entries cite (by sha256), `evidence` the cited reports by sha256."""
    segment = segment_of(entries, version)
    cited = cited_configs(segment)
    configs = {sha: body for sha, body in configs.items() if sha in cited}
    built = segment[0].payload
    head = segment[-1]
    release = {"version": version, "digest": built["digest"], "size": built.get("size"), "built_by": segment[0].actor,
               "built_at": segment[0].recorded_at, "manifest": built.get("manifest"), "source": built.get("source")}
    members: list[tuple[str, bytes]] = [
        ("README.txt", README.format(version=version, environment=environment, project=project, created_at=created_at,
                                     first=segment[0].seq, last=head.seq).encode()),
        ("release.json", _json(release)),
        ("ledger.jsonl", b"".join(json.dumps(e.as_data(), sort_keys=True, ensure_ascii=False).encode() + b"\n" for e in segment)),
        *((config_member(sha), configs[sha]) for sha in sorted(configs)),
        ("people.json", _json(people_index(segment, configs))),
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


def _commit(entry: Entry) -> str:
    return str(_stamp(entry).get("commit"))[:12]


@dataclass
class _Configs:
    """The pack's config files (checked against the stamps of the signed entries), and the config each entry was made under."""

    read: dict[str, Config] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)

    def of(self, entry: Entry) -> tuple[Config | None, str]:
        """The committed config the entry was made under, or (None, why the pack cannot say)."""
        stamp = _stamp(entry)
        sha = stamp.get("sha256")
        if not stamp:
            return None, "records no config"
        if stamp.get("committed") is not True:
            return None, f"was made under a config that was not committed (sha256 {str(sha)[:12]}…)"
        if isinstance(sha, str) and sha in self.read:
            return self.read[sha], ""
        if isinstance(sha, str) and sha in self.unreadable:
            return None, f"was made under the config at {_commit(entry)}, which this relpromote cannot read ({self.unreadable[sha]})"
        return None, f"was made under the config at {_commit(entry)} (sha256 {str(sha)[:12]}…), which is not in the pack"


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
    except (KeyError, ValueError):
        index = None
    if isinstance(index, dict) and index.get("format") in OLD_FORMATS:
        report.problems.append(f"pack.json says {index['format']}, a format whose people.json (keys, roles, policy) nothing signed binds; "
                               f"this relpromote verifies {FORMAT} packs: make the pack again with `relpromote evidence VERSION --env ENV --out FILE`")
        return report
    if not (isinstance(index, dict) and set(index) == INDEX_KEYS and index["format"] == FORMAT and isinstance(index["files"], dict)):
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
        release = json.loads(files["release.json"])
        summary = json.loads(files["summary.json"])
    except (KeyError, ValueError, TypeError) as exc:
        report.problems.append(f"a member cannot be read ({type(exc).__name__}: {exc})")
        return report
    cited = cited_configs(entries)
    configs = _Configs()
    config_files = {name.removeprefix("config/").removesuffix(".yml"): body for name, body in members if name.startswith("config/")}
    for sha, body in config_files.items():
        if hashlib.sha256(body).hexdigest() != sha:
            report.problems.append(f"{config_member(sha)} is not the config file the signed entries stamp (its sha256 differs): it was edited")
        elif sha not in cited:
            report.problems.append(f"{config_member(sha)} is a config file no entry of the pack was made under")
        else:
            found = read_config(body, cited[sha])
            if isinstance(found, Config):
                configs.read[sha] = found
            else:
                configs.unreadable[sha] = found
    if report.problems:
        return report
    _verify_segment(report, entries, configs, index, release, expect_head)
    if report.problems:
        return report
    derived = people_index(entries, config_files)
    if people_file != derived:
        report.problems.append(f"people.json does not match the config files: {_difference(people_file, derived)}")
    version, environment = str(index["version"]), str(index["environment"])
    if summarize(entries, version, environment) != summary:
        report.problems.append("summary.json is not what the ledger entries say")
    for digest in cited_evidence(entries, version):
        report_file = files.get(f"evidence/{digest}.xml")
        if report_file is None:
            report.problems.append(f"evidence {digest[:12]}… is cited by the ledger but not in the pack")
        elif hashlib.sha256(report_file).hexdigest() != digest:
            report.problems.append(f"evidence/{digest}.xml is not the cited report")
    _verify_way(report, entries, configs, version, environment, str(index["digest"]), str(index["project"]))
    if not report.problems:
        # Last, the whole: the pack these entries, configs and reports make must be these very bytes (README, index and all).
        evidence = {name.removeprefix("evidence/").removesuffix(".xml"): body for name, body in members if name.startswith("evidence/")}
        try:
            again = build_pack(str(index["project"]), version, environment, entries, config_files, evidence, str(index["created_at"]))
        except (KeyError, StopIteration, TypeError, ValueError):
            again = b""
        if again != data:
            report.problems.append("the pack is not the pack its own entries, configs and reports make: pack.json or README.txt was altered")
    return report


def _difference(found: Any, derived: dict[str, Any]) -> str:
    """The first thing people.json says that the config files do not (one line)."""
    if not isinstance(found, dict) or not isinstance(found.get("configs"), dict) or set(found) != set(derived):
        return "it is not an index of the pack's config files"
    said, truth = found["configs"], derived["configs"]
    for sha in sorted(set(said) | set(truth)):
        if sha not in truth:
            return f"it lists a config {sha[:12]}… that is not in the pack"
        if sha not in said or not isinstance(said[sha], dict):
            return f"it leaves out the config {sha[:12]}…"
        mine, theirs = said[sha], truth[sha]
        at = f"the config at {str(theirs.get('commit'))[:12]}"
        listed = {str(p.get("name")): p for p in mine.get("people") or [] if isinstance(p, dict)}
        named = {str(p["name"]): p for p in theirs.get("people") or []}
        for name in sorted(set(listed) | set(named)):
            if name not in named:
                return f"it lists {name}, whom {at} does not name"
            if name not in listed:
                return f"it leaves out {name}, whom {at} names"
            if listed[name].get("key") != named[name]["key"]:
                return f"it gives {name} another key than {at} does"
            if listed[name] != named[name]:
                return f"it gives {name} the roles {listed[name].get('roles')}, {at} gives {named[name]['roles']}"
        for key in sorted(set(mine) | set(theirs)):
            if mine.get(key) != theirs.get(key):
                return f"its {key} of {at} is not what that config file says"
    return "it is not what the pack's config files say"


def _verify_segment(
    report: PackReport, entries: list[Entry], configs: _Configs, index: dict[str, Any], release: dict[str, Any],
    expect_head: tuple[int, str] | None,
) -> None:
    if not entries:
        report.problems.append("ledger.jsonl holds no entries")
        return
    previous_hash, expected_seq = entries[0].prev_hash, entries[0].seq  # the segment's first link is anchored by the head, below
    unvouched: list[Entry] = []
    for entry in entries:
        why = entry_problem(entry, expected_seq, previous_hash, None)
        config, _ = configs.of(entry)
        if why is None and config is not None:
            # The signer: the name the committed config the entry was made under gives its key.
            name = next((p.name for p in config.people if p.key == entry.public_key), None)
            if name != entry.actor:
                given = f"gives {name}" if name else "gives no one"
                why = f"signed with a key the config at {_commit(entry)} (the one it was made under) {given}, but recorded as {entry.actor}"
        elif why is None:
            unvouched.append(entry)
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
    report.facts.append(f"entries #{first.seq}..#{head.seq} link, hash and verify; each signer's key is the key the committed config "
                        "the entry was made under gives that name (config files checked against the sha256 the entries stamp)")
    if unvouched:
        named = ", ".join(f"#{e.seq} {e.kind} by {e.actor}" for e in unvouched[:10]) + (", …" if len(unvouched) > 10 else "")
        report.facts.append(f"not vouched for: {len(unvouched)} entries were made under no committed config in the pack ({named}): "
                            "their hash, link and signature verify, but nothing committed says whose key signed them")


def _verify_way(
    report: PackReport, entries: list[Entry], configs: _Configs, version: str, environment: str, digest: str, project: str,
) -> None:
    """The release went live in `environment`, with the approval the config in force at the promotion required: by a change
    manager (under the approval's own config) who neither built nor promoted it, compared by key."""
    build = entries[0]

    def vouched(entry: Entry) -> str:
        return "" if configs.of(entry)[0] is not None else " (not vouched for: no committed config)"

    report.facts.append(f"{version} (sha256:{digest}) built by {build.actor} at {build.recorded_at}{vouched(build)}")
    for entry in entries:
        p = entry.payload
        if entry.kind == events.VERDICT_ACCEPTED and p.get("version") == version:
            kinds = ", ".join(f"{e.get('kind')} {e.get('passed')}/{e.get('tests')} passed" for e in p.get("evidence") or []) or "no files"
            report.facts.append(f"accepted in {p.get('environment')} by {entry.actor} at {entry.recorded_at} (evidence: {kinds}){vouched(entry)}")
        elif entry.kind == events.APPROVAL_GRANTED and p.get("version") == version:
            report.facts.append(f"approved for {p.get('environment')} by {entry.actor} at {entry.recorded_at}, ticket {p.get('ticket')}, "
                                f"until {p.get('expires_at')}{vouched(entry)}")
    live = [e for e in entries if e.kind == events.PROMOTION_FINISHED and e.payload.get("version") == version
            and e.payload.get("environment") == environment and e.payload.get("result") == "succeeded" and not e.payload.get("check")]
    if not live:
        report.problems.append(f"no entry records {version} going live in {environment}")
        return
    for promotion in live:
        p = promotion.payload
        hosts = ", ".join(f"{h.get('host')} {h.get('previous') or '-'}→{h.get('current') or '-'}" for h in p.get("hosts") or [])
        report.facts.append(f"promoted to {environment} by {promotion.actor} at {promotion.recorded_at} from project commit "
                            f"{str(p.get('project_commit'))[:12]} (config {_commit(promotion)}); hosts: {hosts}")
        failed = [g for g in p.get("gates") or [] if not g.get("passed")]
        if failed:
            report.problems.append(f"the promotion #{promotion.seq} records a failed gate: {failed[0].get('rule')}: {failed[0].get('reason')}")
        if p.get("digest") != digest:
            report.problems.append(f"the promotion #{promotion.seq} put other bytes live ({str(p.get('digest'))[:12]}…)")
        _verify_approval(report, entries, configs, promotion, build, digest, project)


def _verify_approval(
    report: PackReport, entries: list[Entry], configs: _Configs, promotion: Entry, build: Entry, digest: str, project: str,
) -> None:
    p, at = promotion.payload, _commit(promotion)
    version, environment = str(p.get("version")), str(p.get("environment"))
    config, why = configs.of(promotion)
    if config is None:
        report.problems.append(f"the promotion #{promotion.seq} to {environment} {why}: nothing committed says what approval it needed")
        return
    if config.project != project:
        report.problems.append(f"pack.json names the project {project}, but the config at {at} the promotion #{promotion.seq} was made "
                               f"under names {config.project}")
        return
    env = config.environments.get(environment)
    policy = env.approval_policy() if env is not None else None
    if env is None:
        report.problems.append(f"the config at {at} the promotion #{promotion.seq} was made under has no environment {environment}")
        return
    if policy is None:
        report.facts.append(f"approval: not required in {environment} by its config at {at} (promotion #{promotion.seq}); none was checked")
        return
    if not p.get("approval"):
        report.problems.append(f"the promotion #{promotion.seq} cites no approval, but its config at {at} requires one for {environment}")
        return
    approvals = [e for e in entries if e.kind == events.APPROVAL_GRANTED and e.seq < promotion.seq
                 and e.payload.get("version") == version and e.payload.get("environment") == environment
                 and e.payload.get("digest") == digest and e.payload.get("ticket") == p["approval"].get("ticket")
                 and str(e.payload.get("expires_at")) > promotion.recorded_at]
    if not approvals:
        report.problems.append(f"the promotion #{promotion.seq} cites ticket {p['approval'].get('ticket')}, but no approval of these "
                               "bytes for this environment under it, valid at the time, precedes it")
        return
    approval = approvals[-1]
    then, why = configs.of(approval)
    if then is None:
        report.problems.append(f"the approval #{approval.seq} {why}: nothing committed says its signer was a change manager")
        return
    signer = next((person for person in then.people if person.key == approval.public_key), None)
    if signer is None or "change_manager" not in signer.roles:
        report.problems.append(f"the approval #{approval.seq} is signed by {approval.actor}, who is not a change manager in the config "
                               f"at {_commit(approval)} it was made under")
        return
    if policy.separation_of_duties and approval.public_key in (build.public_key, promotion.public_key):
        report.problems.append(f"the approval #{approval.seq} is signed by the release's builder or its promoter (same key)")
        return
    duties = "who neither built nor promoted it (compared by key)" if policy.separation_of_duties else \
        "(that config turns separation of duties off)"
    report.facts.append(f"approval: required in {environment} by its config at {at}; given by {approval.actor} (#{approval.seq}), "
                        f"a change manager under the config at {_commit(approval)}, {duties}")
