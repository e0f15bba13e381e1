"""The gates of change management: pure functions from facts to a verdict with reasons.

Nothing here reads a file, a clock or a database; callers pass the config, the ledger's state,
the acting person and the time. Each gate names its rule, so a refusal can say which rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from relpromote import events
from relpromote.authority import authority_digest, authority_document, authority_status
from relpromote.config import ApprovalConfig, Config, Person
from relpromote.errors import Refused
from relpromote.evidence import evidence_problem
from relpromote.freeze import active_freeze
from relpromote.identity import verify_signature
from relpromote.ledger import Entry, Problem, SignatureCheck, parse_time, verify_chain
from relpromote.release import Release
from relpromote.state import Approval, ProjectState, fold

Act = Literal["build", "promote", "accept", "reject", "approve", "rollback", "break_glass", "lock_release", "refresh"]

DEFAULT_ROLES: dict[str, tuple[str, ...]] = {
    "build": ("release_manager",),
    "promote": ("operator", "release_manager"),
    "promote_protected": ("release_manager",),
    "accept": ("qa",),
    "reject": ("qa", "change_manager"),
    "approve": ("change_manager",),
    "rollback": ("release_manager",),
    "break_glass": ("release_manager",),
    "lock_release": ("release_manager", "operator"),
    "refresh": ("data_refresher",),
}


@dataclass(frozen=True)
class Gate:
    rule: str
    passed: bool
    reason: str

    def as_data(self) -> dict[str, Any]:
        return {"rule": self.rule, "passed": self.passed, "reason": self.reason}


@dataclass(frozen=True)
class Verdict:
    gates: tuple[Gate, ...]

    @property
    def allowed(self) -> bool:
        return all(g.passed for g in self.gates)

    def first_failure(self) -> Gate | None:
        return next((g for g in self.gates if not g.passed), None)

    def enforce(self, what: str) -> None:
        failed = self.first_failure()
        if failed is not None:
            raise Refused(f"{what} refused by rule '{failed.rule}': {failed.reason}", detail={"gates": [g.as_data() for g in self.gates]})

    def as_data(self) -> list[dict[str, Any]]:
        return [g.as_data() for g in self.gates]


def allowed_roles(config: Config, act: Act, environment: str | None) -> tuple[str, ...]:
    if act == "build":
        configured = config.allow.build
        return tuple(configured) if configured is not None else DEFAULT_ROLES["build"]
    assert environment is not None
    env = config.environment(environment)
    configured = getattr(env.allow, act)
    if configured is not None:
        return tuple(configured)
    if act == "promote" and env.protected:
        return DEFAULT_ROLES["promote_protected"]
    return DEFAULT_ROLES[act]


def role_gate(config: Config, person: Person, act: Act, environment: str | None = None) -> Gate:
    roles = allowed_roles(config, act, environment)
    where = f" in {environment}" if environment else ""
    held = [r for r in person.roles if r in roles]
    if held:
        return Gate("role", True, f"{person.name} holds {held[0]}, which may {act.replace('_', ' ')}{where}")
    held_text = ", ".join(person.roles) or "no roles"
    return Gate("role", False, f"{person.name} ({held_text}) may not {act.replace('_', ' ')}{where}; allowed roles: {', '.join(roles)}")


def require_role(config: Config, person: Person, act: Act, environment: str | None = None) -> None:
    Verdict((role_gate(config, person, act, environment),)).enforce(act.replace("_", " "))


def _not_rejected(state: ProjectState, release: Release) -> Gate:
    rejections = state.rejections.get(release.version, [])
    if rejections:
        last = rejections[-1]
        what = f"changes {', '.join(last.changes)}" if last.changes else "the release"
        reason = f"{release.version} was rejected in {last.environment} by {last.actor} ({what}: {last.reason})"
        return Gate("not-rejected", False, f"{reason}; build a new version (relpromote revise)")
    if release.version in state.failed_verification:
        why = state.failed_verification[release.version]
        return Gate("not-rejected", False, f"{release.version} failed verification and was rolled back ({why}); build a new version")
    return Gate("not-rejected", True, f"{release.version} has no rejection")


def _order(config: Config, state: ProjectState, release: Release, environment: str) -> Gate:
    previous = config.previous_environment(environment)
    if previous is None:
        return Gate("order", True, f"{environment} is the first environment")
    if (release.version, previous) not in state.promoted:
        return Gate("order", False, f"{release.version} was never promoted to {previous}; promote it to {previous} and accept it there first")
    if (release.version, previous) not in state.accepted:
        return Gate("order", False, f"{release.version} was not accepted in {previous}; record `relpromote accept {release.version} --env {previous}` first")
    return Gate("order", True, f"{release.version} was promoted to and accepted in {previous}")


def plan_changes(approved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between the plan an approval covers and the plan now, in words."""
    changes = []
    before, after = set(approved.get("hosts") or []), set(now.get("hosts") or [])
    if before != after:
        added, removed = sorted(after - before), sorted(before - after)
        what = ", ".join([*(f"+{h}" for h in added), *(f"-{h}" for h in removed)])
        changes.append(f"hosts ({what})")
    for part in ("config", "inventory", "playbooks", "roles", "ansible.cfg"):
        if approved.get(part) != now.get(part):
            changes.append(part)
    return changes


