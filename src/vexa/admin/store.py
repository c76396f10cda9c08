"""User and token records: the database work behind the admin routes and the CLI.

Kept apart from the HTTP layer so ``vexa admin create-user`` and the API share
one implementation (same idempotency, same hashing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from vexa.auth import generate_token, hash_token
from vexa.db.models import APIToken, User

TOKEN_PREFIX_LENGTH = 6


class EmailTaken(Exception):
    """Another user already has that email."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token at creation: the only moment the plaintext exists."""

    row: APIToken
    plaintext: str


async def get_user(session: AsyncSession, user_id: int, *, with_tokens: bool = False) -> User | None:
    query = select(User).where(User.id == user_id)
    if with_tokens:
        query = query.options(selectinload(User.tokens))
    return (await session.execute(query)).scalar_one_or_none()


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return (
        await session.execute(select(User).where(func.lower(User.email) == email.lower()))
    ).scalar_one_or_none()


async def list_users(session: AsyncSession, skip: int, limit: int) -> list[User]:
    return list((await session.execute(select(User).order_by(User.id).offset(skip).limit(limit))).scalars())


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    name: str | None = None,
    image_url: str | None = None,
    max_concurrent_bots: int | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[User, bool]:
    """``(user, created)``; an existing email returns that user unchanged (idempotent, like upstream)."""
    existing = await get_user_by_email(session, email)
    if existing is not None:
        return existing, False
    user = User(email=email, name=name, image_url=image_url, data=data or {})
    if max_concurrent_bots is not None:
        user.max_concurrent_bots = max_concurrent_bots
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:  # a concurrent request created it first
        await session.rollback()
        existing = await get_user_by_email(session, email)
        if existing is None:
            raise
        return existing, False
    await session.refresh(user)
    return user, True


async def update_user(session: AsyncSession, user: User, changes: dict[str, Any]) -> User:
    """Apply only the fields the caller sent; ``data`` is merged key by key, as upstream does."""
    if "email" in changes and changes["email"] is not None and changes["email"].lower() != user.email.lower():
        other = await get_user_by_email(session, changes["email"])
        if other is not None and other.id != user.id:
            raise EmailTaken(changes["email"])
    for field in ("email", "name", "image_url", "max_concurrent_bots"):
        if field in changes and (changes[field] is not None or field in ("name", "image_url")):
            setattr(user, field, changes[field])
    if changes.get("data") is not None:
        user.data = {**(user.data or {}), **changes["data"]}
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise EmailTaken(changes.get("email")) from exc
    await session.refresh(user)
    return user


async def delete_user(session: AsyncSession, user: User) -> list[str]:
    """Delete the user (tokens and meetings cascade); returns the hashes of live tokens to revoke."""
    hashes = list(
        (
            await session.execute(
                select(APIToken.token_hash).where(APIToken.user_id == user.id, APIToken.revoked.is_(False))
            )
        ).scalars()
    )
    await session.execute(delete(User).where(User.id == user.id))
    await session.commit()
    return hashes


async def issue_token(
    session: AsyncSession, user_id: int, *, scope: str = "full", expires_at: datetime | None = None
) -> IssuedToken:
    """Store only the hash and a short prefix; hand the plaintext back once."""
    plaintext = generate_token()
    row = APIToken(
        token_hash=hash_token(plaintext),
        token_prefix=plaintext[:TOKEN_PREFIX_LENGTH],
        user_id=user_id,
        scope=scope,
        expires_at=expires_at,
    )
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return IssuedToken(row=row, plaintext=plaintext)


async def list_tokens(session: AsyncSession, user_id: int) -> list[APIToken]:
    return list(
        (
            await session.execute(select(APIToken).where(APIToken.user_id == user_id).order_by(APIToken.id))
        ).scalars()
    )


async def revoke_token(session: AsyncSession, token_id: int) -> APIToken | None:
    """Mark revoked (kept for the audit trail); None when there is no such token."""
    row = (await session.execute(select(APIToken).where(APIToken.id == token_id))).scalar_one_or_none()
    if row is None:
        return None
    if not row.revoked:
        row.revoked = True
        await session.commit()
    return row
