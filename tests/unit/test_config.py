from __future__ import annotations

from pathlib import Path

import pytest

from relpromote.config import parse_config
from relpromote.errors import BadInput, ExitCode
from relpromote.project import config_path_from

BASE = """\
project: shop
promotion_path: [qa, deployment, production]
environments:
  qa: {inventory: inventories/qa}
  deployment: {inventory: inventories/deployment}
  production: {inventory: inventories/production, protected: true}
"""


def problem(text: str) -> str:
    with pytest.raises(BadInput) as caught:
        parse_config(text, "relpromote.yml")
    assert caught.value.code == ExitCode.BAD_INPUT
    assert "\n" not in caught.value.message
    return caught.value.message


def test_valid_config_gives_the_path_and_defaults() -> None:
    config = parse_config(BASE, "relpromote.yml")
    assert config.promotion_path == ["qa", "deployment", "production"]
    assert config.previous_environment("production") == "deployment"
    assert config.previous_environment("qa") is None
    assert config.environment("qa").hosts == "app"
    assert config.environments["production"].protected


def test_unknown_key_names_file_key_and_suggests_the_fix() -> None:
    message = problem(BASE.replace("inventory: inventories/qa", "inventroy: inventories/qa"))
    assert message == "relpromote.yml: environments.qa.inventroy: unknown key; did you mean 'inventory'?"


def test_unknown_top_level_key_lists_allowed_keys() -> None:
    assert "foo: unknown key; allowed keys here:" in problem(BASE + "foo: 1\n")


def test_wrong_type() -> None:
    message = problem(BASE + "runs: {keep: many}\n")
    assert message.startswith("relpromote.yml: runs.keep:")
    assert "integer" in message


def test_environment_on_path_but_not_defined() -> None:
    message = problem(BASE.replace("[qa, deployment, production]", "[qa, staging, production]"))
    assert "promotion_path.1: 'staging' is not defined" in message


def test_defined_environment_missing_from_path() -> None:
    message = problem(BASE.replace("[qa, deployment, production]", "[qa, production]"))
    assert "environment 'deployment' is defined but not on the path" in message


def test_order_that_is_not_a_path() -> None:
    message = problem(BASE.replace("[qa, deployment, production]", "[qa, deployment, production, qa]"))
    assert "appears twice, so the order is not a path" in message


def test_malformed_yaml_names_the_line() -> None:
    assert problem("project: shop\nenvironments: [\n").startswith("relpromote.yml: line 3, column 1: malformed YAML")


def test_bad_public_key_line() -> None:
    message = problem(BASE + "people: [{name: alice, key: ssh-rsa AAAA}]\n")
    assert "people.0.key: not an ed25519 public key line" in message


def test_people_share_a_key() -> None:
    key = "ed25519:" + "A" * 43 + "="
    message = problem(BASE + f"people: [{{name: a, key: '{key}'}}, {{name: b, key: '{key}'}}]\n")
    assert "shared with another person" in message


def test_unknown_environment_lookup() -> None:
    config = parse_config(BASE, "relpromote.yml")
    with pytest.raises(BadInput, match="unknown environment 'prod'"):
        config.environment("prod")


def test_a_second_people_block_is_refused_naming_both_lines() -> None:
    key = "ed25519:" + "A" * 43 + "="
    other = "ed25519:" + "B" * 43 + "="
    text = BASE + f"people:\n  - {{name: alice, key: '{key}', roles: [qa]}}\n" + f"people:\n  - {{name: mallory, key: '{other}', roles: [change_manager]}}\n"
    assert problem(text) == "relpromote.yml: line 9: duplicate key 'people' (first on line 7); keep one and merge what the other says"


def test_duplicate_key_inside_an_environment() -> None:
    text = BASE.replace("protected: true}", "protected: true, protected: false}")
    assert "line 6: duplicate key 'protected'" in problem(text)


def test_merge_keys_may_be_overridden() -> None:
    text = BASE.replace("  qa: {inventory: inventories/qa}", "  qa: &base {inventory: inventories/qa}").replace(
        "deployment: {inventory: inventories/deployment}", "deployment: {<<: *base, inventory: inventories/deployment}"
    )
    assert parse_config(text, "relpromote.yml").environments["deployment"].inventory == "inventories/deployment"


def test_refresh_section_problems_name_their_key() -> None:
    refresh = "refresh:\n  source: {host: db}\n  target: {host: qadb}\n  database: shop\n  salt: {file: /s}\n"
    config = parse_config(BASE + refresh, "relpromote.yml")
    assert config.refresh is not None and config.refresh.qa_database == "shop"
    assert problem(BASE + refresh.replace("database:", "databse:")) == "relpromote.yml: refresh.databse: unknown key; did you mean 'database'?"
    assert "refresh.source.port" in problem(BASE + refresh.replace("{host: db}", "{host: db, port: 70000}"))
    message = problem(BASE + refresh.replace("{host: qadb}", "{environment: staging, host: qadb}"))
    assert message == "relpromote.yml: refresh: environment 'staging' is not defined; use one of qa, deployment, production"


def test_config_is_found_upward_after_option_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELPROMOTE_CONFIG", raising=False)
    project = tmp_path / "infra" / "releases"
    deep = project / "inventories" / "qa"
    deep.mkdir(parents=True)
    (project / "relpromote.yml").write_text(BASE)
    assert config_path_from(None, deep) == project / "relpromote.yml"
    assert config_path_from(None, project) == project / "relpromote.yml"
    assert config_path_from("other.yml", deep) == Path("other.yml")
    monkeypatch.setenv("RELPROMOTE_CONFIG", "/etc/relpromote.yml")
    assert config_path_from(None, deep) == Path("/etc/relpromote.yml")
    assert config_path_from("other.yml", deep) == Path("other.yml")


def test_outside_any_project_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELPROMOTE_CONFIG", raising=False)
    if any((folder / "relpromote.yml").exists() for folder in tmp_path.parents):
        pytest.skip("a relpromote.yml lies above the test's temporary folder")
    with pytest.raises(BadInput) as caught:
        config_path_from(None, tmp_path)
    assert caught.value.message == (
        f"not inside a promotion project: no relpromote.yml in {tmp_path} or any folder above it; "
        "run `relpromote init DIR` to make one, or pass --config FILE (or set RELPROMOTE_CONFIG)"
    )