def plan_summary(plan: dict[str, Any]) -> str:
    hosts = plan.get("hosts") or []
    digests = ", ".join(f"{part} {str(plan.get(part, ''))[:8]}" for part in ("config", "inventory", "playbooks", "roles"))
    return f"{len(hosts)} hosts ({', '.join(hosts[:5])}{', …' if len(hosts) > 5 else ''}), {digests}"


def valid_approval(
    config: Config, state: ProjectState, release: Release, environment: str, requester: Person, now: datetime,
    plan: dict[str, Any] | None = None,
) -> tuple[Approval | None, str]:
    """The approval that lets `requester` promote `release` now, or why none does.

    Given the `plan` a promotion would apply now, an approval counts only for the plan it covers."""
    policy = config.environment(environment).approval_policy()
    why = "no approval recorded for these bytes"
    for approval in reversed(state.approvals):
        if approval.environment != environment or approval.version != release.version:
            continue
        if approval.digest != release.digest:
            why = f"approval {approval.ticket} is for other bytes ({approval.digest[:12]})"
            continue
        if parse_time(approval.expires_at) <= now:
            why = f"approval {approval.ticket} expired at {approval.expires_at[:16]}"
            continue
        approver = config.person_by_key(approval.approver_key)
        if approver is None or not role_gate(config, approver, "approve", environment).passed:
            why = f"approval {approval.ticket} was given by {approval.approver}, who may no longer approve"
            continue
        if policy is not None and policy.separation_of_duties:
            # By key, not by name: renaming a person does not make them someone else.
            if approval.approver_key == state.built_by_key.get(release.version):
                why = f"approval {approval.ticket} was given by the release's builder {approval.approver} (same key)"
                continue
            if approval.approver_key == requester.key:
                why = f"approval {approval.ticket} was given by {requester.name}, who requests this promotion (same key)"
                continue
        if plan is not None:
            if not approval.plan:
                why = f"approval {approval.ticket} records no plan (hosts, config, inventory, roles); approve again"
                continue
            changed = plan_changes(approval.plan, plan)
            if changed:
                why = f"approval {approval.ticket} covers another plan: since it, {', '.join(changed)} changed; approve again"
                continue
        covers = f"; it covers {plan_summary(approval.plan)}" if approval.plan else ""
        return approval, f"approved by {approval.approver} under {approval.ticket} until {approval.expires_at[:16]}{covers}"
    return None, why


def promotion_verdict(
    config: Config,
    state: ProjectState,
    release: Release,
    environment: str,
    requester: Person,
    now: datetime,
    break_glass: str | None = None,
    plan: dict[str, Any] | None = None,
) -> Verdict:
    env = config.environment(environment)
    state = state.for_environment(environment)  # where an approved authority is required, only decisions made under one
    gates = [
        role_gate(config, requester, "promote", environment), ledger_gate(state, environment, env.protected),
        config_gate(state, environment, env.protected), *authority_gate(state, environment),
        _not_rejected(state, release), _order(config, state, release, environment),
    ]
    if env.approval_policy() is not None:
        approval, reason = valid_approval(config, state, release, environment, requester, now, plan)
        if approval is None:
            reason += _left_out(state, environment, "approval.granted")
        gates.append(Gate("approval", approval is not None, reason if approval else f"{environment} needs a valid approval: {reason}"))
    window = active_freeze(env.freeze, now)
    if window is None:
        gates.append(Gate("freeze", True, f"{environment} is not frozen"))
    elif break_glass:
        glass = role_gate(config, requester, "break_glass", environment)
        why = f"break-glass by {requester.name}: {break_glass}" if glass.passed else glass.reason
        gates.append(Gate("freeze", glass.passed, f"frozen ({window.reason}); {why}"))
    else:
        gates.append(Gate("freeze", False, f"{environment} is frozen ({window.reason}); wait, or break glass with --break-glass REASON"))
    if config.parity.gate is not None and config.parity.gate.environment == environment:
        gates.append(parity_gate(config, state, release, now))
    return Verdict(tuple(gates))


