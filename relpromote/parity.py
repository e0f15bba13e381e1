"""Parity: how far one environment is from mirroring another, from facts its hosts reported.

Pure: the facts come in (gathered by roles/parity_facts through relpromote.usecases.parity), the
differences come out, per group of hosts. A group of ENV_A mirrors the same group of ENV_B when,
for every fact that counts, each value a host of A has is one a host of B has too, and the other
way round (memory within the configured tolerance). Host names and addresses never count; how many
hosts a group has does not either (a mirror may be smaller). Configuration values are only ever
seen as salted hashes, so a report can be shown, logged and recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relpromote.config import ParityConfig

IGNORED_GROUPS = ("all", "ungrouped")
MISSING = "(missing)"  # a package not installed, a config key not set, a fact the host could not report

# How each fact reads in a report.
LABELS = {
    "os": "operating system", "kernel": "kernel", "cpu_count": "CPU count", "memory": "memory (MiB)", "packages": "package",
    "python": "Python", "runtime": "app runtime", "config": "config key", "ports": "listening ports", "hostname": "host name",
    "release": "live release",
}


@dataclass(frozen=True)
class HostFacts:
    """What one host reported: its groups and its facts (the shape roles/parity_facts publishes)."""

    host: str
    groups: tuple[str, ...]
    facts: Mapping[str, Any]
    error: str = ""  # the facts could not be gathered (unreachable, failed): why

    @classmethod
    def from_published(cls, host: str, published: Mapping[str, Any] | None, error: str = "") -> HostFacts:
        data = dict(published or {})
        groups = tuple(str(g) for g in data.pop("groups", []) or [] if str(g) not in IGNORED_GROUPS)
        return cls(host, groups or ("ungrouped",), data, error)


@dataclass(frozen=True)
class Difference:
    group: str
    fact: str
    item: str  # a package's or config key's name; "" for single-valued facts
    values: Mapping[str, Mapping[str, tuple[str, ...]]]  # environment -> value -> hosts that have it
    off: tuple[str, ...]  # hosts of the checked environment whose value the reference has nowhere

    def what(self) -> str:
        label = LABELS.get(self.fact, self.fact)
        return f"{label} {self.item}" if self.item else label

    def line(self, environment: str, reference: str) -> str:
        def side(env: str) -> str:
            shown = self.values.get(env) or {}
            return ", ".join(f"{value} ({', '.join(hosts)})" for value, hosts in shown.items()) or "no hosts"
        return f"{self.group}: {self.what()}: {environment} {side(environment)}; {reference} {side(reference)}"

    def as_data(self) -> dict[str, Any]:
        return {"group": self.group, "fact": self.fact, "item": self.item, "what": self.what(),
                "values": {env: {value: list(hosts) for value, hosts in by.items()} for env, by in self.values.items()},
                "off_hosts": list(self.off)}


@dataclass(frozen=True)
class ParityReport:
    environment: str  # the one checked: does it mirror...
    reference: str  # ...this one?
    counted: tuple[str, ...]
    groups: tuple[str, ...]
    differences: tuple[Difference, ...]
    hosts: Mapping[str, tuple[str, ...]]  # environment -> hosts that reported
    unreachable: Mapping[str, str] = field(default_factory=dict)  # host -> why its facts are missing
    releases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # environment -> host -> "version (digest…)"

    @property
    def within(self) -> bool:
        return not self.differences and not self.unreachable

    @property
    def result(self) -> str:
        return "within" if self.within else "drifted"

    def summary(self) -> str:
        if self.within:
            return (f"{self.environment} mirrors {self.reference} within tolerance: {len(self.groups)} group{'s' if len(self.groups) != 1 else ''}, "
                    f"{', '.join(self.counted)} compared")
        parts = [f"{len(self.differences)} difference{'s' if len(self.differences) != 1 else ''}"]
        if self.unreachable:
            parts.append(f"facts missing from {', '.join(sorted(self.unreachable))}")
        first = self.differences[0].line(self.environment, self.reference) if self.differences else ""
        return f"{self.environment} does not mirror {self.reference}: {', '.join(parts)}" + (f"; {first}" if first else "")

    def as_data(self) -> dict[str, Any]:
        return {
            "environment": self.environment, "reference": self.reference, "result": self.result, "within": self.within,
            "counted": list(self.counted), "groups": list(self.groups),
            "differences": [d.as_data() for d in self.differences],
            "hosts": {env: list(hosts) for env, hosts in self.hosts.items()},
            "unreachable": dict(self.unreachable),
            "releases": {env: dict(by) for env, by in self.releases.items()},
        }


def port_allowed(port: int, ranges: Sequence[str]) -> bool:
    for text in ranges:
        low, _, high = text.partition("-")
        if int(low) <= port <= int(high or low):
            return True
    return False


def _items(fact: str, value: Any, settings: ParityConfig) -> dict[str, str]:
    """A fact as named items with comparable text values: one per package or config key, else one ("")."""
    if fact == "packages":
        wanted = [*settings.packages, *(f"python:{name}" for name in settings.python_packages)]
        have = value if isinstance(value, Mapping) else {}
        return {name: str(have.get(name) or MISSING) for name in wanted}
    if fact == "config":
        have = value if isinstance(value, Mapping) else {}
        return {str(key): str(digest if digest is not None else MISSING) for key, digest in have.items()}
    if fact == "ports":
        ports = sorted({int(p) for p in value or [] if port_allowed(int(p), settings.ports)})
        return {"": " ".join(map(str, ports)) or "none"}
    if fact == "release":
        if not isinstance(value, Mapping) or not value.get("version"):
            return {"": "none"}
        return {"": f"{value['version']} ({str(value.get('digest') or '?')[:12]})"}
    return {"": MISSING if value is None or value == "" else str(value)}


def _equal(fact: str, mine: str, theirs: str, settings: ParityConfig) -> bool:
    if mine == theirs:
        return True
    if fact == "memory":
        try:
            a, b = float(mine), float(theirs)
        except ValueError:
            return False
        return abs(a - b) <= b * settings.tolerance.memory_percent / 100
    return False


def _by_value(values: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    grouped: dict[str, list[str]] = {}
    for host, value in sorted(values.items()):
        grouped.setdefault(value, []).append(host)
    return {value: tuple(hosts) for value, hosts in grouped.items()}


def compare(
    environment: str, mine: Iterable[HostFacts], reference: str, theirs: Iterable[HostFacts], settings: ParityConfig,
) -> ParityReport:
    """Every counted difference between the hosts of `environment` and those of `reference`, per group."""
    a, b = list(mine), list(theirs)
    counted = tuple(fact for fact in settings.facts)
    unreachable = {f"{h.host}": h.error for h in (*a, *b) if h.error}
    groups_a = {g for h in a if not h.error for g in h.groups}
    groups_b = {g for h in b if not h.error for g in h.groups}
    wanted = set(settings.groups) if settings.groups else groups_a | groups_b
    differences: list[Difference] = []
    for group in sorted(wanted):
        hosts_a = [h for h in a if group in h.groups and not h.error]
        hosts_b = [h for h in b if group in h.groups and not h.error]
        if not hosts_a or not hosts_b:
            values = {environment: {"has hosts": tuple(h.host for h in hosts_a)} if hosts_a else {},
                      reference: {"has hosts": tuple(h.host for h in hosts_b)} if hosts_b else {}}
            differences.append(Difference(group, "group", "", values, tuple(h.host for h in hosts_a)))
            continue
        for fact in counted:
            items_a = {h.host: _items(fact, h.facts.get(fact), settings) for h in hosts_a}
            items_b = {h.host: _items(fact, h.facts.get(fact), settings) for h in hosts_b}
            names = sorted({name for items in (*items_a.values(), *items_b.values()) for name in items})
            for name in names:
                va = {host: items.get(name, MISSING) for host, items in items_a.items()}
                vb = {host: items.get(name, MISSING) for host, items in items_b.items()}
                off = tuple(sorted(host for host, value in va.items() if not any(_equal(fact, value, other, settings) for other in vb.values())))
                missing = [value for value in set(vb.values()) if not any(_equal(fact, mine, value, settings) for mine in va.values())]
                if off or missing:
                    differences.append(Difference(group, fact, name, {environment: _by_value(va), reference: _by_value(vb)}, off))
    releases = {env: {h.host: _items("release", h.facts.get("release"), settings)[""] for h in hosts if not h.error}
                for env, hosts in ((environment, a), (reference, b))}
    return ParityReport(
        environment, reference, counted, tuple(sorted(wanted)), tuple(differences),
        {environment: tuple(h.host for h in a), reference: tuple(h.host for h in b)}, unreachable, releases,
    )


def table(report: ParityReport) -> list[tuple[str, str, str, str]]:
    """Rows for a readable table: group, what, the checked environment's values, the reference's."""
    rows = []
    for difference in report.differences:
        def side(env: str, d: Difference = difference) -> str:
            return "; ".join(f"{value} ({', '.join(hosts)})" for value, hosts in (d.values.get(env) or {}).items()) or "no hosts"
        rows.append((difference.group, difference.what(), side(report.environment), side(report.reference)))
    for host, why in sorted(report.unreachable.items()):
        rows.append(("-", "facts not gathered", f"{host}: {why}", ""))
    return rows
