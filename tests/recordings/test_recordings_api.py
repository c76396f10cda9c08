"""Recordings through the collector's API, on both storage backends (S3: a moto STAND-IN server).

Real PostgreSQL and Redis, the collector app in-process, audio written by the bot's own
recorder and finalized by the post-processor's own code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest_asyncio
from recording_helpers import insert_meeting, media, record, tone
from sqlalchemy import text

from vexa.collector.app import create_app
from vexa.collector.retention import expire_once
from vexa.collector.settings import CollectorSettings
from vexa.db import Database
from vexa.recordings.audio import SR, decode


@pytest_asyncio.fixture
async def api(database_url: str, redis_url: str, backend_env: dict[str, str]) -> AsyncIterator:
    settings = CollectorSettings(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CONSUMER_NAME="test-recordings",
        DB_POOL_SIZE=3,
        **backend_env,  # type: ignore[arg-type]
    )
    app = create_app(settings, run_workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield app, client


async def test_list_fetch_ranges_scoping_and_deletion(api, db: Database, make_user) -> None:
    app, client = api
    storage, post = app.state.recording_storage, app.state.collector.postprocessor
    owner, key = await make_user()
    _, other_key = await make_user()
    meeting_id, rec = await insert_meeting(db, owner, "rec-aaaa-bbb")
    alice, bob = tone(3.0, 440), tone(2.5, 660)
    await record(storage, rec["storage_prefix"], {"Alice": (0.0, alice), "Bob": (3.5, bob)})
    assert await post.finalize_recordings(meeting_id) is not None

    listed = (await client.get("/recordings", headers={"X-API-Key": key})).json()["recordings"]
    assert [r["id"] for r in listed] == [rec["id"]]
    got = (await client.get(f"/recordings/{rec['id']}", headers={"X-API-Key": key})).json()
    assert got["status"] == "completed" and got["meeting_id"] == meeting_id and "storage_prefix" not in got
    assert {m["metadata"].get("participant") for m in got["media_files"]} == {None, "Alice", "Bob"}
    mixed = media(got, "mixed")
    assert abs(mixed["duration_seconds"] - 6.0) < 0.15

    url = f"/recordings/{rec['id']}/media/{mixed['id']}/raw"
    whole = await client.get(url, headers={"X-API-Key": key})
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "audio/flac" and len(whole.content) == mixed["file_size_bytes"]
    audio = decode(whole.content)
    assert np.allclose(audio[: len(alice)], alice, atol=1e-3), "Alice's audio at the start"
    assert np.allclose(audio[int(3.5 * SR) : int(3.5 * SR) + len(bob)], bob, atol=1e-3), "Bob at 3.5 s"

    part = await client.get(url, headers={"X-API-Key": key, "Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == whole.content[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(whole.content)}"
    tail = await client.get(url, headers={"X-API-Key": key, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole.content[-10:]
    past = await client.get(url, headers={"X-API-Key": key, "Range": f"bytes={len(whole.content)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(whole.content)}"

    # Another user sees none of it.
    assert (await client.get("/recordings", headers={"X-API-Key": other_key})).json() == {"recordings": []}
    for path in (f"/recordings/{rec['id']}", url):
        assert (await client.get(path, headers={"X-API-Key": other_key})).status_code == 404
    assert (
        await client.delete(f"/recordings/{rec['id']}", headers={"X-API-Key": other_key})
    ).status_code == 404

    # Deleting the meeting removes its recordings' files.
    assert await storage.list(str(meeting_id))
    deleted = await client.delete("/meetings/google_meet/rec-aaaa-bbb", headers={"X-API-Key": key})
    assert deleted.status_code == 200, deleted.text
    assert await storage.list(str(meeting_id)) == []
    assert (await client.get(f"/recordings/{rec['id']}", headers={"X-API-Key": key})).status_code == 404


async def test_retention_deletes_old_recordings_only(api, db: Database, make_user) -> None:
    app, client = api
    storage, post = app.state.recording_storage, app.state.collector.postprocessor
    owner, key = await make_user()
    old_id, old = await insert_meeting(db, owner, "old-aaaa-bbb")
    new_id, new = await insert_meeting(db, owner, "new-aaaa-bbb")
    for meeting_id, rec in ((old_id, old), (new_id, new)):
        await record(storage, rec["storage_prefix"], {"Alice": (0.0, tone(1.0, 440))})
        await post.finalize_recordings(meeting_id)
    long_ago = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE meetings SET data = jsonb_set(data, '{recordings,0,completed_at}', "
                "to_jsonb(CAST(:t AS text))) WHERE id = :id"
            ),
            {"t": long_ago, "id": old_id},
        )
    assert await expire_once(db.sessionmaker, storage, days=30) == 1
    assert await storage.list(str(old_id)) == [] and await storage.list(str(new_id))
    ids = [
        r["id"] for r in (await client.get("/recordings", headers={"X-API-Key": key})).json()["recordings"]
    ]
    assert ids == [new["id"]]
    assert await expire_once(db.sessionmaker, storage, days=0) == 0, "0 keeps recordings forever"