def parity_gate(config: Config, state: ProjectState, release: Release, now: datetime) -> Gate:
    """The mirror passed its last parity check against the environment within max_age, and accepted this release."""
    rule = config.parity.gate
    assert rule is not None
    env, mirror = rule.environment, rule.mirror
    check = state.parity.get((mirror, env))
    again = f"run `relpromote parity {mirror} {env}`"
    if check is None:
        return Gate("parity", False, f"{mirror} was never checked against {env}; {again}")
    age = now - parse_time(check.at)
    if age > parse_duration(rule.max_age):
        return Gate("parity", False, f"the last parity check of {mirror} against {env} ({check.at[:16]}) is older than "
                    f"{rule.max_age}; {again}")
    if not check.within:
        return Gate("parity", False, f"{mirror} did not mirror {env} at the last check ({check.at[:16]}): {check.summary}; "
                    f"fix the drift, then {again}")
    if (release.version, mirror) not in state.accepted:
        return Gate("parity", False, f"{release.version} was not accepted in {mirror}, the mirror of {env}; "
                    f"record `relpromote accept {release.version} --env {mirror}` first")
    return Gate("parity", True, f"{mirror} mirrored {env} at {check.at[:16]} (within {rule.max_age}) and accepted {release.version}")


def acceptance_verdict(
    config: Config, state: ProjectState, release: Release, environment: str, actor: Person, evidence: Sequence[dict[str, Any]]
) -> Verdict:
    env = config.environment(environment)
    gates = [role_gate(config, actor, "accept", environment), ledger_gate(state, environment, env.protected), _not_rejected(state, release)]
    live = state.environments[environment].current == release.version
    where = "is live" if live else "is not live"
    gates.append(Gate("live", live, f"{release.version} {where} in {environment}" + ("" if live else "; promote it there first")))
    problems = [problem for problem in map(evidence_problem, evidence) if problem]
    if problems:
        gates.append(Gate("evidence-passes", False, problems[0]))
    else:
        gates.append(Gate("evidence-passes", True, "all evidence passes"))
    have = {e["kind"] for e in evidence} | {e["kind"] for e in automatic_evidence(state, release.version, environment)}
    required = list(env.evidence)
    if release.manifest.get("dropped") and environment == config.promotion_path[0]:
        # After a source rollback the policy asks for a full re-test before the revision is accepted.
        required += [kind for kind in config.source.revise.retest if kind not in required]
    missing = [kind for kind in required if kind not in have]
    if missing:
        why = f"{environment} requires evidence of kind {', '.join(missing)}; pass --evidence {missing[0]}=FILE.xml"
        gates.append(Gate("evidence-complete", False, why))
    else:
        gates.append(Gate("evidence-complete", True, f"evidence {', '.join(sorted(have)) or 'none'} covers what {environment} requires"))
    return Verdict(tuple(gates))


def automatic_evidence(state: ProjectState, version: str, environment: str) -> list[dict[str, Any]]:
    """Evidence the promotion's own test steps recorded (smoke tests, system tests)."""
    return [e for e in state.environments[environment].evidence if e.get("version") == version]


def rejection_verdict(config: Config, state: ProjectState, release: Release, environment: str, actor: Person, changes: Sequence[str]) -> Verdict:
    # A rejection only ever stops a release, so it is recorded even while the ledger does not verify.
    gates = [role_gate(config, actor, "reject", environment), ledger_gate(state, environment, protected=False)]
    known = {c["id"] for c in release.changes}
    unknown = [c for c in changes if c not in known]
    if unknown:
        gates.append(Gate("changes-exist", False, f"{release.version} has no change {unknown[0]}; its changes: {', '.join(sorted(known))}"))
    tried = (release.version, environment) in state.promoted
    if not tried:
        gates.append(Gate("was-tested", False, f"{release.version} was never promoted to {environment}, so it cannot be judged there"))
    return Verdict(tuple(gates))


