"""Where a secret lives: named in the config, read only when it is needed (see relpromote.adapters.secrets).

A secret's value is never in the config: only a private file's path or a command (a password manager)
whose output is the secret.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator


class SecretSource(BaseModel):
    """A 0600 file owned by the user, or a command's stdout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str | None = None
    command: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.file is None) == (self.command is None):
            raise ValueError("give exactly one of file or command")
        return self
