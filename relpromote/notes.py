"""Release notes: what a release changes (what, who, how, why) and when it reached each environment.

`release_notes` is pure: a function of the folded state and the ledger's entries, so the notes say
exactly what the signed record says. Entries that do not count (`state.ignored`) are left out.
`render_notes` fills a Jinja2 template: the project's own (`PROJECT/templates/notes/`) when it has
one, else the one relpromote ships (`relpromote/templates/notes/`). HTML templates are autoescaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from relpromote import events
from relpromote.errors import BadInput
from relpromote.ledger import Entry
from relpromote.resources import TEMPLATES
from relpromote.state import ProjectState

FORMATS = {"md": "notes.md.j2", "html": "notes.html.j2"}
NOTES_BODY_HTML = "notes_body.html.j2"  # the notes as an HTML fragment: what the status page embeds
PROJECT_TEMPLATES = Path("templates") / "notes"  # a project's overrides, relative to its folder
SHIPPED_TEMPLATES = TEMPLATES / "notes"


def counted(state: ProjectState, entries: Iterable[Entry]) -> list[Entry]:
    """The entries that count: not corrupt, not among those the trust check set aside."""
    ignored = {problem.seq for problem in state.ignored}
    return [e for e in entries if not e.corrupt and e.seq not in ignored]


def _evidence(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("kind", "file", "sha256", "tests", "passed", "failed", "errors", "skipped", "automatic")
    return [{key: item.get(key) for key in keys} for item in items]


def release_notes(state: ProjectState, entries: Sequence[Entry], version: str, project: str = "") -> dict[str, Any]:
    """The notes of one release as data: its changes, what was dropped, and its way through each environment."""
    release = state.release(version)
    trusted = counted(state, entries)
    path = list(state.environments)
    stages: dict[str, dict[str, Any]] = {
        name: {"environment": name, "reached_at": None, "promoted_by": None, "live": state.environments[name].current == version,
               "promotions": [], "acceptances": [], "rejections": [], "approvals": [], "withdrawn": []}
        for name in path
    }
    revised_from = None
    for entry in trusted:
        p = entry.payload
        stage = stages.get(str(p.get("environment")))
        if entry.kind == events.RELEASE_REVISED and p.get("version") == version:
            revised_from = p.get("from_version")
        if stage is None:
            continue
        if entry.kind == events.PROMOTION_FINISHED and p.get("version") == version and not p.get("check"):
            stage["promotions"].append({
                "at": entry.recorded_at, "by": entry.actor, "result": p.get("result"), "reason": p.get("reason"),
                "limit": p.get("limit"), "approval": p.get("approval"), "break_glass": p.get("break_glass"),
                "evidence": _evidence(p.get("evidence") or []),
                "hosts": [{"host": h.get("host"), "previous": h.get("previous"), "current": h.get("current"), "switched": h.get("switched")}
                          for h in p.get("hosts") or []],
            })
            if p.get("result") == "succeeded" and not p.get("limit") and stage["reached_at"] is None:
                stage["reached_at"], stage["promoted_by"] = entry.recorded_at, entry.actor
        elif entry.kind == events.VERDICT_ACCEPTED and p.get("version") == version:
            stage["acceptances"].append({"at": entry.recorded_at, "by": entry.actor, "note": p.get("note") or "",
                                         "evidence": _evidence(p.get("evidence") or [])})
        elif entry.kind == events.VERDICT_REJECTED and p.get("version") == version:
            stage["rejections"].append({"at": entry.recorded_at, "by": entry.actor, "changes": list(p.get("changes") or []),
                                        "reason": p.get("reason")})
        elif entry.kind == events.APPROVAL_GRANTED and p.get("version") == version:
            stage["approvals"].append({"at": entry.recorded_at, "by": entry.actor, "ticket": p.get("ticket"),
                                       "expires_at": p.get("expires_at")})
        elif (entry.kind == events.ROLLBACK_FINISHED and p.get("from_version") == version and p.get("result") == "succeeded"
              and p.get("version") != version):
            stage["withdrawn"].append({"at": entry.recorded_at, "by": entry.actor, "reason": p.get("reason"), "back_to": p.get("version"),
                                       "automatic": bool(p.get("automatic"))})
    dropped = []
    for item in release.manifest.get("dropped", []):
        origin = state.releases.get(str(item.get("from_version")))
        change = next((c for c in origin.changes if c.get("id") == item.get("id")), {}) if origin else {}
        dropped.append({**item, "title": change.get("title"), "owner": change.get("owner")})
    return {
        "project": project,
        "version": release.version,
        "digest": release.digest,
        "size": release.size,
        "built_by": release.built_by,
        "built_at": release.built_at,
        "source": {k: release.source.get(k) for k in ("path", "commit", "branch", "dirty")},
        "planned_release": release.manifest.get("planned_release"),
        "revised_from": revised_from,
        "changes": [{k: change.get(k) for k in ("id", "type", "title", "owner", "why", "how")} | {"commits": list(change.get("commits") or [])}
                    for change in release.changes],
        "dropped": dropped,
        "environments": [stages[name] for name in path],
        "live_in": state.where(version),
        "blocked": state.unusable(version),
    }


def _when(value: str | None) -> str:
    """A ledger time as people read it: 2026-11-30 14:02 UTC."""
    return f"{value[:16].replace('T', ' ')} UTC" if value else "-"


# Markdown's inline syntax (links, images, raw HTML, emphasis, code, tables) and the escape character itself.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def markdown_text(value: object) -> str:
    """Free text (a note, a reason, a manifest field) as one Markdown line of its own: line breaks folded into spaces
    so it cannot start a line (a heading, a list item that reads as an approval), inline syntax escaped so it is shown
    as written (no raw HTML, link or image)."""
    folded = " ".join(line.strip() for line in str(value if value is not None else "").splitlines() if line.strip())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", folded)


def template_environment(project_root: Path | None, kinds: Sequence[str] = ("notes",)) -> Any:
    """Jinja2 (sandboxed) with the project's templates first (PROJECT/templates/KIND/), then relpromote's; HTML
    autoescaped, undefined names an error."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    folders = [str(project_root / "templates" / kind) for kind in kinds
               if project_root is not None and (project_root / "templates" / kind).is_dir()]
    folders += [str(TEMPLATES / kind) for kind in kinds]
    # Sandboxed: a project's template is run by whoever reads the notes or the board (another login on a shared jump
    # host): it may fill in data, never reach Python (no dunder attributes, no mutation); that is a template error.
    environment = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(folders),
        autoescape=lambda name: bool(name) and (".html" in str(name)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["when"] = _when
    environment.filters["short"] = lambda digest, n=12: (digest or "")[:n]
    environment.filters["md"] = markdown_text
    return environment


def render_notes(notes: dict[str, Any], fmt: str, project_root: Path | None = None) -> str:
    """The notes in `fmt` (md or html), from the project's template when it has one."""
    if fmt not in FORMATS:
        raise BadInput(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    import jinja2

    try:
        template = template_environment(project_root).get_template(FORMATS[fmt])
        return str(template.render(notes=notes))
    except jinja2.TemplateError as exc:
        where = f" ({exc.filename}:{exc.lineno})" if isinstance(exc, jinja2.TemplateSyntaxError) else ""
        raise BadInput(f"the {fmt} notes template cannot be rendered{where}: {exc}; fix the template in {PROJECT_TEMPLATES}/") from None