def approval_verdict(
    config: Config, state: ProjectState, release: Release, environment: str, actor: Person, validity: timedelta
) -> Verdict:
    env = config.environment(environment)
    policy = env.approval_policy() or ApprovalConfig()  # approving where none is required still follows the defaults
    gates = [
        role_gate(config, actor, "approve", environment), ledger_gate(state, environment, env.protected),
        config_gate(state, environment, env.protected), *authority_note(state, environment), _not_rejected(state, release),
    ]
    if policy.separation_of_duties:
        own = actor.key == state.built_by_key.get(release.version)
        why = f"{actor.name} built {release.version} (with the same key) and may not approve it; another change manager must"
        gates.append(Gate("separation-of-duties", not own, why if own else f"{actor.name} did not build {release.version}"))
    limit = parse_duration(policy.max_validity)
    fits = validity <= limit
    gates.append(Gate("validity", fits, f"valid for {validity}" if fits else f"an approval may last at most {policy.max_validity}; shorten --expires"))
    gates.append(_order(config, state, release, environment))
    return Verdict(tuple(gates))


def parse_duration(text: str) -> timedelta:
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1], text[-1:]
    if not number.isdigit() or unit not in units or int(number) < 1:
        raise ValueError(f"{text!r} is not a duration like 30m, 12h, 7d or 2w")
    return timedelta(**{units[unit]: int(number)})


def revise_verdict(
    config: Config, state: ProjectState, release: Release, actor: Person, drop: Sequence[str], new_version: str, now: datetime
) -> Verdict:
    gates = [role_gate(config, actor, "build")]
    changes = {c["id"]: c for c in release.changes}
    unknown = [c for c in drop if c not in changes]
    if unknown:
        gates.append(Gate("changes-exist", False, f"{release.version} has no change {unknown[0]}; its changes: {', '.join(sorted(changes))}"))
    rejected = {c for r in state.rejections.get(release.version, []) for c in (r.changes or tuple(changes))}
    unrejected = [c for c in drop if c in changes and c not in rejected]
    gates.append(Gate("rejected-first", not unrejected, "every dropped change was rejected" if not unrejected
                      else f"{unrejected[0]} was not rejected; record `relpromote reject {release.version} --env ENV --change {unrejected[0]}` first"))
    uncommitted = [c for c in drop if c in changes and not changes[c].get("commits")]
    if uncommitted:
        gates.append(Gate("revertible", False, f"change {uncommitted[0]} lists no commits, so it cannot be reverted in source; add them to the manifest"))
    kept = [c for c in changes if c not in drop]
    if not kept:
        gates.append(Gate("something-left", False, "dropping every change leaves nothing to release"))
    if new_version in state.releases:
        gates.append(Gate("new-version", False, f"{new_version} already exists; choose a new version"))
    planned = release.manifest.get("planned_release")
    if planned:
        deadline = datetime.fromisoformat(str(planned)).replace(tzinfo=now.tzinfo) - parse_duration(config.source.revise.deadline)
        late = now > deadline
        gates.append(Gate("deadline", not late, f"changes may be dropped until {deadline:%Y-%m-%d %H:%M}" if not late
                          else f"too late to drop changes: the deadline was {deadline:%Y-%m-%d %H:%M}, "
                          f"{config.source.revise.deadline} before the planned release on {planned}"))
    else:
        gates.append(Gate("deadline", True, "the release plans no date, so no deadline applies"))
    return Verdict(tuple(gates))


def ledger_gate(state: ProjectState, environment: str, protected: bool) -> Gate:
    """Entries that do not verify never count; while there are any, a protected environment refuses.

    Elsewhere the gates decide on the entries that verify and name the ones they ignore, so a forged
    or damaged row cannot stop QA's work, but it can never be what lets a release reach production.
    """
    if not state.ignored:
        return Gate("ledger", True, f"every entry verifies (head #{state.head[0]})")
    shown = "; ".join(problem.line() for problem in state.ignored[:3])
    more = f" and {len(state.ignored) - 3} more" if len(state.ignored) > 3 else ""
    if protected:
        return Gate("ledger", False, f"{environment} is protected and {len(state.ignored)} ledger entries do not verify ({shown}{more}); "
                    "see `relpromote audit verify` and restore the ledger from a verified copy")
    return Gate("ledger", True, f"ignoring {len(state.ignored)} ledger entries that do not verify ({shown}{more})")


