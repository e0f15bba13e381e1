"""What the ledger says now: the releases and where each environment stands, folded from entries.

Pure: a function of the ledger's entries and the config, so status can be recomputed anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relpromote import events
from relpromote.errors import BadInput
from relpromote.ledger import GENESIS_HASH, Entry, Problem
from relpromote.release import Release

if TYPE_CHECKING:  # only types: `status` reads a checkpoint of the state without loading the config's schema
    from relpromote.authority import AuthorityStatus
    from relpromote.config import Config


@dataclass
class EnvironmentState:
    name: str
    current: str | None = None  # version live on the hosts, as far as the ledger knows
    current_digest: str | None = None
    since: str | None = None
    by: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)  # recorded by promotions' automated tests
    live_history: list[str] = field(default_factory=list)  # versions in the order they went live here
    attention: list[str] = field(default_factory=list)  # hosts a failed rollback left for a person
    withdrawn: set[str] = field(default_factory=set)  # versions rolled back from here: never a default rollback target
    last_refresh: dict[str, Any] | None = None  # the latest data refresh into this environment
    last_verify: dict[str, Any] | None = None  # the latest `relpromote verify`: when, by whom, which hosts drifted
    # Runs that recorded their start (promotion.started, rollback.started) and not their end, by lock id, plus
    # finished runs that could not say what some hosts run: the hosts named may not run `current`.
    in_doubt: dict[str, dict[str, Any]] = field(default_factory=dict)

    def went_live(self, version: str, digest: str, at: str, by: str) -> None:
        self.current, self.current_digest, self.since, self.by = version, digest, at, by
        self.live_history.append(version)
        self.attention = []

    @property
    def hosts_in_doubt(self) -> list[str]:
        """Hosts whose `current` may differ from the recorded release (a run never said where it left them)."""
        return sorted({host for run in self.in_doubt.values() for host in run.get("hosts") or []})

    @property
    def drifted(self) -> list[str]:
        """Hosts the latest verification found off the record, unless a promotion or rollback came after it."""
        verified = self.last_verify or {}
        after = all(run["seq"] < verified.get("seq", 0) for run in self.history)
        return list(verified.get("drifted") or []) if after else []

    def as_data(self) -> dict[str, Any]:
        return {
            "environment": self.name, "current": self.current, "digest": self.current_digest, "since": self.since, "by": self.by,
            "needs_a_person": self.attention, "last_refresh": self.last_refresh, "last_verify": self.last_verify, "drifted": self.drifted,
            "in_doubt": list(self.in_doubt.values()), "hosts_in_doubt": self.hosts_in_doubt,
        }


@dataclass(frozen=True)
class Acceptance:
    version: str
    environment: str
    actor: str
    at: str
    evidence: tuple[dict[str, Any], ...]
    note: str


@dataclass(frozen=True)
class Rejection:
    version: str
    environment: str
    actor: str
    at: str
    changes: tuple[str, ...]  # empty: the whole release
    reason: str


@dataclass(frozen=True)
class Approval:
    version: str
    digest: str
    environment: str
    ticket: str
    approver: str
    at: str
    expires_at: str
    approver_key: str = ""  # separation of duties compares keys: a rename does not make another person
    plan: dict[str, Any] = field(default_factory=dict)  # what was approved: hosts, config and inventory, playbooks, roles


@dataclass(frozen=True)
class ParityCheck:
    """The last `relpromote parity ENVIRONMENT REFERENCE` (the parity gate reads it)."""

    environment: str
    reference: str
    at: str
    by: str
    within: bool
    summary: str


@dataclass
class ProjectState:
    releases: dict[str, Release]
    environments: dict[str, EnvironmentState]
    promoted: set[tuple[str, str]] = field(default_factory=set)  # (version, environment) that went live
    accepted: dict[tuple[str, str], Acceptance] = field(default_factory=dict)
    rejections: dict[str, list[Rejection]] = field(default_factory=dict)
    approvals: list[Approval] = field(default_factory=list)
    failed_verification: dict[str, str] = field(default_factory=dict)  # version -> why it was rolled back
    built_by_key: dict[str, str] = field(default_factory=dict)  # version -> the builder's public key
    # Entries that do not count (failed signature, link, signer's key or role, or could not be folded):
    # gates ignore them and say so; a protected environment refuses while there are any.
    ignored: list[Problem] = field(default_factory=list)
    head: tuple[int, str] = (0, GENESIS_HASH)  # the last stored entry's sequence number and hash
    # The config deciding now: its git commit, sha256, and whether it is exactly as committed there.
    config_record: dict[str, Any] = field(default_factory=dict)
    parity: dict[tuple[str, str], ParityCheck] = field(default_factory=dict)  # (environment, reference) -> last check
    # Which authority (people, roles, policy) is in force, and the decisions made under one never approved in time
    # (relpromote.authority); `required_view` is this state without those decisions, what the environments that
    # require an approved authority decide on (None: no decision was left out).
    authority: AuthorityStatus | None = None
    required_view: ProjectState | None = None

    def for_environment(self, environment: str) -> ProjectState:
        """The state the gates of `environment` decide on."""
        if self.required_view is not None and self.authority is not None and environment in self.authority.required:
            return self.required_view
        return self

    def release(self, version: str) -> Release:
        if version not in self.releases:
            known = ", ".join(self.releases) or "none yet"
            raise BadInput(f"unknown version {version}; built releases: {known} (see `relpromote releases`)")
        return self.releases[version]

    def where(self, version: str) -> list[str]:
        return [env.name for env in self.environments.values() if env.current == version]

    def unusable(self, version: str) -> str | None:
        """Why this release may never be promoted again (rejected, failed verification), or None."""
        if version in self.failed_verification:
            return f"failed verification ({self.failed_verification[version]})"
        if self.rejections.get(version):
            last = self.rejections[version][-1]
            return f"was rejected in {last.environment} ({last.reason})"
        return None


def _release_built(state: ProjectState, entry: Entry) -> None:
    p = entry.payload
    state.releases[p["version"]] = Release(
        version=p["version"],
        digest=p["digest"],
        size=p["size"],
        built_by=entry.actor,
        built_at=entry.recorded_at,
        manifest=p["manifest"],
        source=p.get("source", {}),
        files_digest=(p.get("files") or {}).get("digest"),
        files_rules=(p.get("files") or {}).get("rules"),
    )
    state.built_by_key[p["version"]] = entry.public_key


def _run_started(state: ProjectState, entry: Entry) -> None:
    """Intent before effect: until the run's end is recorded, the hosts it names may run anything."""
    p = entry.payload
    env = state.environments.get(p["environment"])
    if env is None:
        return
    env.in_doubt[str(p["lock_id"])] = {
        "run": entry.kind.split(".")[0], "version": p.get("version"), "lock_id": str(p["lock_id"]), "seq": entry.seq,
        "at": entry.recorded_at, "by": entry.actor, "hosts": sorted(p.get("hosts") or []), "limit": p.get("limit"),
        "why": "it never recorded its end",
    }


