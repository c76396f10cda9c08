"""WS /ws end to end: real gateway process, real PostgreSQL/Valkey, events published on real channels."""

from __future__ import annotations

import asyncio
import base64
import json
import os

import pytest
from sqlalchemy import text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from vexa.events import publish_event

pytestmark = pytest.mark.timeout(120)

MEET = {"platform": "google_meet", "native_id": "abc-defg-hij"}


def ws_url(gateway, key: str | None = None) -> str:
    url = gateway.base_url.replace("http://", "ws://") + "/ws"
    return url + (f"?api_key={key}" if key else "")


async def insert_meeting(db, user_id: int, native: str = "abc-defg-hij", status: str = "active") -> int:
    async with db.engine.begin() as conn:
        return (
            await conn.execute(
                text(
                    "INSERT INTO meetings (user_id, platform, platform_specific_id, status) "
                    "VALUES (:u, 'google_meet', :n, :s) RETURNING id"
                ),
                {"u": user_id, "n": native, "s": status},
            )
        ).scalar_one()


async def recv_json(ws, wait: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), wait))


async def nothing_arrives(ws, within: float = 0.5) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), within)
    except TimeoutError:
        return True
    return False


async def test_missing_or_bad_key_is_refused(gateway, db):
    async with connect(ws_url(gateway)) as ws:
        assert (await recv_json(ws))["type"] == "error"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 4401
    async with connect(ws_url(gateway, "x" * 40)) as ws:
        assert "Invalid or revoked" in (await recv_json(ws))["error"]
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 4403


async def test_ping_and_protocol_errors(gateway, make_user):
    _, token = await make_user()
    async with connect(ws_url(gateway), additional_headers={"X-API-Key": token}) as ws:
        await ws.send(json.dumps({"action": "ping"}))
        assert await recv_json(ws) == {"type": "pong"}
        await ws.send("not json")
        assert (await recv_json(ws))["type"] == "error"
        await ws.send(json.dumps({"action": "dance"}))
        assert "unknown action" in (await recv_json(ws))["error"]
        await ws.send(
            json.dumps({"action": "subscribe", "meetings": [{"platform": "zoom", "native_id": "12ab"}]})
        )
        error = await recv_json(ws)
        assert error["type"] == "error" and "9 to 11 digits" in error["details"][0]["error"]


async def test_subscribe_receive_unsubscribe(gateway, make_user, db, redis):
    user_id, token = await make_user()
    await insert_meeting(db, user_id, status="completed")  # an older meeting with the same native id
    meeting_id = await insert_meeting(db, user_id)
    async with connect(ws_url(gateway, token)) as ws:
        await ws.send(json.dumps({"action": "subscribe", "meetings": [MEET]}))
        subscribed = await recv_json(ws)
        assert subscribed == {"type": "subscribed", "meetings": [{**MEET, "meeting_id": meeting_id}]}

        payload = {"segments": [{"start": 0.0, "end": 1.5, "text": "hello there", "completed": False}]}
        receivers = await publish_event(
            redis, "transcript.mutable", meeting_id, "google_meet", "abc-defg-hij", payload
        )
        assert receivers == 1  # one Redis subscriber (the gateway's hub), whatever the number of clients
        event = await recv_json(ws)
        assert event == {
            "type": "transcript.mutable",
            "meeting": {"id": meeting_id, "platform": "google_meet", "native_id": "abc-defg-hij"},
            "payload": payload,
        }
        await publish_event(
            redis,
            "meeting.status",
            meeting_id,
            "google_meet",
            "abc-defg-hij",
            {"status": "completed", "reason": None},
        )
        assert (await recv_json(ws))["payload"]["status"] == "completed"

        await ws.send(json.dumps({"action": "unsubscribe", "meetings": [MEET]}))
        assert await recv_json(ws) == {"type": "unsubscribed", "meetings": [MEET]}
        await publish_event(redis, "transcript.finalized", meeting_id, "google_meet", "abc-defg-hij", payload)
        assert await nothing_arrives(ws)


async def test_other_users_meetings_are_refused(gateway, make_user, db, redis):
    owner_id, _ = await make_user()
    _, intruder_token = await make_user()
    meeting_id = await insert_meeting(db, owner_id)
    async with connect(ws_url(gateway, intruder_token)) as ws:
        await ws.send(json.dumps({"action": "subscribe", "meetings": [MEET]}))
        error = await recv_json(ws)
        assert error == {"type": "error", "error": "meetings not found", "meetings": [MEET]}
        await publish_event(
            redis, "transcript.mutable", meeting_id, "google_meet", "abc-defg-hij", {"segments": []}
        )
        assert await nothing_arrives(ws)


