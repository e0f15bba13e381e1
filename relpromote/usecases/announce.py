"""`announce VERSION --env ENV`, and the announcements a promotion makes by itself (config: announce.automatic).

Every channel is tried `attempts` times with a doubling backoff; the outcome of each channel (sent, or
failed and why) is recorded in the ledger as one `announcement.finished` entry. An automatic
announcement never fails the promotion it belongs to: whatever goes wrong is recorded, and
`relpromote announce` sends it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from relpromote import events
from relpromote.announce import Channel, Message, Stage, compose, webhook_body, with_retries
from relpromote.config import Person
from relpromote.errors import BadInput, NeedsPerson, RelpromoteError, RunFailed
from relpromote.identity import Identity
from relpromote.notes import render_notes
from relpromote.project import Project
from relpromote.usecases.notes import notes_data

if TYPE_CHECKING:
    from relpromote.usecases.promote import PromoteRequest


def message_for(project: Project, version: str, environment: str, stage: Stage, reason: str | None = None) -> Message:
    notes = notes_data(project, version)
    return compose(notes, environment, stage, render_notes(notes, "md", project.root), render_notes(notes, "html", project.root), reason)


def _sender(channel: Channel, message: Message) -> tuple[Callable[[], None], list[str]]:
    """A function that sends `message` on `channel` once, and the secrets it uses (kept out of error messages)."""
    from relpromote.adapters.secrets import read_secret

    what = f"announce channel {channel.name}"
    if channel.email is not None:
        from relpromote.adapters.smtp import send_email

        email = channel.email
        password = read_secret(email.password, f"{what}: password") if email.password is not None else None
        return (lambda: send_email(email, message, password)), [password] if password else []
    assert channel.webhook is not None
    from relpromote.adapters.webhook import post_json

    hook = channel.webhook
    url = hook.url or (read_secret(hook.url_secret, f"{what}: url") if hook.url_secret is not None else "")
    token = read_secret(hook.token, f"{what}: token") if hook.token is not None else None
    body = webhook_body(message, hook.shape)

    def post() -> None:
        post_json(url, body, hook.timeout, token)

    return post, [s for s in (token, url if hook.url_secret is not None else None) if s]


def send(
    project: Project, message: Message, channels: Sequence[Channel], sleep: Callable[[float], None] = time.sleep
) -> list[dict[str, Any]]:
    """Each channel's outcome: sent (after how many attempts) or failed (and the last error, secrets blanked)."""
    settings = project.config.announce
    results = []
    for channel in channels:
        secrets: list[str] = []
        try:
            attempt, secrets = _sender(channel, message)
        except RelpromoteError as exc:  # a secret that cannot be read: no attempt can succeed
            results.append({"channel": channel.name, "kind": channel.kind, "result": "failed", "attempts": 0, "error": exc.message})
            continue
        attempts, error = with_retries(attempt, settings.attempts, settings.backoff, sleep)
        for secret in secrets:
            error = error.replace(secret, "***") if error else error
        results.append({"channel": channel.name, "kind": channel.kind, "result": "failed" if error else "sent", "attempts": attempts,
                        "error": error})
    return results


def announce(
    project: Project, identity: Identity, actor: Person, version: str, environment: str, only: Sequence[str] = (),
    stage: Stage | None = None, reason: str | None = None, automatic: bool = False,
) -> dict[str, Any]:
    """Send the notes of `version` for `environment` to the channels (all, or `only` these) and record the outcome."""
    project.config.environment(environment)
    state = project.state()
    state.release(version)
    configured = {c.name: c for c in project.config.announce.channels}
    if not configured:
        raise BadInput("no announcement channels: add announce.channels (email or webhook) to relpromote.yml; see README, Announcements")
    unknown = [name for name in only if name not in configured]
    if unknown:
        raise BadInput(f"--channel {unknown[0]}: no such channel; configured: {', '.join(configured)}")
    channels = [configured[name] for name in only] if only else list(configured.values())
    chosen: Stage = stage or ("after" if state.environments[environment].current == version else "before")
    message = message_for(project, version, environment, chosen, reason)
    results = send(project, message, channels)
    failed = [r for r in results if r["result"] == "failed"]
    payload = {"version": version, "environment": environment, "stage": chosen, "automatic": automatic, "subject": message.subject,
               "result": "failed" if failed else "sent", "channels": results}
    entry = project.ledger.append(events.ANNOUNCEMENT_FINISHED, actor.name, identity, payload)
    return {**payload, "seq": entry.seq}


@contextmanager
def announced(project: Project, identity: Identity, actor: Person, request: PromoteRequest) -> Iterator[None]:
    """Around a promotion whose gates passed: the announcement before it, and after it (live, or failed and why).

    Never raises and never changes what the promotion raises: a channel that fails is recorded, not fatal.
    """
    automatic_announcement(project, identity, actor, request, "before")
    try:
        yield
    except (RunFailed, NeedsPerson) as failure:  # the run failed: say so; refusals and a busy lock changed nothing to announce
        automatic_announcement(project, identity, actor, request, "failed", failure.message)
        raise
    automatic_announcement(project, identity, actor, request, "after")


def automatic_announcement(
    project: Project, identity: Identity, actor: Person, request: PromoteRequest, stage: Stage, reason: str | None = None,
) -> dict[str, Any] | None:
    """The announcement a promotion makes by itself, when the config asks for one; never raises."""
    settings = project.config.announce
    automatic = settings.automatic
    wanted = automatic.environments if automatic.environments is not None else [
        name for name, env in project.config.environments.items() if env.protected]
    if request.check or not settings.channels or request.environment not in wanted or not (automatic.before if stage == "before" else automatic.after):
        return None
    try:
        return announce(project, identity, actor, request.version, request.environment, stage=stage, reason=reason, automatic=True)
    except Exception as exc:  # an announcement never fails the promotion; the failure is recorded if it can be
        try:
            payload = {"version": request.version, "environment": request.environment, "stage": stage, "automatic": True,
                       "result": "failed", "channels": [], "error": f"{type(exc).__name__}: {exc}"[:300]}
            project.ledger.append(events.ANNOUNCEMENT_FINISHED, actor.name, identity, payload)
        except Exception:  # the ledger itself is unusable: the promotion's own record says what happened
            pass
        return None
