"""WS /ws: live transcript and status events for the caller's own meetings.

Protocol (upstream Vexa's)::

    → {"action": "subscribe", "meetings": [{"platform": "google_meet", "native_id": "abc-defg-hij"}]}
    ← {"type": "subscribed", "meetings": [{"platform", "native_id", "meeting_id"}]}
    → {"action": "unsubscribe", "meetings": [...]}      ← {"type": "unsubscribed", "meetings": [...]}
    → {"action": "ping"}                                ← {"type": "pong"}
    ← {"type": "error", "error": "...", ...}
    ← events as published: {"type": "transcript.mutable" | "transcript.finalized" | "meeting.status", ...}

The key comes in the ``X-API-Key`` header or ``?api_key=``; a browser, which can set
neither header nor keep keys out of URLs, offers the subprotocols ``vexa.v1`` and
``vexa.key.<key>`` instead (the server answers ``vexa.v1``, never echoing the key). A (platform,
native_id) pair resolves to the caller's most recent meeting with that id, by a
query scoped to the caller, so nobody can watch another user's meeting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy import select, tuple_

from vexa.auth import AuthenticatedUser, TokenVerifier, may_follow_live_events, out_of_scope_detail
from vexa.db.models import Meeting
from vexa.gateway.client import EXPIRED, REVOKED, SLOW, Client
from vexa.gateway.hub import EventHub
from vexa.platforms import native_id_problem

log = logging.getLogger(__name__)

router = APIRouter()

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4408  # our code: the client did not read fast enough and was dropped
MAX_MESSAGE_BYTES = 64 * 1024
SUBPROTOCOL = "vexa.v1"  # what a browser offers, with its key as "vexa.key.<key>"
KEY_SUBPROTOCOL_PREFIX = "vexa.key."


def _drop_slow(hub: EventHub, client: Client) -> None:
    """The hub's callback when a client's backlog is full: unhook it now; its endpoint closes it."""
    if client.ended.done():
        return
    hub.forget(client, client.meeting_ids())
    client.end(SLOW)
    log.warning("dropping slow WebSocket client of user %s (send backlog full)", client.user.user_id)


async def _close(websocket: WebSocket, code: int, reason: str, backstop_s: float = 30.0) -> None:
    """The server's close handshake gives up (and aborts the TCP connection) after its own
    close timeout when the peer does not read; ours is only a backstop."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code=code, reason=reason), backstop_s)


def _watch_revocation(
    verifier: TokenVerifier, key: str, user: AuthenticatedUser, end: Callable[[str], None]
) -> Callable[[], None]:
    """End the session (``REVOKED``) when this socket's key is revoked; after a missed-revocation
    window (``None``: the listener lost Redis) the key is checked again against the database.

    An expiring key's timer ends it as ``EXPIRED``: the loop's clock and the wall clock differ by
    a few milliseconds, so asking ``user.expired()`` right after the timer could still say no
    and the socket would be closed as revoked."""
    rechecks: set[asyncio.Task[None]] = set()

    async def recheck() -> None:
        with contextlib.suppress(Exception):  # a database error keeps the socket; the next signal retries
            if await verifier.verify(key) is None:
                end(REVOKED)

    def hook(token_hash: str | None) -> None:
        if token_hash == user.token_hash:
            end(REVOKED)
        elif token_hash is None:
            task = asyncio.get_running_loop().create_task(recheck())
            rechecks.add(task)
            task.add_done_callback(rechecks.discard)

    remove = verifier.on_revocation(hook)
    expiry = None
    if user.expires_at is not None:  # an expiring key's socket closes when the key expires
        left = (user.expires_at - datetime.now(UTC)).total_seconds()
        expiry = asyncio.get_running_loop().call_later(max(0.0, left), end, EXPIRED)

    def stop() -> None:
        remove()
        if expiry is not None:
            expiry.cancel()
        for task in rechecks:
            task.cancel()

    return stop


def _refusal(key: str | None, user: AuthenticatedUser | None) -> tuple[int, str] | None:
    """(close code, reason) for a caller who may not subscribe; None when they may."""
    if not key:
        return CLOSE_UNAUTHENTICATED, "Missing API key (X-API-Key header or api_key query parameter)"
    if user is None:
        return CLOSE_FORBIDDEN, "Invalid or revoked API key"
    if user.expired():
        return CLOSE_UNAUTHENTICATED, "API key expired"
    if not may_follow_live_events(user.scope):
        return CLOSE_FORBIDDEN, out_of_scope_detail(user.scope, "GET", "/ws")
    return None


def _key(websocket: WebSocket) -> str | None:
    for offered in websocket.scope.get("subprotocols") or ():
        if offered.startswith(KEY_SUBPROTOCOL_PREFIX):
            return offered[len(KEY_SUBPROTOCOL_PREFIX) :]
    return websocket.headers.get("x-api-key") or websocket.query_params.get("api_key")


def _subprotocol(websocket: WebSocket) -> str | None:
    return SUBPROTOCOL if SUBPROTOCOL in (websocket.scope.get("subprotocols") or ()) else None


def _parse_meetings(raw: Any) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """Valid (platform, native_id) pairs and the problems with the rest."""
    if not isinstance(raw, list) or not raw:
        return [], [{"error": "'meetings' must be a non-empty list of {platform, native_id}"}]
    pairs: list[tuple[str, str]] = []
    problems: list[dict[str, Any]] = []
    for item in raw:
        if not isinstance(item, dict):
            problems.append({"meeting": item, "error": "expected an object {platform, native_id}"})
            continue
        platform, native = item.get("platform"), item.get("native_id") or item.get("native_meeting_id")
        if not isinstance(platform, str) or not isinstance(native, str):
            problems.append({"meeting": item, "error": "platform and native_id must be strings"})
            continue
        problem = native_id_problem(platform, native)
        if problem:
            problems.append({"platform": platform, "native_id": native, "error": problem})
        elif (platform, native) not in pairs:
            pairs.append((platform, native))
    return pairs, problems