def authority_gate(state: ProjectState, environment: str) -> list[Gate]:
    """Where an approved authority is required (authority.require_approval), the config deciding now must be the
    authority in force: the root trusted on first use, or a change an approver of the one before it approved."""
    status = state.authority
    if status is None or environment not in status.required:
        return []
    if not status.approved:
        return [Gate("authority", False, f"{environment} requires an approved authority: {status.unapproved_reason()}")]
    force = status.in_force
    if force is None:
        reason = f"the config's authority {status.current[:12]} becomes the root on its first use (trusted on first use)"
    else:
        how = "the root, trusted on first use" if force.root else f"approved by {force.by}"
        reason = f"the config is the authority in force {force.digest[:12]} ({how}, #{force.seq})"
    if status.unapproved:
        shown = "; ".join(problem.line() for problem in status.unapproved[:2])
        more = f" and {len(status.unapproved) - 2} more" if len(status.unapproved) > 2 else ""
        reason += f"; not counted here, made under an authority never approved: {shown}{more}"
    return [Gate("authority", True, reason)]


def authority_note(state: ProjectState, environment: str) -> list[Gate]:
    """A decision is recorded whatever the authority; where one must be approved, say when it will count."""
    status = state.authority
    if status is None or environment not in status.required or status.approved:
        return []
    return [Gate("authority", True, f"recorded, but it counts in {environment} only once the authority is approved: "
                 f"{status.unapproved_reason()}")]


def _left_out(state: ProjectState, environment: str, kind: str) -> str:
    status = state.authority
    if status is None or environment not in status.required:
        return ""
    left = [problem for problem in status.unapproved if problem.reason.startswith(f"{kind} by ")]
    return f"; not counted: {left[-1].line()}" if left else ""


def config_gate(state: ProjectState, environment: str, protected: bool) -> Gate:
    """Who may do what changes only through a committed config: a protected environment refuses a
    config that differs from the project's commit (people, roles, approvals and freezes live there)."""
    record = state.config_record
    if not record:
        return Gate("committed", True, "the config's commit was not looked up")
    commit = str(record.get("commit") or "")
    if record.get("committed"):
        return Gate("committed", True, f"the config is as committed in {commit[:12]}")
    where = f"differs from commit {commit[:12]}" if commit else "is not in a git repository with a commit"
    if not protected:
        return Gate("committed", True, f"the config {where} (recorded; {environment} is not protected)")
    return Gate("committed", False, f"{environment} is protected and the config (relpromote.yml) {where}; "
                "commit it: who may do what changes only through a committed config")


# The act each kind of entry records: its signer must have held a role allowed to do it.
ENTRY_ACTS: dict[str, Act] = {
    events.RELEASE_BUILT: "build",
    events.RELEASE_REVISED: "build",
    events.PROMOTION_FINISHED: "promote",
    events.PROMOTION_STARTED: "promote",
    events.VERDICT_ACCEPTED: "accept",
    events.VERDICT_REJECTED: "reject",
    events.APPROVAL_GRANTED: "approve",
    events.ROLLBACK_FINISHED: "rollback",
    events.ROLLBACK_STARTED: "rollback",
    events.LOCK_RELEASED: "lock_release",
    events.REFRESH_FINISHED: "refresh",
    events.HOSTS_TRUSTED: "promote",  # pinning an environment's host keys: who may change its hosts
}

ConfigAt = Callable[[str], "Config | str | None"]
"""The committed config at a commit of the project, or why there is none (not in the history);
None when that config cannot be read any more (the current config decides)."""