def _run_ended(env: EnvironmentState, entry: Entry) -> None:
    """A run's end: its own start is settled, and so are the earlier runs in doubt that it brought to a recorded state
    (`settles`); hosts it could not establish (`unsettled`) stay in doubt."""
    p = entry.payload
    lock_id = str(p.get("lock_id") or "")
    for settled in [lock_id, *(str(i) for i in p.get("settles") or [])]:
        env.in_doubt.pop(settled, None)
    unsettled = sorted(p.get("unsettled") or [])
    if unsettled:
        env.in_doubt[lock_id or f"#{entry.seq}"] = {
            "run": entry.kind.split(".")[0], "version": p.get("version"), "lock_id": lock_id, "seq": entry.seq,
            "at": entry.recorded_at, "by": entry.actor, "hosts": unsettled, "limit": p.get("limit"),
            "why": "it could not tell what these hosts run",
        }


def _promotion_finished(state: ProjectState, entry: Entry) -> None:
    p = entry.payload
    env = state.environments.get(p["environment"])
    if env is None or p.get("check"):
        return
    _run_ended(env, entry)
    env.history.append({"seq": entry.seq, "kind": entry.kind, "version": p["version"], "result": p["result"], "at": entry.recorded_at})
    if p["result"] == "succeeded" and not p.get("limit"):
        env.went_live(p["version"], p["digest"], entry.recorded_at, entry.actor)
        state.promoted.add((p["version"], p["environment"]))
    if p.get("verification_failed"):
        state.failed_verification[p["version"]] = f"in {p['environment']}, rolled back"
    rollback = p.get("rollback") or {}
    if rollback and not rollback.get("succeeded"):
        env.attention = list(rollback.get("need_a_person", []))
    env.evidence.extend({**e, "version": p["version"]} for e in p.get("evidence", []))


def _accepted(state: ProjectState, entry: Entry) -> None:
    p = entry.payload
    state.accepted[(p["version"], p["environment"])] = Acceptance(
        p["version"], p["environment"], entry.actor, entry.recorded_at, tuple(p.get("evidence", [])), p.get("note", "")
    )


def _rejected(state: ProjectState, entry: Entry) -> None:
    p = entry.payload
    state.rejections.setdefault(p["version"], []).append(
        Rejection(p["version"], p["environment"], entry.actor, entry.recorded_at, tuple(p.get("changes", [])), p["reason"])
    )


