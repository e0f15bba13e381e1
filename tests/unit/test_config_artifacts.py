"""relpromote.yml's per-environment `artifacts:` (push or pull from an artifact server): its default and its messages."""

from __future__ import annotations

import pytest

from relpromote.config import parse_config
from relpromote.errors import BadInput

CONFIG = "project: p\npromotion_path: [qa]\nenvironments:\n  qa:\n    inventory: inventories/qa\n"


def test_push_is_the_default() -> None:
    assert parse_config(CONFIG, "relpromote.yml").environments["qa"].artifacts.transfer == "push"


def test_pull_from_a_server() -> None:
    artifacts = parse_config(CONFIG + "    artifacts: {transfer: pull, url: 'https://a.example/shop'}\n", "relpromote.yml").environments["qa"].artifacts
    assert (artifacts.transfer, artifacts.url) == ("pull", "https://a.example/shop")


@pytest.mark.parametrize(("artifacts", "message"), [
    ("{transfer: pull}", "relpromote.yml: environments.qa.artifacts: transfer: pull needs url: the artifact server's address, "
                         "e.g. https://artifacts.example.org/shop"),
    ("{transfer: pull, url: 'ftp://a.example'}", "relpromote.yml: environments.qa.artifacts.url: must be an http:// or https:// "
                                                "address without a user name or password, e.g. https://artifacts.example.org/shop"),
    ("{transfer: pull, url: 'https://ci:pw@a.example'}", "relpromote.yml: environments.qa.artifacts.url: must be an http:// or "
                                                        "https:// address without a user name or password, e.g. https://artifacts.example.org/shop"),
    ("{transfer: fetch}", "relpromote.yml: environments.qa.artifacts.transfer: Input should be 'push' or 'pull' (got 'fetch'); fix the value"),
])
def test_a_wrong_setting_is_one_line_naming_the_key(artifacts: str, message: str) -> None:
    with pytest.raises(BadInput) as raised:
        parse_config(CONFIG + f"    artifacts: {artifacts}\n", "relpromote.yml")
    assert str(raised.value) == message
