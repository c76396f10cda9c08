"""/admin/* routes: users and their API tokens. Every route needs the admin key."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from vexa.admin import store
from vexa.admin.audit import audit
from vexa.admin.security import require_admin
from vexa.auth import Scope, TokenVerifier, publish_revocation
from vexa.db.models import User
from vexa.schemas import (
    ErrorResponse,
    TokenCreate,
    TokenInfo,
    TokenResponse,
    UserCreate,
    UserDetailResponse,
    UserResponse,
    UserUpdate,
    storable_problem,
)

log = logging.getLogger(__name__)

ADMIN_ERRORS: dict[int | str, dict] = {
    401: {"model": ErrorResponse, "description": "Missing X-Admin-API-Key"},
    403: {"model": ErrorResponse, "description": "Wrong X-Admin-API-Key"},
    422: {"model": ErrorResponse, "description": "Invalid request"},
}
NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such user or token"}}

router = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses=ADMIN_ERRORS
)

ACTOR = "admin-key"


def _sessions(request: Request):
    return request.app.state.db.sessionmaker()


async def _user_or_404(session: AsyncSession, user_id: int) -> User:
    user = await store.get_user(session, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="User not found")
    return user


async def _revoke_everywhere(request: Request, hashes: list[str]) -> None:
    """Drop the hashes from this process's cache and tell every other process over Redis."""
    verifier: TokenVerifier = request.app.state.token_verifier
    redis: Redis = request.app.state.redis
    for digest in hashes:
        verifier.forget(digest)
        try:
            await publish_revocation(redis, digest)
        except Exception:  # the DB row is revoked already; caches expire within their TTL
            log.warning("could not publish a token revocation; caches will expire it within their TTL")


@router.post(
    "/users",
    response_model=UserResponse,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": UserResponse, "description": "A user with that email exists; returned unchanged"}
    },
    summary="Create a user (idempotent by email)",
)
async def create_user(body: UserCreate, request: Request) -> UserResponse | JSONResponse:
    async with _sessions(request) as session:
        user, created = await store.create_user(session, **body.model_dump())
    result = UserResponse.model_validate(user)
    if not created:
        return JSONResponse(result.model_dump(mode="json"), status_code=status.HTTP_200_OK)
    audit("user.create", ACTOR, user_id=user.id, email=user.email)
    return result


@router.get("/users", response_model=list[UserResponse], summary="List users")
async def list_users(
    request: Request, skip: int = Query(0, ge=0, le=2**31 - 1), limit: int = Query(100, ge=1, le=1000)
) -> list[UserResponse]:
    async with _sessions(request) as session:
        users = await store.list_users(session, skip, limit)
    return [UserResponse.model_validate(u) for u in users]


@router.get(
    "/users/email/{email}", response_model=UserResponse, responses=NOT_FOUND, summary="Find a user by email"
)
async def get_user_by_email(request: Request, email: str = Path(max_length=255)) -> UserResponse:
    if storable_problem(email):  # no stored email can contain it, and PostgreSQL would refuse the query
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="User not found")
    async with _sessions(request) as session:
        user = await store.get_user_by_email(session, email)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="User not found")
    return UserResponse.model_validate(user)


@router.get(
    "/users/{user_id}",
    response_model=UserDetailResponse,
    responses=NOT_FOUND,
    summary="A user and their tokens",
)
async def get_user(request: Request, user_id: int = Path(ge=1, le=2**31 - 1)) -> UserDetailResponse:
    async with _sessions(request) as session:
        user = await store.get_user(session, user_id, with_tokens=True)
        if user is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="User not found")
        return UserDetailResponse(
            **UserResponse.model_validate(user).model_dump(),
            api_tokens=[TokenInfo.model_validate(t) for t in sorted(user.tokens, key=lambda t: t.id)],
        )


@router.patch(
    "/users/{user_id}",
    response_model=UserResponse,
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "Email already used"}},
    summary="Update a user's fields",
)
async def update_user(
    body: UserUpdate, request: Request, user_id: int = Path(ge=1, le=2**31 - 1)
) -> UserResponse:
    changes = body.model_dump(exclude_unset=True)
    async with _sessions(request) as session:
        user = await _user_or_404(session, user_id)
        try:
            user = await store.update_user(session, user, changes)
        except store.EmailTaken:
            raise HTTPException(
                status.HTTP_409_CONFLICT, detail="Another user already has that email"
            ) from None
    audit("user.update", ACTOR, user_id=user_id, fields=sorted(changes))
    return UserResponse.model_validate(user)


@router.delete(
    "/users/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
    summary="Delete a user, their tokens and meetings",
)
async def delete_user(request: Request, user_id: int = Path(ge=1, le=2**31 - 1)) -> Response:
    async with _sessions(request) as session:
        user = await _user_or_404(session, user_id)
        hashes = await store.delete_user(session, user)
    await _revoke_everywhere(request, hashes)
    audit("user.delete", ACTOR, user_id=user_id, tokens_revoked=len(hashes))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/{user_id}/tokens",
    response_model=TokenResponse,
    status_code=status.HTTP_201_CREATED,
    responses=NOT_FOUND,
    summary="Issue an API token (the plaintext is shown only in this response)",
)
async def create_token(
    request: Request,
    user_id: int = Path(ge=1, le=2**31 - 1),
    body: TokenCreate | None = Body(None),
    scope: Scope | None = Query(None, description="Same as the body's scope (upstream passes a query)."),
    expires_in: int | None = Query(None, ge=60, le=10 * 365 * 86400, description="Seconds to expiry."),
) -> TokenResponse:
    """Without a body or query the key is ``full`` and never expires (what upstream issues)."""
    spec = body or TokenCreate()
    chosen_scope = scope.value if scope is not None and body is None else spec.scope
    expires_at = spec.expires_at
    seconds = spec.expires_in if spec.expires_in is not None else expires_in
    if seconds is not None and expires_at is None:
        expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail="expires_at is in the past")
    async with _sessions(request) as session:
        await _user_or_404(session, user_id)
        issued = await store.issue_token(session, user_id, scope=chosen_scope, expires_at=expires_at)
    audit(
        "token.create",
        ACTOR,
        user_id=user_id,
        token_id=issued.row.id,
        scope=chosen_scope,
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    return TokenResponse(
        id=issued.row.id,
        user_id=user_id,
        token=issued.plaintext,
        created_at=issued.row.created_at,
        scope=issued.row.scope,
        expires_at=issued.row.expires_at,
    )


@router.get(
    "/users/{user_id}/tokens", response_model=list[TokenInfo], responses=NOT_FOUND, summary="A user's tokens"
)
async def list_tokens(request: Request, user_id: int = Path(ge=1, le=2**31 - 1)) -> list[TokenInfo]:
    async with _sessions(request) as session:
        await _user_or_404(session, user_id)
        rows = await store.list_tokens(session, user_id)
    return [TokenInfo.model_validate(r) for r in rows]


@router.delete(
    "/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
    summary="Revoke a token at once, in every service",
)
async def revoke_token(request: Request, token_id: int = Path(ge=1, le=2**31 - 1)) -> Response:
    async with _sessions(request) as session:
        row = await store.revoke_token(session, token_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Token not found")
    await _revoke_everywhere(request, [row.token_hash])
    audit("token.revoke", ACTOR, user_id=row.user_id, token_id=token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
