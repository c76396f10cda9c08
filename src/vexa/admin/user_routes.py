"""User-facing routes served by admin-api (as upstream Vexa does): the webhook URL."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, status

from vexa.admin import store
from vexa.admin.audit import audit
from vexa.auth import AuthenticatedUser, require_user
from vexa.schemas import ErrorResponse, UserResponse, WebhookUpdate

router = APIRouter(
    tags=["user"],
    responses={
        401: {"model": ErrorResponse, "description": "Missing X-API-Key"},
        403: {"model": ErrorResponse, "description": "Unknown or revoked X-API-Key"},
        422: {"model": ErrorResponse, "description": "Invalid webhook URL"},
    },
)


@router.put(
    "/user/webhook", response_model=UserResponse, summary="Set the URL that receives meeting webhooks"
)
async def set_webhook(
    body: WebhookUpdate, request: Request, user: AuthenticatedUser = Depends(require_user)
) -> UserResponse:
    async with request.app.state.db.sessionmaker() as session:
        row = await store.set_webhook(session, user.user_id, str(body.webhook_url))
    if row is None:  # deleted between the key check and now
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Invalid or revoked API key")
    audit("user.webhook", f"user:{user.user_id}", user_id=user.user_id, token_id=user.token_id)
    return UserResponse.model_validate(row)
