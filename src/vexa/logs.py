"""Process-wide logging with secrets scrubbed before they reach a handler."""

from __future__ import annotations

import logging
import re
from pathlib import Path

_SECRET = re.compile(
    r"(?i)((?:x-api-key|x-admin-api-key|api_key|token|password|authorization)[\"']?\s*[:=]\s*[\"']?)"
    r"([^\s\"',&}]+)"
)


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: m.group(1) + "***", text)


class RedactingFilter(logging.Filter):
    """Masks anything that looks like a key or password in the formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def setup_logging(service: str, level: str = "INFO", log_file: Path | None = None) -> None:
    """Log to stderr and, with ``log_file``, to that file too (the supervisor's own log)."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    formatter = logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "httpx", "httpcore", "websockets"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