async def _resolve(
    websocket: WebSocket, user_id: int, pairs: list[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """The caller's newest meeting id for each pair; pairs of other users' meetings are simply absent."""
    query = (
        select(Meeting.platform, Meeting.platform_specific_id, Meeting.id)
        .where(Meeting.user_id == user_id, tuple_(Meeting.platform, Meeting.platform_specific_id).in_(pairs))
        .order_by(
            Meeting.platform, Meeting.platform_specific_id, Meeting.created_at.desc(), Meeting.id.desc()
        )
        .distinct(Meeting.platform, Meeting.platform_specific_id)
    )
    async with websocket.app.state.db.sessionmaker() as session:
        rows = (await session.execute(query)).all()
    return {(platform, native): meeting_id for platform, native, meeting_id in rows}


async def _subscribe(websocket: WebSocket, client: Client, hub: EventHub, raw: Any, limit: int) -> None:
    pairs, problems = _parse_meetings(raw)
    pairs = [p for p in pairs if p not in client.subscriptions]
    if len(client.subscriptions) + len(pairs) > limit:
        client.reply({"type": "error", "error": f"at most {limit} meetings per connection"})
        return
    found = await _resolve(websocket, client.user.user_id, pairs) if pairs else {}
    unknown = [{"platform": p, "native_id": n} for p, n in pairs if (p, n) not in found]
    client.subscriptions.update(found)
    # Acknowledged only once Redis confirmed each channel: every later event reaches this client.
    late = set(await hub.watch(set(found.values()), client))
    subscribed, unavailable = [], []
    for (platform, native), meeting_id in found.items():
        if meeting_id in late:
            del client.subscriptions[(platform, native)]
            unavailable.append({"platform": platform, "native_id": native})
        else:
            subscribed.append({"platform": platform, "native_id": native, "meeting_id": meeting_id})
    if problems:
        client.reply({"type": "error", "error": "invalid meetings", "details": problems})
    if unknown:
        client.reply({"type": "error", "error": "meetings not found", "meetings": unknown})
    if unavailable:
        client.reply(
            {"type": "error", "error": "live events unavailable (Redis); try again", "meetings": unavailable}
        )
    if subscribed or not (problems or unknown or unavailable):
        client.reply({"type": "subscribed", "meetings": subscribed})


async def _unsubscribe(client: Client, hub: EventHub, raw: Any) -> None:
    pairs, problems = _parse_meetings(raw)
    done = []
    for pair in pairs:
        meeting_id = client.subscriptions.pop(pair, None)
        if meeting_id is not None:
            if meeting_id not in client.subscriptions.values():
                await hub.unwatch(meeting_id, client)
            done.append({"platform": pair[0], "native_id": pair[1]})
    if problems:
        client.reply({"type": "error", "error": "invalid meetings", "details": problems})
    client.reply({"type": "unsubscribed", "meetings": done})


async def _handle(websocket: WebSocket, client: Client, hub: EventHub, text: str, limit: int) -> None:
    try:
        message = json.loads(text)
    except ValueError:
        client.reply({"type": "error", "error": "messages must be JSON objects"})
        return
    action = message.get("action") if isinstance(message, dict) else None
    if action == "ping":
        client.reply({"type": "pong"})
    elif action == "subscribe":
        await _subscribe(websocket, client, hub, message.get("meetings"), limit)
    elif action == "unsubscribe":
        await _unsubscribe(client, hub, message.get("meetings"))
    else:
        client.reply({"type": "error", "error": "unknown action; expected subscribe, unsubscribe or ping"})


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    state = websocket.app.state
    verifier: TokenVerifier = state.token_verifier
    hub: EventHub = state.hub
    key = _key(websocket)
    await websocket.accept(subprotocol=_subprotocol(websocket))
    user = await verifier.verify(key) if key else None
    refusal = _refusal(key, user)
    if refusal is not None:
        code, error = refusal
        await websocket.send_text(json.dumps({"type": "error", "error": error}))
        await _close(websocket, code, error)
        return
    assert user is not None

    client = Client(websocket.send, user, state.settings.ws_queue_size)
    stop_watching = _watch_revocation(verifier, key or "", user, client.end)
    limit = state.settings.ws_max_meetings
    receive: asyncio.Future[str] | None = None
    try:
        while True:
            receive = asyncio.ensure_future(websocket.receive_text())
            await asyncio.wait({receive, client.ended}, return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():  # dropped as too slow, key revoked, or the socket broke while sending
                break
            text = receive.result()
            if len(text) > MAX_MESSAGE_BYTES:
                client.reply({"type": "error", "error": "message too large"})
                continue
            await _handle(websocket, client, hub, text, limit)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        stop_watching()
        hub.forget(client, client.meeting_ids())
        client.subscriptions.clear()
        client.cancel_backlog()
        if receive is not None:
            receive.cancel()
            await asyncio.gather(receive, return_exceptions=True)
        reason = client.ended.result() if client.ended.done() else None
        if reason == EXPIRED or (reason == REVOKED and user.expired()):
            await _close(websocket, CLOSE_UNAUTHENTICATED, "API key expired")
        elif reason == REVOKED:
            await _close(websocket, CLOSE_FORBIDDEN, "API key revoked")
        elif reason == SLOW:
            await _close(websocket, CLOSE_TOO_SLOW, "too slow: send queue full")
