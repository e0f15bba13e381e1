"""Writing a result file (notes, a status page, an evidence pack) so a reader never sees half of it; reading a file
a person names (a key, a manifest, a report) without hanging on a pipe or a device."""

from __future__ import annotations

import errno
import os
import select
import stat
import tempfile
import time
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


PIPE_WAIT_SECONDS = 30.0


def _kind(mode: int) -> str:
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket" if stat.S_ISSOCK(mode) else "not a file"


def read_named_file(path: Path, limit: int) -> bytes:
    """The bytes of a file a person named, at most `limit` of them (more is OSError EFBIG, read no further).

    A regular file, or a pipe that is written to (`--identity <(pass show key)`): a pipe nobody writes to reads as
    empty (its end of file) and one whose writer stays silent fails after PIPE_WAIT_SECONDS, so neither hangs the
    command. A folder is OSError EISDIR; a device (/dev/zero) or a socket is OSError EINVAL naming what it is, never
    read."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise OSError(errno.EINVAL, f"{_kind(mode)}, not a file", str(path))
        chunks: list[bytes] = []
        total = 0
        deadline = time.monotonic() + PIPE_WAIT_SECONDS
        while True:
            try:
                chunk = os.read(descriptor, min(1 << 20, limit + 1 - total))
            except BlockingIOError:  # a pipe with a writer that has not written yet (with none, read says end of file)
                ready, _, _ = select.select([descriptor], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise OSError(errno.ETIMEDOUT, f"nothing came through the pipe in {PIPE_WAIT_SECONDS:.0f} s", str(path)) from None
                continue
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))
    finally:
        os.close(descriptor)
