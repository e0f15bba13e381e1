"""relpromote.parity: the comparison core, on facts shaped as roles/parity_facts publishes them."""

from __future__ import annotations

from typing import Any

from relpromote.config import ParityConfig
from relpromote.parity import MISSING, HostFacts, compare, port_allowed, table

SETTINGS = ParityConfig(packages=["openssl", "libc6"], python_packages=["requests"], ports=["1-32767"])


def facts(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "groups": ["app"], "os": "debian 12", "kernel": "6.1.0-18-amd64", "cpu_count": 4, "memory": 8000,
        "packages": {"openssl": "3.0.11-1~deb12u2", "libc6": "2.36-9", "python:requests": "2.31.0"},
        "python": "3.11.2", "runtime": "Python 3.11.2", "config": {"app.env:DB_URL": "a1b2", "app.env:WORKERS": "c3d4"},
        "ports": [22, 8080, 45123], "hostname": "x", "release": {"version": "1.0.0", "digest": "d" * 64},
    }
    base.update(changes)
    return base


def hosts(prefix: str, *published: dict[str, Any]) -> list[HostFacts]:
    return [HostFacts.from_published(f"{prefix}-{n + 1}", data) for n, data in enumerate(published)]


def test_the_same_facts_are_within_whatever_the_host_names_and_releases() -> None:
    report = compare("deployment", hosts("deploy", facts(hostname="d1"), facts(hostname="d2", release=None)),
                     "production", hosts("prod", facts(hostname="p1"), facts(hostname="p2"), facts(hostname="p3")), SETTINGS)
    assert report.within and report.result == "within" and report.differences == () and report.groups == ("app",)
    assert report.releases["deployment"] == {"deploy-1": "1.0.0 (dddddddddddd)", "deploy-2": "none"}
    assert "mirrors production within tolerance: 1 group," in report.summary()


def test_one_package_version_on_one_host_is_exactly_the_difference() -> None:
    drifted = facts(packages={"openssl": "3.0.13-1~deb12u1", "libc6": "2.36-9", "python:requests": "2.31.0"})
    report = compare("deployment", hosts("deploy", facts(), drifted), "production", hosts("prod", facts(), facts()), SETTINGS)
    assert not report.within and len(report.differences) == 1
    difference = report.differences[0]
    assert (difference.group, difference.fact, difference.item, difference.off) == ("app", "packages", "openssl", ("deploy-2",))
    assert difference.values == {"deployment": {"3.0.11-1~deb12u2": ("deploy-1",), "3.0.13-1~deb12u1": ("deploy-2",)},
                                 "production": {"3.0.11-1~deb12u2": ("prod-1", "prod-2")}}
    assert report.summary().startswith("deployment does not mirror production: 1 difference; app: package openssl: deployment")
    assert table(report) == [("app", "package openssl", "3.0.11-1~deb12u2 (deploy-1); 3.0.13-1~deb12u1 (deploy-2)",
                              "3.0.11-1~deb12u2 (prod-1, prod-2)")]


def test_a_value_production_has_and_the_mirror_lacks_is_a_difference_too() -> None:
    report = compare("deployment", hosts("deploy", facts()), "production", hosts("prod", facts(), facts(python="3.11.4")), SETTINGS)
    assert [(d.fact, d.off) for d in report.differences] == [("python", ())]


def test_a_missing_package_and_an_unlisted_one() -> None:
    lacking = facts(packages={"openssl": "3.0.11-1~deb12u2", "python:requests": "2.31.0", "nginx": "1.22"})
    report = compare("deployment", hosts("deploy", lacking), "production", hosts("prod", facts()), SETTINGS)
    assert [(d.item, dict(d.values["deployment"])) for d in report.differences] == [("libc6", {MISSING: ("deploy-1",)})]