async def test_many_clients_share_one_redis_subscription(gateway, make_user, db, redis):
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    clients = [await connect(ws_url(gateway, token)) for _ in range(20)]
    try:
        for ws in clients:
            await ws.send(json.dumps({"action": "subscribe", "meetings": [MEET]}))
            assert (await recv_json(ws))["type"] == "subscribed"
        numsub = dict(await redis.pubsub_numsub(f"meeting:{meeting_id}:events"))
        assert numsub[f"meeting:{meeting_id}:events"] == 1
        await publish_event(
            redis, "transcript.mutable", meeting_id, "google_meet", "abc-defg-hij", {"segments": []}
        )
        for ws in clients:
            assert (await recv_json(ws))["type"] == "transcript.mutable"
    finally:
        for ws in clients:
            await ws.close()
    # The last client gone, the gateway drops its Redis subscription (bounded wait).
    for _ in range(50):
        if (
            dict(await redis.pubsub_numsub(f"meeting:{meeting_id}:events"))[f"meeting:{meeting_id}:events"]
            == 0
        ):
            break
        await asyncio.sleep(0.1)
    assert (
        dict(await redis.pubsub_numsub(f"meeting:{meeting_id}:events"))[f"meeting:{meeting_id}:events"] == 0
    )


async def test_slow_client_is_dropped_and_others_keep_up(gateway, make_user, db, redis):
    """The test gateway has WS_QUEUE_SIZE=8: a client that stops reading falls behind and is cut off."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    fast = await connect(ws_url(gateway, token), max_size=None)
    slow = await connect(ws_url(gateway, token), max_size=None, max_queue=1)
    try:
        for ws in (fast, slow):
            await ws.send(json.dumps({"action": "subscribe", "meetings": [MEET]}))
            assert (await recv_json(ws))["type"] == "subscribed"
        # Incompressible text: permessage-deflate would shrink a repeated letter to nothing.
        big = {
            "segments": [{"start": 0.0, "end": 1.0, "text": base64.b64encode(os.urandom(150_000)).decode()}]
        }
        count = 150  # ~30 MB in all: far beyond socket buffers plus the 8-message queue
        received = 0

        async def read_fast() -> None:
            nonlocal received
            while received < count:
                event = await recv_json(fast, wait=20)
                assert event["type"] == "transcript.mutable"
                received += 1

        reader = asyncio.create_task(read_fast())
        for i in range(count):
            big["segments"][0]["start"] = float(i)
            await publish_event(redis, "transcript.mutable", meeting_id, "google_meet", "abc-defg-hij", big)
            await asyncio.sleep(0.002)  # let the fast reader keep pace, as a live client would
        await asyncio.wait_for(reader, 60)
        assert received == count

        # The slow client now reads what was buffered for it, then finds itself disconnected as too slow:
        # with our close code when the close frame got through its full buffers in time, else aborted.
        got = 0
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(count + 1):
                await asyncio.wait_for(slow.recv(), 20)
                got += 1
        assert got < count
        assert closed.value.rcvd is None or closed.value.rcvd.code == 4408
    finally:
        await fast.close()
        await slow.close()


async def test_event_hub_survives_a_dropped_redis_connection(gateway, make_user, db, redis):
    """Kill the hub's pub/sub connection server-side: it reconnects and re-subscribes by itself."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id)
    async with connect(ws_url(gateway, token)) as ws:
        await ws.send(json.dumps({"action": "subscribe", "meetings": [MEET]}))
        assert (await recv_json(ws))["type"] == "subscribed"
        hubs = [c for c in await redis.client_list() if c.get("name") == "vexa-gateway-hub"]
        assert hubs
        for client in hubs:
            await redis.client_kill_filter(_id=client["id"])
        # Pub/sub is at-most-once: keep publishing (bounded) until the re-subscribed hub delivers one.
        got = None
        for attempt in range(50):
            await publish_event(
                redis, "transcript.mutable", meeting_id, "google_meet", "abc-defg-hij", {"n": attempt}
            )
            try:
                got = await recv_json(ws, wait=0.2)
                break
            except TimeoutError:
                continue
        assert got is not None and got["type"] == "transcript.mutable"
        renamed = [c for c in await redis.client_list() if c.get("name") == "vexa-gateway-hub"]
        assert renamed and {c["id"] for c in renamed}.isdisjoint({c["id"] for c in hubs})


