"""The release manifest: the planned changes of one release and the documentation each must carry.

A change is documented when it says what it is (id, type, title), who made it (owner), why and how.
`parse_manifest` refuses anything less with one line naming the change and the missing field.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from relpromote import yamlfile
from relpromote.errors import BadInput

VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$"
# What drives a terminal rather than shows text: C0 controls but tab and newline, DEL, C1 (0x9b is a CSI), and the
# bidirectional overrides and isolates that reorder what is shown. `show`, `history` and the notes print this text.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def plain_text(value: str) -> str:
    """Text a person reads at a terminal: refused when it holds a control character (an escape sequence could erase
    a line, move the cursor or reverse the text a reader sees)."""
    found = _CONTROL.search(value)
    if found is not None:
        raise ValueError(f"control character U+{ord(found.group()):04X} at position {found.start() + 1}; write plain text")
    return value


def typed_text(option: str, value: str) -> str:
    """What a person typed for OPTION (a note, a reason, a ticket), recorded and shown at terminals later: BadInput
    (exit 2) naming the option when it holds a control character."""
    try:
        return plain_text(value)
    except ValueError as exc:
        raise BadInput(f"{option}: {exc}") from None


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(plain_text)]
CommitId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{4,64}$")]
DOCUMENTED_FIELDS = ("id", "type", "title", "owner", "why", "how")
# A release plans changes a person reviews: even thousands of well-documented changes stay far below this.
MAX_MANIFEST_BYTES = 1 << 20


class Change(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    type: Literal["enhancement", "fix", "other"]
    title: Text
    owner: Text
    why: Text
    how: Text
    commits: tuple[CommitId, ...] = ()


class DroppedChange(BaseModel):
    """A change a revision left out, and why (written by `revise`, kept for the record)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    reason: Text
    from_version: str


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]
    planned_release: date | None = None  # the date production should get it: the revise deadline counts back from it
    changes: Annotated[tuple[Change, ...], Field(min_length=1)]
    dropped: tuple[DroppedChange, ...] = ()

    def change(self, change_id: str) -> Change | None:
        return next((c for c in self.changes if c.id == change_id), None)

    def as_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True)


def parse_manifest(text: str, source: str) -> Manifest:
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_MANIFEST_BYTES:
        raise BadInput(
            f"{source}: {size / (1 << 20):.1f} MiB is too large for a release manifest (limit {MAX_MANIFEST_BYTES >> 20} MiB); "
            "list the release's changes, not their content"
        )
    data = yamlfile.load(text, source)
    if not isinstance(data, dict):
        raise BadInput(f"{source}: expected a mapping with 'version' and 'changes'")
    if isinstance(data.get("version"), (int, float)):
        raise BadInput(f"{source}: version: write the version as a quoted string, e.g. version: \"{data['version']}\"")
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise BadInput(f"{source}: {_describe(exc, data)}") from None
    seen: set[str] = set()
    for change in manifest.changes:
        if change.id in seen:
            raise BadInput(f"{source}: change {change.id} is listed twice; give each change its own id")
        seen.add(change.id)
    return manifest


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    error = exc.errors()[0]
    loc = tuple(error["loc"])
    if len(loc) >= 2 and loc[0] == "changes" and isinstance(loc[1], int):
        changes = data.get("changes") or []
        entry = changes[loc[1]] if loc[1] < len(changes) else {}
        name = entry.get("id") if isinstance(entry, dict) and entry.get("id") else f"#{loc[1] + 1}"
        field = ".".join(str(p) for p in loc[2:]) or "(entry)"
        if error["type"] == "missing" and field in DOCUMENTED_FIELDS:
            return (
                f"change {name} has no '{field}'; documentation standards require "
                f"{', '.join(DOCUMENTED_FIELDS)} for every change"
            )
        if error["type"] == "string_too_short":
            return f"change {name}: '{field}' is empty; describe it"
        if error["type"] == "literal_error":
            return f"change {name}: type must be enhancement, fix or other (got {error['input']!r})"
        if error["type"] == "extra_forbidden":
            return f"change {name}: unknown key '{field}'; allowed: {', '.join(Change.model_fields)}"
        return f"change {name}: {field}: {error['msg'].rstrip('.')}"
    key = ".".join(str(p) for p in loc) or "(top level)"
    if error["type"] == "missing":
        return f"{key}: required; add it"
    if error["type"] == "too_short" and key == "changes":
        return "changes: a release needs at least one change"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key; allowed: version, planned_release, changes"
    return f"{key}: {error['msg'].rstrip('.')}"
