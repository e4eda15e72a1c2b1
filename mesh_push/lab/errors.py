"""The one error type of the lab: a message for the user and an exit code."""

from __future__ import annotations

EXIT_FAILED, EXIT_USAGE = 1, 2


class LabError(Exception):
    """Printed as `mesh-push: MESSAGE` without a traceback.

    code 2: the user asked for something impossible (nothing was changed);
    code 1: something failed while the lab was being changed.
    """

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code
