"""admin-api as a real child process against the session's PostgreSQL and Valkey."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vexa.embedded import free_port
from vexa.testing.processes import ServiceProcess


@pytest.fixture(scope="session")
def admin_service(service_env: dict[str, str], tmp_session_dir: Path) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(
        "admin", free_port(), service_env, log_path=tmp_session_dir / "logs" / "admin-admin.log"
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def admin_headers(service_env: dict[str, str]) -> dict[str, str]:
    return {"X-Admin-API-Key": service_env["ADMIN_API_TOKEN"]}
