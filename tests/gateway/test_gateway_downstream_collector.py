"""Forwarding to the real collector process."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from vexa.recordings.audio import decode, encode_flac
from vexa.recordings.finalize import finalize
from vexa.recordings.records import new_recording
from vexa.recordings.storage import LocalStorage

pytestmark = pytest.mark.timeout(120)


async def test_meetings_and_transcripts_are_user_scoped(collector_gateway, make_user, db):
    owner_id, owner_token = await make_user()
    _, other_token = await make_user()
    async with db.engine.begin() as conn:
        meeting_id = (
            await conn.execute(
                text(
                    "INSERT INTO meetings (user_id, platform, platform_specific_id, status) "
                    "VALUES (:u, 'google_meet', 'abc-defg-hij', 'completed') RETURNING id"
                ),
                {"u": owner_id},
            )
        ).scalar_one()
    async with httpx.AsyncClient(base_url=collector_gateway.base_url, timeout=10) as client:
        mine = await client.get("/meetings", headers={"X-API-Key": owner_token})
        assert mine.status_code == 200 and [m["id"] for m in mine.json()["meetings"]] == [meeting_id]
        theirs = await client.get("/meetings", headers={"X-API-Key": other_token})
        assert theirs.status_code == 200 and theirs.json()["meetings"] == []

        transcript = await client.get(
            "/transcripts/google_meet/abc-defg-hij", headers={"X-API-Key": owner_token}
        )
        assert transcript.status_code == 200 and transcript.json()["id"] == meeting_id
        denied = await client.get("/transcripts/google_meet/abc-defg-hij", headers={"X-API-Key": other_token})
        assert denied.status_code == 404
        patched = await client.patch(
            "/meetings/google_meet/abc-defg-hij",
            json={"data": {"name": "x"}},
            headers={"X-API-Key": other_token},
        )
        assert patched.status_code == 404


async def test_upstream_bots_list_and_meeting_by_id_are_user_scoped(collector_gateway, make_user, db):
    owner_id, owner_token = await make_user()
    _, other_token = await make_user()
    async with db.engine.begin() as conn:
        ids = [
            (
                await conn.execute(
                    text(
                        "INSERT INTO meetings (user_id, platform, platform_specific_id, status, data) "
                        "VALUES (:u, 'zoom', :n, :s, CAST(:d AS jsonb)) RETURNING id"
                    ),
                    {"u": owner_id, "n": f"12345678{i}", "s": status, "d": data},
                )
            ).scalar_one()
            for i, (status, data) in enumerate(
                [
                    ("completed", "{}"),
                    ("active", "{}"),
                    (
                        "failed",
                        '{"completion_reason": "join_error", "error_details":'
                        ' "cannot open the meeting page: net::ERR_NAME_NOT_RESOLVED"}',
                    ),
                ]
            )
        ]
    owner, other = {"X-API-Key": owner_token}, {"X-API-Key": other_token}
    async with httpx.AsyncClient(base_url=collector_gateway.base_url, timeout=10) as client:
        bots = await client.get("/bots", headers=owner)
        assert bots.status_code == 200, bots.text
        assert [m["id"] for m in bots.json()["meetings"]] == ids[::-1] and bots.json()["has_more"] is False
        active = (await client.get("/bots", params={"status": "active,failed"}, headers=owner)).json()
        assert sorted(m["status"] for m in active["meetings"]) == ["active", "failed"]
        page = (await client.get("/bots", params={"limit": 2}, headers=owner)).json()
        assert len(page["meetings"]) == 2 and page["has_more"] is True
        assert (await client.get("/bots", headers=other)).json() == {"meetings": [], "has_more": False}
        assert (await client.get("/bots", params={"status": "exploded"}, headers=owner)).status_code == 422

        failed = await client.get(f"/meetings/{ids[2]}", headers=owner)
        assert failed.status_code == 200 and failed.json()["id"] == ids[2]
        assert (
            failed.json()["data"]["error_details"]
            == "cannot open the meeting page: net::ERR_NAME_NOT_RESOLVED"
        )
        theirs = await client.get(f"/meetings/{ids[2]}", headers=other)
        assert theirs.status_code == 404 and theirs.json() == {"detail": "Meeting not found"}
        assert (await client.get("/meetings/999999", headers=owner)).status_code == 404
        assert (await client.get("/meetings/0", headers=owner)).status_code == 422


async def test_recording_media_byte_ranges_through_the_gateway(
    collector_gateway, make_user, db, tmp_session_dir
):
    """Browsers seek with Range: the gateway passes it on and relays 206 + Content-Range."""
    owner_id, owner_token = await make_user()
    _, other_token = await make_user()
    async with db.engine.begin() as conn:
        meeting_id = (
            await conn.execute(
                text(
                    "INSERT INTO meetings (user_id, platform, platform_specific_id, status) "
                    "VALUES (:u, 'google_meet', 'rec-defg-hij', 'completed') RETURNING id"
                ),
                {"u": owner_id},
            )
        ).scalar_one()
    record = new_recording(meeting_id)
    storage = LocalStorage(tmp_session_dir / "gw-recordings")
    audio = np.sin(np.arange(16000 * 3) / 16000 * 2 * np.pi * 440).astype(np.float32) * 0.3
    await storage.put(f"{record['storage_prefix']}/chunks/t1/000001_0.flac", encode_flac(audio))
    finalized = await finalize(storage, record["storage_prefix"])
    record.update(status="completed", media_files=finalized.media_files)
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE meetings SET data = CAST(:d AS jsonb) WHERE id = :id"),
            {"d": json.dumps({"recordings": [record]}), "id": meeting_id},
        )
    mixed = finalized.media_files[0]
    url = f"/recordings/{record['id']}/media/{mixed['id']}/raw"
    async with httpx.AsyncClient(base_url=collector_gateway.base_url, timeout=10) as client:
        listed = await client.get("/recordings", headers={"X-API-Key": owner_token})
        assert [r["id"] for r in listed.json()["recordings"]] == [record["id"]]
        part = await client.get(url, headers={"X-API-Key": owner_token, "Range": "bytes=0-99"})
        assert part.status_code == 206, part.text
        assert part.headers["content-range"] == f"bytes 0-99/{mixed['file_size_bytes']}"
        assert part.content == (await storage.get(mixed["storage_path"]))[:100]
        assert part.headers["accept-ranges"] == "bytes"
        denied = await client.get(url, headers={"X-API-Key": other_token})
        assert denied.status_code == 404


async def _recorded_meeting(db, owner_id: int, native: str, storage: LocalStorage) -> tuple[dict, dict]:
    """A finished meeting with one finalized recording (one mixed track); (record, its master)."""
    async with db.engine.begin() as conn:
        meeting_id = (
            await conn.execute(
                text(
                    "INSERT INTO meetings (user_id, platform, platform_specific_id, status) "
                    "VALUES (:u, 'teams', :n, 'completed') RETURNING id"
                ),
                {"u": owner_id, "n": native},
            )
        ).scalar_one()
    record = new_recording(meeting_id)
    audio = np.sin(np.arange(16000 * 2) / 16000 * 2 * np.pi * 330).astype(np.float32) * 0.3
    await storage.put(f"{record['storage_prefix']}/chunks/t1/000001_0.flac", encode_flac(audio))
    finalized = await finalize(storage, record["storage_prefix"])
    record.update(status="completed", media_files=finalized.media_files)
    running = new_recording(meeting_id)  # a second one still being made (no media yet)
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE meetings SET data = CAST(:d AS jsonb) WHERE id = :id"),
            {"d": json.dumps({"recordings": [record, running]}), "id": meeting_id},
        )
    return record, running


async def test_recording_master_and_download_alias_through_the_gateway(
    collector_gateway, make_user, db, tmp_session_dir
):
    """Upstream's ``/recordings/{id}/master`` and 0.10's ``.../download``: shapes, Range, scoping."""
    owner_id, owner_token = await make_user()
    _, other_token = await make_user()
    storage = LocalStorage(tmp_session_dir / "gw-recordings")
    record, running = await _recorded_meeting(db, owner_id, "9876543210", storage)
    mixed = record["media_files"][0]
    owner, other = {"X-API-Key": owner_token}, {"X-API-Key": other_token}
    async with httpx.AsyncClient(base_url=collector_gateway.base_url, timeout=10) as client:
        master = await client.get(f"/recordings/{record['id']}/master", headers=owner)
        assert master.status_code == 200, master.text
        assert master.json() == {
            "id": record["id"],
            "type": "audio",
            "storage_path": mixed["storage_path"],
            "media_file_id": mixed["id"],
            "raw_url": f"/recordings/{record['id']}/media/{mixed['id']}/raw?type=audio",
            "duration_seconds": mixed["duration_seconds"],
        }
        whole = await storage.get(mixed["storage_path"])
        played = await client.get(master.json()["raw_url"], headers=owner)
        assert played.status_code == 200 and played.content == whole, "raw_url plays the master"

        video = await client.get(f"/recordings/{record['id']}/master?type=video", headers=owner)
        assert video.status_code == 404 and "video" in video.json()["detail"]
        pending = await client.get(f"/recordings/{running['id']}/master", headers=owner)
        assert pending.status_code == 409, "still being made, nothing recorded yet: " + pending.text

        # While recording, the master is the mix of the chunks so far, assembled on read (as upstream).
        so_far = np.sin(np.arange(16000 * 3) / 16000 * 2 * np.pi * 220).astype(np.float32) * 0.3
        prefix = running["storage_prefix"]
        await storage.put(f"{prefix}/chunks/t1/000001_0.flac", encode_flac(so_far[:16000]))
        await storage.put(f"{prefix}/chunks/t1/000002_1000.flac", encode_flac(so_far[16000:]))
        partial = await client.get(f"/recordings/{running['id']}/master", headers=owner)
        assert partial.status_code == 200, partial.text
        body = partial.json()
        assert body["partial"] is True and body["media_file_id"] is None and body["duration_seconds"] == 3.0
        played = await client.get(body["raw_url"], headers=owner)
        assert played.status_code == 200 and played.headers["content-type"] == "audio/flac"
        assert np.abs(decode(played.content) - so_far).max() < 1e-3, "the mix of both chunks, in place"
        ranged = await client.get(body["raw_url"], headers={**owner, "Range": "bytes=0-9"})
        assert ranged.status_code == 206 and ranged.content == played.content[:10]
        assert (await client.get(body["raw_url"], headers=other)).status_code == 404
        await finalize(storage, prefix)
        assert not await storage.list(f"{prefix}/partial"), "the final mix supersedes the partial one"
        master_raw = await client.get(f"/recordings/{record['id']}/master/raw", headers=owner)
        assert master_raw.status_code == 200 and master_raw.content == whole, "a finished one plays its mix"
        assert (await client.get(f"/recordings/{record['id']}/master", headers=other)).status_code == 404

        url = f"/recordings/{record['id']}/media/{mixed['id']}/download"
        full = await client.get(url, headers=owner)
        assert full.status_code == 200 and full.content == whole
        assert full.headers["content-disposition"].startswith("attachment;")
        assert full.headers["content-type"] == "audio/flac" and full.headers["accept-ranges"] == "bytes"
        part = await client.get(url, headers={**owner, "Range": "bytes=10-209"})
        assert part.status_code == 206 and part.content == whole[10:210]
        assert part.headers["content-range"] == f"bytes 10-209/{len(whole)}"
        past = await client.get(url, headers={**owner, "Range": f"bytes={len(whole)}-"})
        assert past.status_code == 416
        assert (await client.get(url, headers=other)).status_code == 404
        missing = f"/recordings/{record['id']}/media/{mixed['id'] + 1}/download"
        assert (await client.get(missing, headers=owner)).status_code == 404
