"""admin-api as a real child process against the session's PostgreSQL and Valkey."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def admin_headers(service_env: dict[str, str]) -> dict[str, str]:
    return {"X-Admin-API-Key": service_env["ADMIN_API_TOKEN"]}
