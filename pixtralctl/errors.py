"""What a command raises instead of printing an error and picking an exit code itself (see status_codes)."""

from __future__ import annotations

from typing import Any


class CommandError(Exception):
    """Something that ends a command with a one-line message and no traceback."""


class Failure(CommandError):
    """The deployment was asked and failed the check. `report`, when given, is printed as JSON (--json) with
    `ok: false` and the message as `error`, so a script reads the failure where it reads a success."""

    def __init__(self, message: str, report: dict[str, Any] | None = None):
        super().__init__(message)
        self.report = report


class UsageError(CommandError):
    """The command cannot run as asked; the message says what to pass instead."""
