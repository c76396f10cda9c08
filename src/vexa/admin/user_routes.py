"""User-facing routes served by admin-api (as upstream Vexa does): the user's webhook.

``PUT /user/webhook`` takes upstream's fields, checks the URL against the SSRF
guard and answers with the secret once; ``GET`` shows it masked; ``DELETE``
turns webhooks off; ``GET /user/webhook/deliveries`` is the delivery log and
``POST /user/webhook/test`` sends a signed ping at once and says what the
receiver answered.
"""

from __future__ import annotations

import json
import uuid

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from vexa.admin.audit import audit
from vexa.auth import AuthenticatedUser, require_user
from vexa.schemas import (
    ErrorResponse,
    UserResponse,
    WebhookDeliveries,
    WebhookInfo,
    WebhookSetResponse,
    WebhookTestResult,
    WebhookUpdate,
)
from vexa.webhooks import config, deliveries
from vexa.webhooks.delivery import attempt, host_of, make_client
from vexa.webhooks.events import PING, enabled_events, envelope
from vexa.webhooks.signing import mask
from vexa.webhooks.ssrf import UnsafeWebhookURL, resolve_target

router = APIRouter(
    tags=["user"],
    responses={
        401: {"model": ErrorResponse, "description": "Missing X-API-Key"},
        403: {"model": ErrorResponse, "description": "Unknown or revoked X-API-Key"},
    },
)
NO_WEBHOOK = {404: {"model": ErrorResponse, "description": "No webhook is set"}}
REVOKED = "Invalid or revoked API key"


def _settings(request: Request):
    return request.app.state.settings


@router.put(
    "/user/webhook",
    response_model=WebhookSetResponse,
    responses={
        422: {"model": ErrorResponse, "description": "Invalid or unsafe webhook URL, or unknown event"}
    },
    summary="Set the webhook URL, secret and events",
)
async def set_webhook(
    body: WebhookUpdate, request: Request, user: AuthenticatedUser = Depends(require_user)
) -> WebhookSetResponse:
    url = str(body.webhook_url)
    try:
        await resolve_target(url, allow_private=_settings(request).webhook_allow_private_urls)
    except UnsafeWebhookURL as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[{"loc": ["body", "webhook_url"], "msg": str(exc), "type": "value_error"}],
        ) from None
    events = body.webhook_events if isinstance(body.webhook_events, dict) else None
    async with request.app.state.db.sessionmaker() as session:
        saved = await config.save(session, user.user_id, url, events, body.webhook_secret)
    if saved is None:  # deleted between the key check and now
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=REVOKED)
    row, shown = saved
    audit(
        "user.webhook",
        f"user:{user.user_id}",
        user_id=user.user_id,
        token_id=user.token_id,
        host=host_of(url),
        secret="set" if body.webhook_secret else ("generated" if shown else "kept"),
    )
    return WebhookSetResponse(
        **UserResponse.model_validate(row).model_dump(),
        webhook_secret=shown,
        webhook_events=enabled_events((row.data or {}).get(config.EVENTS_KEY)),
    )


@router.get("/user/webhook", response_model=WebhookInfo, summary="The webhook settings (secret masked)")
async def get_webhook(request: Request, user: AuthenticatedUser = Depends(require_user)) -> WebhookInfo:
    async with request.app.state.db.sessionmaker() as session:
        current = await config.load(session, user.user_id)
    if current is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=REVOKED)
    return WebhookInfo(
        webhook_url=current.url,
        webhook_secret_set=bool(current.secret),
        webhook_secret=mask(current.secret),
        webhook_events=current.events,
        enabled_events=enabled_events(current.events) if current.url else [],
    )


@router.delete(
    "/user/webhook",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Stop webhooks: forget the URL, events and secret",
)
async def delete_webhook(request: Request, user: AuthenticatedUser = Depends(require_user)) -> Response:
    async with request.app.state.db.sessionmaker() as session:
        if not await config.clear(session, user.user_id):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=REVOKED)
    audit("user.webhook.delete", f"user:{user.user_id}", user_id=user.user_id, token_id=user.token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/user/webhook/deliveries",
    response_model=WebhookDeliveries,
    summary="Recent delivery attempts, newest first (host, status code, attempt, outcome)",
)
async def list_deliveries(
    request: Request,
    limit: int = Query(100, ge=1, le=deliveries.KEEP),
    user: AuthenticatedUser = Depends(require_user),
) -> WebhookDeliveries:
    rows = await deliveries.recent(request.app.state.redis, user.user_id, limit)
    return WebhookDeliveries.model_validate({"deliveries": rows})


@router.post(
    "/user/webhook/test",
    response_model=WebhookTestResult,
    responses=NO_WEBHOOK,
    summary="Send a signed webhook.ping now and report the receiver's answer",
)
async def test_webhook(
    request: Request, user: AuthenticatedUser = Depends(require_user)
) -> WebhookTestResult:
    settings = _settings(request)
    async with request.app.state.db.sessionmaker() as session:
        current = await config.load(session, user.user_id)
    if current is None or not current.url:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No webhook is set; PUT /user/webhook first")
    ident = f"evt_{uuid.uuid4().hex}"
    body = envelope(PING, {"message": "Vexa webhook test", "user_id": user.user_id}, ident)
    raw = json.dumps(body, separators=(",", ":")).encode()
    async with make_client(
        timeout_s=settings.webhook_timeout_s, allow_private=settings.webhook_allow_private_urls
    ) as client:
        result = await attempt(
            client,
            current.url,
            current.secret,
            ident,
            PING,
            raw,
            legacy_bearer=settings.webhook_legacy_bearer,
        )
    outcome: deliveries.Outcome = "delivered" if result.ok else ("blocked" if result.blocked else "failed")
    await deliveries.record(
        request.app.state.redis,
        user.user_id,
        deliveries.DeliveryRecord(
            event_id=ident,
            event_type=PING,
            outcome=outcome,
            attempt=1,
            target_host=host_of(current.url),
            status_code=result.status_code,
            error=result.error,
            duration_ms=result.duration_ms,
        ),
    )
    return WebhookTestResult(
        event_id=ident,
        delivered=result.ok,
        status_code=result.status_code,
        error=result.error,
        duration_ms=result.duration_ms,
    )