async def test_a_revoked_keys_socket_is_closed_within_a_second(gateway, admin_api, admin_headers, db):
    """Revoking a key (admin-api) closes the open WebSockets that authenticated with it."""
    import httpx

    async with httpx.AsyncClient(base_url=admin_api.base_url, timeout=10) as admin:
        user = await admin.post(
            "/admin/users", json={"email": "ws-revoke@example.com"}, headers=admin_headers
        )
        issued = (await admin.post(f"/admin/users/{user.json()['id']}/tokens", headers=admin_headers)).json()
        await insert_meeting(db, user.json()["id"])
        async with connect(ws_url(gateway, issued["token"])) as ws:
            await ws.send(json.dumps({"action": "subscribe", "meetings": [MEET]}))
            assert (await recv_json(ws))["type"] == "subscribed"
            revoked_at = asyncio.get_running_loop().time()
            assert (
                await admin.delete(f"/admin/tokens/{issued['id']}", headers=admin_headers)
            ).status_code == 204
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            assert asyncio.get_running_loop().time() - revoked_at < 1.0
            assert closed.value.rcvd.code == 4403 and "revoked" in closed.value.rcvd.reason


async def test_subscribed_means_live_even_while_the_hub_reconnects(gateway, make_user, db, redis):
    """ "subscribed" is sent only once Redis confirmed the channel: an event published right after
    the acknowledgement arrives, even when the hub's connection was just killed (before, the hub
    acknowledged at once while disconnected and the event was lost)."""
    user_id, token = await make_user()
    natives = [f"lv{c}-ackn-liv" for c in "abcde"]
    meeting_ids = [await insert_meeting(db, user_id, native) for native in natives]
    for native, meeting_id in zip(natives, meeting_ids, strict=True):
        async with connect(ws_url(gateway, token)) as ws:
            for client in [c for c in await redis.client_list() if c.get("name") == "vexa-gateway-hub"]:
                await redis.client_kill_filter(_id=client["id"])
            await ws.send(
                json.dumps(
                    {"action": "subscribe", "meetings": [{"platform": "google_meet", "native_id": native}]}
                )
            )
            assert (await recv_json(ws, wait=10))["type"] == "subscribed"
            await publish_event(redis, "transcript.mutable", meeting_id, "google_meet", native, {"n": native})
            event = await recv_json(ws, wait=5)
            assert event["type"] == "transcript.mutable" and event["payload"] == {"n": native}


async def test_every_watcher_joining_a_pending_channel_waits_for_it(gateway, make_user, db, redis):
    """Fifty clients subscribe to one fresh meeting at once; each publishes as soon as it is
    acknowledged, and every client receives every event published after its own acknowledgement."""
    user_id, token = await make_user()
    native = "jnp-qrst-uvw"
    meeting_id = await insert_meeting(db, user_id, native)
    clients = [await connect(ws_url(gateway, token)) for _ in range(50)]
    try:
        request = json.dumps(
            {"action": "subscribe", "meetings": [{"platform": "google_meet", "native_id": native}]}
        )
        await asyncio.gather(*(ws.send(request) for ws in clients))
        published: list[int] = []  # per client, how many events were published before its ack

        early: dict[int, set[int]] = {i: set() for i in range(len(clients))}

        async def ack_then_publish(i: int, ws) -> None:
            # Others' events may come first: a watcher receives once its channel is live.
            while (reply := await recv_json(ws, wait=10))["type"] != "subscribed":
                early[i].add(reply["payload"]["from"])
            published.append(i)
            await publish_event(redis, "transcript.mutable", meeting_id, "google_meet", native, {"from": i})

        await asyncio.gather(*(ack_then_publish(i, ws) for i, ws in enumerate(clients)))
        order = {sender: k for k, sender in enumerate(published)}
        for i, ws in enumerate(clients):
            need, got = set(published[order[i] :]), early[i]
            while not need <= got:  # a missing event ends in a TimeoutError
                got.add((await recv_json(ws, wait=5))["payload"]["from"])
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))
