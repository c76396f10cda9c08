"""What the end-to-end modules share: a whole `vexa up` stack on free ports, and a user's API key."""

from __future__ import annotations

from pathlib import Path

import httpx

from vexa.embedded import free_port
from vexa.stack import Stack, StackSettings

PORT_VARIABLES = (
    "GATEWAY_PORT",
    "ADMIN_PORT",
    "BOT_MANAGER_PORT",
    "COLLECTOR_PORT",
    "TRANSCRIPTION_PORT",
    "TRANSCRIPTION_HEALTH_PORT",
)


def start_stack(
    database_url: str, redis_url: str, home: Path, meeting_base_url: str, model: str, **extra_env: str
) -> Stack:
    """The real stack on the test session's PostgreSQL and Redis (every service its own process).

    Bots go to the simulated meeting at ``meeting_base_url``, leave 3 s after they are alone, and
    segments become final 2 s after they stop changing, so tests do not wait for production timings.
    """
    env = {
        "MEETING_BASE_URL": meeting_base_url,
        "WHISPER_MODEL": model,
        "BOT_LEAVE_WHEN_ALONE_S": "3",
        "IMMUTABILITY_THRESHOLD": "2",
        "BACKGROUND_TASK_INTERVAL": "1",
        **extra_env,
    }
    settings = StackSettings(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        ADMIN_API_TOKEN="e2e-admin-token",
        **{k: str(free_port()) for k in PORT_VARIABLES},
    )
    return Stack(settings=settings, home=home, extra_env=env).start()


def new_api_key(stack: Stack, email: str) -> str:
    """A new user (5 concurrent bots) and an API key for them, through the admin API."""
    admin = {"X-Admin-API-Key": stack.admin_token}
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as c:
        user = c.post("/admin/users", json={"email": email, "max_concurrent_bots": 5}, headers=admin)
        assert user.status_code in (200, 201), user.text
        token = c.post(f"/admin/users/{user.json()['id']}/tokens", headers=admin)
        assert token.status_code == 201, token.text
        return token.json()["token"]