def _approved(state: ProjectState, entry: Entry) -> None:
    p = entry.payload
    state.approvals.append(
        Approval(p["version"], p["digest"], p["environment"], p["ticket"], entry.actor, entry.recorded_at, p["expires_at"],
                 entry.public_key, dict(p.get("plan") or {}))
    )


def _rolled_back(state: ProjectState, entry: Entry) -> None:
    p = entry.payload
    env = state.environments.get(p["environment"])
    if env is None:
        return
    env.history.append({"seq": entry.seq, "kind": entry.kind, "version": p["version"], "result": p["result"], "at": entry.recorded_at})
    _run_ended(env, entry)
    if p.get("reconcile"):
        # Hosts brought back to the recorded release: nothing new went live, and nothing is withdrawn.
        if p["result"] == "succeeded":
            env.attention = []
        elif p.get("need_a_person"):
            env.attention = list(p["need_a_person"])
        return
    if p["result"] == "succeeded":
        if p.get("from_version") and p["from_version"] != p["version"]:  # not when hosts that drifted came back to it
            env.withdrawn.add(p["from_version"])
        env.went_live(p["version"], p["digest"], entry.recorded_at, entry.actor)
    else:
        # A rollback that failed on some hosts may have switched others away from the recorded release, which stays
        # recorded: those run what the ledger does not say, and need a person (or reconcile) as much as the failed ones.
        off_record = [h["host"] for h in p.get("hosts") or [] if isinstance(h, dict) and h.get("switched")
                      and str(h.get("now_runs") or "") != (env.current or "")]
        if p.get("need_a_person") or "lock_id" not in p or off_record:
            env.attention = sorted({*p.get("need_a_person", []), *off_record})


def _refreshed(state: ProjectState, entry: Entry) -> None:
    p = entry.payload
    env = state.environments.get(p["environment"])
    if env is not None:
        env.last_refresh = {"at": entry.recorded_at, "by": entry.actor, "result": p["result"], "snapshot_time": p.get("snapshot_time")}


def _refresh_started(state: ProjectState, entry: Entry) -> None:
    # Stays "in_doubt" unless the run's refresh.finished follows: a killed refresh is visible as such.
    env = state.environments.get(entry.payload["environment"])
    if env is not None:
        env.last_refresh = {"at": entry.recorded_at, "by": entry.actor, "result": "in_doubt", "snapshot_time": None}


def _parity_checked(state: ProjectState, entry: Entry) -> None:
    p = entry.payload
    state.parity[(p["environment"], p["reference"])] = ParityCheck(
        p["environment"], p["reference"], entry.recorded_at, entry.actor, p["result"] == "within", str(p.get("summary", "")))


def _verified(state: ProjectState, entry: Entry) -> None:
    p = entry.payload
    env = state.environments.get(p["environment"])
    if env is not None:
        env.last_verify = {"seq": entry.seq, "at": entry.recorded_at, "by": entry.actor, "result": p["result"],
                           "drifted": list(p.get("drifted") or []), "reason": p.get("reason")}


FOLDS: dict[str, Callable[[ProjectState, Entry], None]] = {
    events.RELEASE_BUILT: _release_built,
    events.PROMOTION_FINISHED: _promotion_finished,
    events.VERDICT_ACCEPTED: _accepted,
    events.VERDICT_REJECTED: _rejected,
    events.APPROVAL_GRANTED: _approved,
    events.ROLLBACK_FINISHED: _rolled_back,
    events.REFRESH_FINISHED: _refreshed,
    events.REFRESH_STARTED: _refresh_started,
    events.PARITY_CHECKED: _parity_checked,
    events.PROMOTION_STARTED: _run_started,
    events.ROLLBACK_STARTED: _run_started,
    events.VERIFY_FINISHED: _verified,
}


def fold(entries: Iterable[Entry], config: Config, ignore: Iterable[Problem] = ()) -> ProjectState:
    """Fold the entries that count. `ignore` names the entries that do not (see
    relpromote.policy.trusted_state); an entry whose payload lacks what its kind needs is ignored too."""
    state = ProjectState({}, {name: EnvironmentState(name) for name in config.promotion_path})
    state.ignored.extend(ignore)
    skipped = {problem.seq for problem in state.ignored}
    for entry in entries:
        state.head = (entry.seq, entry.hash)
        handler = FOLDS.get(entry.kind)
        if handler is None or entry.seq in skipped:
            continue
        try:
            handler(state, entry)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            state.ignored.append(Problem(entry.seq, f"{entry.kind} entry has the wrong shape ({type(exc).__name__}: {exc})"))
    state.ignored.sort(key=lambda problem: problem.seq)
    return state
