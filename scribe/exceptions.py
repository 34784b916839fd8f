"""The one base of every error scribe shows a caller.

A ``ScribeError`` carries a stable ``code`` for programs, a ``message`` for people that
says what was wrong and what to do, and the HTTP status the API answers it with. The
API's exception handler (scribe.errors) maps it in one place; the engine and the command
line use the same classes without any HTTP in sight. No Django here: the engine imports it.
"""

from __future__ import annotations


class ScribeError(Exception):
    code = "error"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        """Response headers that belong with this error (Retry-After, say)."""
        return {}
