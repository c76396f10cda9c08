"""Audit trail for user and token changes: who did what to which record, never a secret.

A dedicated logger name (``vexa.audit``) lets operators route these lines to
their own sink with ordinary logging configuration.
"""

from __future__ import annotations

import json
import logging
from typing import Any

_audit = logging.getLogger("vexa.audit")


def audit(action: str, actor: str, **fields: Any) -> None:
    """One line per change, as ``action`` + JSON so it can be grepped and parsed."""
    safe = {k: v for k, v in fields.items() if v is not None}
    _audit.info("audit %s actor=%s %s", action, actor, json.dumps(safe, default=str, sort_keys=True))
