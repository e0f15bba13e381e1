"""`people add`: the config edited for the user, narrowly, validated before it replaces the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from relpromote.errors import BadInput
from relpromote.identity import generate_identity
from relpromote.resources import TEMPLATES
from relpromote.usecases.people import add_person, list_people, replace_people_block


def _config(tmp_path: Path, text: str | None = None) -> Path:
    path = tmp_path / "relpromote.yml"
    path.write_text(text if text is not None else (TEMPLATES / "relpromote.yml").read_text())
    return path


def _key(tmp_path: Path, name: str) -> str:
    return generate_identity(tmp_path / "keys" / f"{name}.key").public_key


def test_add_keeps_every_other_line_and_comment_and_validates(tmp_path: Path) -> None:
    config = _config(tmp_path)
    before = config.read_text()
    alice, carol = _key(tmp_path, "alice"), _key(tmp_path, "carol")
    add_person(config, "alice", alice, ["release_manager"])
    add_person(config, "carol", carol, ["change_manager", "qa", "qa"])
    after = config.read_text()
    assert after.split("people:")[0] == before.split("people:")[0]  # comments and settings above untouched
    assert list_people(config) == [
        {"name": "alice", "key": alice, "roles": ["release_manager"]},
        {"name": "carol", "key": carol, "roles": ["change_manager", "qa"]},
    ]


def test_a_people_block_in_the_middle_is_replaced_and_what_follows_kept(tmp_path: Path) -> None:
    bob = _key(tmp_path, "bob")
    text = (
        "project: shop\n"
        "promotion_path: [qa]\n"
        "people:\n"
        f"- name: bob   # the first operator\n  key: \"{bob}\"\n  roles: [operator]\n"
        "\n# Environments follow.\n"
        "environments:\n  qa: {inventory: inventories/qa}\n"
    )
    config = _config(tmp_path, text)
    dana = _key(tmp_path, "dana")
    add_person(config, "dana", dana, ["qa"])
    data = yaml.safe_load(config.read_text())
    assert [p["name"] for p in data["people"]] == ["bob", "dana"]
    assert data["environments"] == {"qa": {"inventory": "inventories/qa"}}
    assert "# Environments follow.\n" in config.read_text()


def test_no_people_block_gets_one_appended() -> None:
    text = replace_people_block("project: shop\n# end", [{"name": "a", "key": "k", "roles": ["qa"]}])
    assert yaml.safe_load(text)["people"] == [{"name": "a", "key": "k", "roles": ["qa"]}]
    assert text.startswith("project: shop\n# end\n")


@pytest.mark.parametrize(
    ("name", "key", "roles", "message"),
    [
        ("alice", "{alice}", ["release_manager"], "alice is already listed"),
        ("bob", "{alice}", ["qa"], "this key already belongs to alice"),
        ("bob", "{bob}", ["boss"], "unknown role boss; roles: change_manager, data_refresher, operator, qa, release_manager"),
        ("bob", "{bob}", [], "no --role given; roles:"),
        ("Bob", "{bob}", ["qa"], "'Bob' is not a valid person name"),
        ("bob", "ed25519:AAAA", ["qa"], "not an ed25519 public key line"),
        ("bob", "{private}", ["qa"], "this is a private key; pass its public key"),
        ("bob", "/nonexistent/bob.pub", ["qa"], "nor a readable file"),
    ],
)
def test_bad_additions_are_refused_with_the_reason_and_the_file_unchanged(
    tmp_path: Path, name: str, key: str, roles: list[str], message: str
) -> None:
    config = _config(tmp_path)
    alice = _key(tmp_path, "alice")
    add_person(config, "alice", alice, ["release_manager"])
    before = config.read_text()
    bob_key = generate_identity(tmp_path / "keys" / "bob.key").public_key
    (tmp_path / "keys" / "bob.key.pub").write_text(bob_key + " bob\n")
    values = {"alice": alice, "bob": str(tmp_path / "keys" / "bob.key.pub"), "private": str(tmp_path / "keys" / "bob.key")}
    with pytest.raises(BadInput, match=message.replace("(", r"\(")):
        add_person(config, name, key.format(**values), roles)
    assert config.read_text() == before


def test_roles_the_config_allows_are_known_too(tmp_path: Path) -> None:
    config = _config(tmp_path)
    text = config.read_text().replace(
        "    protected: true", "    protected: true\n    allow: {promote: [deployer]}", 1
    )
    config.write_text(text)
    add_person(config, "dan", _key(tmp_path, "dan"), ["deployer"])
    assert list_people(config)[0]["roles"] == ["deployer"]
