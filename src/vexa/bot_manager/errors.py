"""The bot-manager's one error type that carries an HTTP status (``app.py`` maps it to JSON)."""

from __future__ import annotations


class ServiceError(Exception):
    """An error with an HTTP status and a sentence for the caller."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
