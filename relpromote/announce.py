"""Announcements: the release notes sent to the channels the config names, before and after a promotion.

This module owns the `announce:` section of relpromote.yml and what each channel receives (the
email's subject, text and HTML parts; a webhook's JSON in the plain, Slack or Teams shape), with no
I/O. Sending lives in relpromote.adapters.smtp and relpromote.adapters.webhook; secrets (the SMTP
password, a webhook's URL or token) are never in the config, only where they live (a SecretSource).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from relpromote.secret import SecretSource

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
Stage = Literal["before", "after", "failed"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmailChannel(_Strict):
    """Mail over SMTP: STARTTLS when `starttls` (port 587), implicit TLS when `tls` (port 465), login when `username`."""

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    starttls: bool = True
    tls: bool = False
    cafile: str | None = None  # a CA bundle to trust instead of the system's (a private mail relay)
    username: str | None = None
    password: SecretSource | None = None
    sender: Annotated[str, Field(alias="from")]
    to: Annotated[list[str], Field(min_length=1)]
    timeout: Annotated[float, Field(gt=0, le=300)] = 15

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _login(self) -> EmailChannel:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password (a secret source: file or command), or neither")
        if self.starttls and self.tls:
            raise ValueError("give starttls (port 587) or tls (port 465), not both")
        return self


class WebhookChannel(_Strict):
    """A JSON POST. `url` may be written in the config, or kept secret (`url_secret`), as Slack's and Teams' URLs should be."""

    url: str | None = None
    url_secret: SecretSource | None = None
    token: SecretSource | None = None  # sent as `Authorization: Bearer TOKEN`
    shape: Literal["json", "slack", "teams"] = "json"
    timeout: Annotated[float, Field(gt=0, le=300)] = 15

    @model_validator(mode="after")
    def _one_url(self) -> WebhookChannel:
        if (self.url is None) == (self.url_secret is None):
            raise ValueError("give exactly one of url or url_secret")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return self


class Channel(_Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    email: EmailChannel | None = None
    webhook: WebhookChannel | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Channel:
        if (self.email is None) == (self.webhook is None):
            raise ValueError("give exactly one of email or webhook")
        return self

    @property
    def kind(self) -> str:
        return "email" if self.email is not None else "webhook"


class AutomaticAnnouncements(_Strict):
    """Which promotions announce themselves: to `environments` (default: the protected ones), before and/or after."""

    environments: list[Annotated[str, Field(pattern=NAME_PATTERN)]] | None = None
    before: bool = True
    after: bool = True


class AnnounceConfig(_Strict):
    channels: list[Channel] = []
    automatic: AutomaticAnnouncements = AutomaticAnnouncements()
    attempts: Annotated[int, Field(ge=1, le=10)] = 3  # per channel, per announcement
    backoff: Annotated[float, Field(ge=0, le=300)] = 2.0  # seconds before the second attempt, doubled for each next one

    @model_validator(mode="after")
    def _unique(self) -> AnnounceConfig:
        names = [c.name for c in self.channels]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"channel '{name}' is listed twice; give each channel its own name")
        return self


@dataclass(frozen=True)
class Message:
    """What every channel says about one release and one environment."""

    project: str
    version: str
    environment: str
    stage: Stage
    subject: str
    text: str
    html: str
    notes: dict[str, Any] = field(default_factory=dict)


def _one_line(value: object) -> str:
    """Free text (a manifest's title, why) on one line: a line break in it cannot add a line of its own to the mail."""
    return " ".join(str(value if value is not None else "").split())


def _slack_text(value: object) -> str:
    """Shown as written in Slack's mrkdwn: its control sequences (<!channel>, <url|text>) start with <, escaped as Slack says."""
    return _one_line(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def headline(project: str, version: str, environment: str, stage: Stage, reason: str | None = None) -> str:
    if stage == "before":
        return f"[{project}] {version} is about to go to {environment}"
    if stage == "failed":
        return f"[{project}] {version} did not go to {environment}" + (f": {reason}" if reason else "")
    return f"[{project}] {version} is live in {environment}"


def compose(notes: dict[str, Any], environment: str, stage: Stage, text_notes: str, html_notes: str, reason: str | None = None) -> Message:
    project, version = str(notes.get("project") or ""), str(notes["version"])
    subject = headline(project, version, environment, stage, reason)
    changes = "\n".join(f"- {c['id']} ({c['type']}): {_one_line(c['title'])}" for c in notes.get("changes", []))
    text = f"{subject}\n\nChanges:\n{changes}\n\n{text_notes}"
    return Message(project, version, environment, stage, subject, text, html_notes, notes)


def webhook_body(message: Message, shape: str) -> dict[str, Any]:
    """The JSON a webhook receives: relpromote's own shape, Slack's (`text` + `blocks`) or Teams' (a MessageCard)."""
    changes = [{"id": c["id"], "type": c["type"], "title": c["title"], "owner": c["owner"], "why": c["why"], "how": c["how"]}
               for c in message.notes.get("changes", [])]
    lines = "\n".join(f"• *{c['id']}* {_slack_text(c['title'])} ({_slack_text(c['owner'])})" for c in changes)
    if shape == "slack":
        return {"text": message.subject,
                "blocks": [{"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}},
                           {"type": "section", "text": {"type": "mrkdwn", "text": lines or "no changes listed"}}]}
    if shape == "teams":
        from relpromote.notes import markdown_text  # Teams reads Markdown (kept out of the config's imports: start-up)

        return {"@type": "MessageCard", "@context": "https://schema.org/extensions", "summary": message.subject, "title": message.subject,
                "text": "\n\n".join(f"**{c['id']}** {markdown_text(c['title'])} ({markdown_text(c['owner'])}): {markdown_text(c['why'])}"
                                      for c in changes) or "no changes listed"}
    return {"project": message.project, "version": message.version, "environment": message.environment, "stage": message.stage,
            "subject": message.subject, "digest": message.notes.get("digest"), "changes": changes, "text": message.text}


def with_retries(send: Callable[[], None], attempts: int, backoff: float, sleep: Callable[[float], None]) -> tuple[int, str | None]:
    """Try `send` up to `attempts` times, waiting `backoff`, then twice that, ...; (attempts made, last error or None)."""
    error: str | None = None
    for attempt in range(1, attempts + 1):
        try:
            send()
            return attempt, None
        except Exception as exc:  # any failure of a channel is recorded, never raised into a promotion
            error = f"{type(exc).__name__}: {exc}"[:300]
        if attempt < attempts:
            sleep(backoff * 2 ** (attempt - 1))
    return attempts, error