def entry_authority(config: Config, entry: Entry, config_at: ConfigAt | None = None, cache: dict[str, Config | str | None] | None = None) -> str | None:
    """Why the entry's signer could not make this decision, or None when they could.

    The config that decides is the one the entry recorded: its commit's config when it was committed
    then, else the current one. A recorded commit that is not in the project's history never counts.
    """
    act = ENTRY_ACTS.get(entry.kind)
    if act is None:
        return None
    governing, where = config, "the current config"
    found = _recorded_config(entry, config_at, {} if cache is None else cache)
    commit = str(entry.payload["config"]["commit"]) if found is not None else ""
    if isinstance(found, str):
        return f"recorded under config commit {commit[:12]}, which {found}"
    if isinstance(found, Config):
        governing, where = found, f"the config of commit {commit[:12]}"
    environment = None
    if act != "build":
        environment = entry.payload.get("environment")
        if not isinstance(environment, str) or environment not in governing.environments:
            return None  # an environment the config no longer has decides nothing
    person = governing.person_by_key(entry.public_key)
    if person is None:
        return f"{entry.actor}'s key is not among the people of {where}"
    roles = allowed_roles(governing, act, environment)
    if set(person.roles) & set(roles):
        return None
    held = ", ".join(person.roles) or "no roles"
    place = f" in {environment}" if environment else ""
    return f"{entry.actor} ({held}) could not {act.replace('_', ' ')}{place} under {where}; allowed roles: {', '.join(roles)}"


def _recorded_config(entry: Entry, config_at: ConfigAt | None, cache: dict[str, Config | str | None]) -> Config | str | None:
    """The committed config the entry was made under; a reason when its commit is unknown; None when the
    entry records none, was made under an uncommitted config, or its config can no longer be read."""
    stamp = entry.payload.get("config")
    if config_at is None or not isinstance(stamp, dict) or not isinstance(stamp.get("commit"), str):
        return None
    commit = stamp["commit"]
    if commit not in cache:
        cache[commit] = config_at(commit)
    found = cache[commit]
    if isinstance(found, str):
        return found
    return found if stamp.get("committed") else None


def trusted_state(
    entries: Iterable[Entry], config: Config, config_at: ConfigAt | None = None, signature_ok: SignatureCheck = verify_signature
) -> ProjectState:
    """The project's state from the entries that count: each verified (sequence, link, hash, signature,
    the signer's key is the key the config gives the named person, retired people included) and made
    by someone whose role allowed it. The others are kept in `state.ignored`, with their reasons.

    `signature_ok` checks a signature; a memo of the signatures this user already verified may stand in for it
    (relpromote.adapters.verified_cache): every other check of every entry runs whatever it says."""
    rows = list(entries)
    cache: dict[str, Config | str | None] = {}

    def name_then(entry: Entry) -> str | None:
        governing = _recorded_config(entry, config_at, cache)
        person = governing.person_by_key(entry.public_key) if isinstance(governing, Config) else None
        return person.name if person else None

    report = verify_chain(rows, {person.key: person.name for person in config.people}, name_then, signature_ok)
    problems = list(report.problems)
    for entry in rows:
        if entry.seq not in report.bad_seqs:
            why = entry_authority(config, entry, config_at, cache)
            if why is not None:
                problems.append(Problem(entry.seq, why))
    digests: dict[int, str] = {}

    def digest_of(entry: Entry) -> str | None:
        """The authority the entry was made under: its committed config's (what judged its role), else what it recorded."""
        governing = _recorded_config(entry, config_at, cache)
        if isinstance(governing, Config):
            if id(governing) not in digests:
                digests[id(governing)] = authority_digest(authority_document(governing))
            return digests[id(governing)]
        stamp = entry.payload.get("config")
        recorded = stamp.get("authority") if isinstance(stamp, dict) else None
        return recorded if isinstance(recorded, str) else None

    authority = authority_status(rows, config, frozenset(p.seq for p in problems), digest_of)
    problems += authority.problems
    state = fold(rows, config, problems)
    state.authority = authority
    if authority.required and authority.unapproved:
        # What the environments requiring an approved authority decide on: the same, without those decisions.
        view = fold(rows, config, [*problems, *authority.unapproved])
        view.ignored, view.authority = list(state.ignored), authority
        state.required_view = view
    return state


def committed_gate(environment: str, protected: bool, commit: str | None, dirty: Sequence[str]) -> Gate:
    """A protected environment is only changed from committed playbooks, roles and inventory."""
    if not dirty:
        return Gate("committed", True, f"project at commit {commit[:12] if commit else '?'} with no uncommitted changes")
    if not protected:
        return Gate("committed", True, f"uncommitted changes in {', '.join(dirty[:3])} (recorded; {environment} is not protected)")
    return Gate("committed", False, f"{environment} is protected and the project has uncommitted changes in {', '.join(dirty[:3])}; commit them")
