"""The artifact store: built artifacts kept by digest in a local folder (the default store)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from relpromote.artifact import sha256_file
from relpromote.errors import BadInput


class LocalArtifactStore:
    def __init__(self, root: Path, read_only_mode: int = 0o444) -> None:
        self.root = root
        self.read_only_mode = read_only_mode  # a stored artifact never changes; 0440 when a group shares the project

    def path_for(self, digest: str) -> Path:
        return self.root / "sha256" / f"{digest}.tar.gz"

    def write(self, produce: Callable[[IO[bytes]], None]) -> tuple[str, Path]:
        """Let `produce` write an artifact to a temporary file; store it under its digest.

        The temporary file sits in the store so the final rename is atomic: a reader never sees a
        half-written artifact under a digest name.
        """
        folder = self.root / "sha256"
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".incoming-", dir=folder)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                produce(handle)
                handle.flush()
                os.fsync(handle.fileno())
            digest = sha256_file(Path(temporary))
            final = self.path_for(digest)
            if final.exists():
                os.unlink(temporary)
            else:
                os.chmod(temporary, self.read_only_mode)
                os.replace(temporary, final)
            return digest, final
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise

    def verified_path(self, digest: str) -> Path:
        """The stored artifact, after checking its bytes still hash to `digest`."""
        path = self.path_for(digest)
        if not path.exists():
            raise BadInput(f"artifact {digest[:12]} is missing from the store {self.root}; rebuild or restore it")
        actual = sha256_file(path)
        if actual != digest:
            raise BadInput(f"artifact {path} was tampered with: sha256 is {actual[:12]}, the ledger says {digest[:12]}; restore it from a trusted copy")
        return path
