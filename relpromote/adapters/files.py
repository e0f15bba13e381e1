"""Writing a result file (notes, a status page, an evidence pack) so a reader never sees half of it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from relpromote.errors import BadInput


def write_atomically(path: Path, data: bytes, what: str) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    path = path.expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise BadInput(f"{what}: folder {folder} does not exist; create it or choose another --out")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise BadInput(f"{what}: cannot write {path} ({exc.strerror}); choose another --out") from None
    return path
