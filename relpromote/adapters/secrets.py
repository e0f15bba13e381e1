"""Reading a secret from where the config says it lives: a private file, or a command's output.

The value is returned to the caller and never logged, written or put on a command line here.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path

from relpromote.errors import BadInput
from relpromote.secret import SecretSource

# A masking salt shorter than this could be guessed from a few known (value, pseudonym) pairs.
MIN_SALT_LENGTH = 16


def check_source(source: SecretSource, what: str, min_length: int = 0) -> None:
    """Fail early, with the fix, when a secret source is missing, too open or (a file, with min_length) too short."""
    if source.file is not None:
        path = Path(source.file).expanduser()
        try:
            info = path.stat()
        except FileNotFoundError:
            raise BadInput(f"{what}: {path} does not exist; create it (mode 0600) or fix the config") from None
        if info.st_uid != os.geteuid():
            raise BadInput(f"{what}: {path} is not owned by you; it must be your own 0600 file")
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise BadInput(f"{what}: {path} is readable by others; run `chmod 600 {path}`")
        if not stat.S_ISREG(info.st_mode):
            raise BadInput(f"{what}: {path} is not a regular file; it must be your own 0600 file")
        if min_length:
            try:
                length = len(path.read_text().rstrip("\n"))
            except (OSError, UnicodeDecodeError):
                raise BadInput(f"{what}: {path} cannot be read as text; fix the file") from None
            if length < min_length:
                raise BadInput(f"{what}: the secret in {path} has {length} characters, fewer than {min_length}; "
                               f"use a longer random one (e.g. `openssl rand -hex 32 > {path}`)")
    elif source.command is not None and not shlex.split(source.command):
        raise BadInput(f"{what}: the command is empty; fix the config")


def read_secret(source: SecretSource, what: str) -> str:
    check_source(source, what)
    if source.file is not None:
        value = Path(source.file).expanduser().read_text().rstrip("\n")
    else:
        assert source.command is not None
        try:
            result = subprocess.run(shlex.split(source.command), capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BadInput(f"{what}: cannot run the secret command ({exc.__class__.__name__}); fix the config") from None
        if result.returncode != 0:
            raise BadInput(f"{what}: the secret command failed with exit {result.returncode}; check it by hand")
        value = result.stdout.rstrip("\n")
    if not value:
        raise BadInput(f"{what}: the secret is empty; fix its source")
    return value
