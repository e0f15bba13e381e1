"""Errors that carry the exit code of the public command-line contract.

Every failure a user can cause or meet is one of these; the CLI prints the message on one line and
exits with the code. Nothing here prints or logs: side effects belong to the caller.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the run failed and was rolled back, or changed nothing
    BAD_INPUT = 2  # bad input or configuration
    REFUSED = 3  # refused by policy: gate, role, approval, freeze, rejected release
    BUSY = 4  # the environment is locked by another run
    NEEDS_PERSON = 5  # failed, and the automatic rollback failed too


class RelpromoteError(Exception):
    """A failure with a one-line message and the exit code the contract gives it."""

    code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Partial results (which hosts switched, which did not) for --json and for callers.
        self.detail: dict[str, Any] = detail or {}


class RunFailed(RelpromoteError):
    code = ExitCode.FAILED


class BadInput(RelpromoteError):
    code = ExitCode.BAD_INPUT


class Refused(RelpromoteError):
    code = ExitCode.REFUSED


class Busy(RelpromoteError):
    code = ExitCode.BUSY


class NeedsPerson(RelpromoteError):
    code = ExitCode.NEEDS_PERSON