def test_memory_within_the_tolerance_counts_as_equal() -> None:
    production = hosts("prod", facts(memory=8000))
    assert compare("deployment", hosts("deploy", facts(memory=7300)), "production", production, SETTINGS).within
    assert compare("deployment", hosts("deploy", facts(memory=8790)), "production", production, SETTINGS).within
    beyond = compare("deployment", hosts("deploy", facts(memory=7100)), "production", production, SETTINGS)
    assert [(d.fact, d.off) for d in beyond.differences] == [("memory", ("deploy-1",))]
    strict = SETTINGS.model_copy(update={"tolerance": SETTINGS.tolerance.model_copy(update={"memory_percent": 0.0})})
    assert not compare("deployment", hosts("deploy", facts(memory=7999)), "production", production, strict).within


def test_config_keys_are_compared_by_hash_and_a_missing_key_is_named() -> None:
    changed = facts(config={"app.env:DB_URL": "ffff", "app.env:WORKERS": "c3d4", "app.env:DEBUG": "0000"})
    report = compare("deployment", hosts("deploy", changed), "production", hosts("prod", facts()), SETTINGS)
    assert [(d.item, list(d.values["deployment"]), list(d.values["production"])) for d in report.differences] == [
        ("app.env:DB_URL", ["ffff"], ["a1b2"]), ("app.env:DEBUG", ["0000"], [MISSING])]


def test_ports_outside_the_configured_ranges_do_not_count() -> None:
    report = compare("deployment", hosts("deploy", facts(ports=[22, 8080, 51000])), "production", hosts("prod", facts()), SETTINGS)
    assert report.within
    other = compare("deployment", hosts("deploy", facts(ports=[22, 8081])), "production", hosts("prod", facts()), SETTINGS)
    assert [(d.fact, dict(d.values["deployment"])) for d in other.differences] == [("ports", {"22 8081": ("deploy-1",)})]
    assert port_allowed(22, ["22"]) and port_allowed(8080, ["8000-8999"]) and not port_allowed(9000, ["22", "8000-8999"])


def test_only_the_counted_facts_count() -> None:
    settings = SETTINGS.model_copy(update={"facts": ["packages"]})
    report = compare("deployment", hosts("deploy", facts(cpu_count=2, kernel="5.10", hostname="other")), "production",
                     hosts("prod", facts()), settings)
    assert report.within and report.counted == ("packages",)
    counted = SETTINGS.model_copy(update={"facts": ["release"]})
    newer = compare("deployment", hosts("deploy", facts(release={"version": "1.1.0", "digest": "e" * 64})), "production",
                    hosts("prod", facts()), counted)
    assert [(d.fact, list(d.values["deployment"])) for d in newer.differences] == [("release", ["1.1.0 (eeeeeeeeeeee)"])]


def test_groups_are_compared_group_by_group_and_a_missing_group_is_a_difference() -> None:
    production = [*hosts("prod", facts()), HostFacts.from_published("prod-db-1", facts(groups=["db"], cpu_count=16))]
    deployment = [*hosts("deploy", facts()), HostFacts.from_published("deploy-db-1", facts(groups=["db"], cpu_count=4))]
    report = compare("deployment", deployment, "production", production, SETTINGS)
    assert [(d.group, d.fact, d.off) for d in report.differences] == [("db", "cpu_count", ("deploy-db-1",))]
    no_db = compare("deployment", hosts("deploy", facts()), "production", production, SETTINGS)
    assert [(d.group, d.fact) for d in no_db.differences] == [("db", "group")]
    only_app = compare("deployment", hosts("deploy", facts()), "production", production, SETTINGS.model_copy(update={"groups": ["app"]}))
    assert only_app.within


def test_a_host_without_facts_means_the_check_did_not_pass() -> None:
    report = compare("deployment", [*hosts("deploy", facts()), HostFacts("deploy-2", (), {}, "unreachable: timeout")],
                     "production", hosts("prod", facts()), SETTINGS)
    assert not report.within and report.differences == () and report.unreachable == {"deploy-2": "unreachable: timeout"}
    assert "facts missing from deploy-2" in report.summary()
    assert table(report) == [("-", "facts not gathered", "deploy-2: unreachable: timeout", "")]
