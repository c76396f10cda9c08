"""Create users and tokens straight in the database, for `vexa admin create-user/create-token`.

The first admin of a fresh deployment has no API to call yet, so the CLI
uses the same store functions as admin-api directly.
"""

from __future__ import annotations

from vexa.admin import store
from vexa.admin.audit import audit
from vexa.config import DatabaseSettings
from vexa.db import Database


async def create_user(email: str, name: str | None, max_concurrent_bots: int) -> tuple[int, bool]:
    """``(user_id, created)``; an existing email is left unchanged."""
    db = Database(DatabaseSettings().async_database_url(), pool_size=1)
    try:
        async with db.sessionmaker() as session:
            user, created = await store.create_user(
                session, email=email, name=name, max_concurrent_bots=max_concurrent_bots
            )
        if created:
            audit("user.create", "cli", user_id=user.id, email=email)
        return user.id, created
    finally:
        await db.dispose()


async def create_token(user_id: int | None = None, email: str | None = None) -> str:
    """Issue a token for the user given by id or email; returns the plaintext (shown once)."""
    if (user_id is None) == (email is None):
        raise ValueError("give exactly one of user_id or email")
    db = Database(DatabaseSettings().async_database_url(), pool_size=1)
    try:
        async with db.sessionmaker() as session:
            user = (
                await store.get_user(session, user_id)
                if user_id is not None
                else await store.get_user_by_email(session, email or "")
            )
            if user is None:
                raise LookupError(
                    f"no user with {'id ' + str(user_id) if user_id is not None else 'email ' + str(email)}"
                )
            issued = await store.issue_token(session, user.id)
        audit("token.create", "cli", user_id=user.id, token_id=issued.row.id)
        return issued.plaintext
    finally:
        await db.dispose()
