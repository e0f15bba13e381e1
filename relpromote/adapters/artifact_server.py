"""The artifact server an environment pulls from (artifacts: {transfer: pull, url: ...}): where an artifact is served,
and the controller's check of the served copy before a run.

Any static web server serves the store's layout: `<url>/sha256/<digest>.tar.gz` (docs/fleet.md). The hosts check the
digest of what they download themselves (roles/release_deploy/module_utils/release_download.py); the controller reads
the served copy once before the run so that a missing or wrongly published artifact stops the promotion with one
message naming the server, before any host is locked or touched, instead of failing every host.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request

from relpromote.errors import BadInput

CHUNK = 1 << 20


def artifact_url(server: str, digest: str) -> str:
    return f"{server.rstrip('/')}/sha256/{digest}.tar.gz"


def check_served_copy(server: str, digest: str, timeout: float = 60.0) -> str:
    """The URL of the artifact of `digest` on `server`, after reading it whole and finding that sha256; BadInput saying
    what to do when it cannot be read or differs."""
    url = artifact_url(server, digest)
    publish = f"publish it: copy .relpromote/store/sha256/{digest}.tar.gz to the served folder's sha256/ (docs/fleet.md)"
    hasher = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            for block in iter(lambda: answer.read(CHUNK), b""):
                hasher.update(block)
    except urllib.error.HTTPError as exc:
        raise BadInput(f"the artifact server answers {exc.code} {exc.reason} for {url}; {publish}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise BadInput(f"cannot read {url} from the artifact server ({reason}); check artifacts.url and the server") from None
    actual = hasher.hexdigest()
    if actual != digest:
        raise BadInput(f"the artifact server's copy {url} has sha256 {actual}, the ledger says {digest}; {publish} again")
    return url
