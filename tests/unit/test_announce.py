"""The announce: section of the config, what each channel receives, and the retry schedule."""

from __future__ import annotations

import pytest

from relpromote.announce import compose, webhook_body, with_retries
from relpromote.config import parse_config
from relpromote.errors import BadInput

BASE = """
project: shop
promotion_path: [qa]
environments:
  qa: {inventory: i/qa}
announce:
"""
NOTES = {"project": "shop", "version": "1.4.0", "digest": "d" * 64,
         "changes": [{"id": "CH-1", "type": "fix", "title": "Rounding", "owner": "dana", "why": "off by a cent", "how": "decimals"}]}


def test_channels_are_validated_with_one_line_naming_the_key() -> None:
    config = parse_config(BASE + """  channels:
    - name: ops-mail
      email: {host: mail.shop.test, from: rel@shop.test, to: [ops@shop.test], username: rel, password: {file: ~/.smtp}}
    - name: chat
      webhook: {url_secret: {command: pass show slack-hook}, shape: teams}
""", "relpromote.yml")
    assert [c.kind for c in config.announce.channels] == ["email", "webhook"] and config.announce.channels[0].email.sender == "rel@shop.test"
    for bad, says in [
        ("  channels:\n    - {name: m, email: {host: h, from: a@b, to: [c@d], username: u}}\n", "give both username and password"),
        ("  channels:\n    - {name: w, webhook: {url: ftp://x}}\n", "url must start with http"),
        ("  channels:\n    - {name: w, webhook: {url: 'http://x', url_secret: {file: f}}}\n", "exactly one of url or url_secret"),
        ("  channels:\n    - {name: w, webhook: {url: 'http://x', password: hunter2}}\n", "unknown key"),
        ("  channels:\n    - {name: w, webhook: {url: 'http://x'}}\n    - {name: w, webhook: {url: 'http://y'}}\n", "listed twice"),
    ]:
        with pytest.raises(BadInput, match=says) as caught:
            parse_config(BASE + bad, "relpromote.yml")
        assert "\n" not in caught.value.message and "announce" in caught.value.message


def test_each_webhook_shape() -> None:
    message = compose(NOTES, "production", "after", "notes text", "<p>notes</p>")
    assert message.subject == "[shop] 1.4.0 is live in production" and "- CH-1 (fix): Rounding" in message.text
    assert webhook_body(message, "slack")["text"] == message.subject
    teams = webhook_body(message, "teams")
    assert teams["@type"] == "MessageCard" and "**CH-1** Rounding (dana): off by a cent" in teams["text"]
    plain = webhook_body(message, "json")
    assert plain["changes"][0]["how"] == "decimals" and plain["stage"] == "after" and plain["digest"] == "d" * 64
    failed = compose(NOTES, "production", "failed", "", "", "health check failed on prod-1")
    assert failed.subject == "[shop] 1.4.0 did not go to production: health check failed on prod-1"


def test_retries_back_off_and_stop_at_the_first_success() -> None:
    waits: list[float] = []
    calls = iter([OSError("refused"), OSError("refused"), None])

    def flaky() -> None:
        outcome = next(calls)
        if outcome is not None:
            raise outcome

    assert with_retries(flaky, 5, 1.5, waits.append) == (3, None) and waits == [1.5, 3.0]
    waits.clear()

    def dead() -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    attempts, error = with_retries(dead, 3, 0.5, waits.append)
    assert attempts == 3 and waits == [0.5, 1.0] and error is not None and "Connection refused" in error


def test_a_change_cannot_ping_a_channel_add_a_link_or_forge_a_line() -> None:
    """A manifest's title or why is data: Slack's control sequences (<!channel>, <url|text>) and Teams' Markdown are
    shown as written, and a line break cannot add a line to the mail's text part."""
    hostile = {"id": "CH-9", "type": "fix", "title": "Fix <!channel> <https://evil.test|Approved by carol>\n- CH-10 (fix): Approved",
               "owner": "dana", "why": "[click](https://evil.test)\n# Approved", "how": "h"}
    message = compose({**NOTES, "changes": [hostile]}, "production", "after", "", "")
    slack = webhook_body(message, "slack")["blocks"][1]["text"]["text"]
    assert "<!channel>" not in slack and "<https://" not in slack and "&lt;!channel&gt;" in slack
    teams = webhook_body(message, "teams")["text"]
    assert "[click](https://" not in teams and "\n# Approved" not in teams
    assert [line for line in message.text.splitlines() if line.startswith("- ")] == [
        "- CH-9 (fix): Fix <!channel> <https://evil.test|Approved by carol> - CH-10 (fix): Approved"]
