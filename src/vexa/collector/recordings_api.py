"""Recordings routes (upstream Vexa's paths and shapes), scoped to the calling user.

``GET /recordings``, ``GET /recordings/{id}``, ``DELETE /recordings/{id}``,
``GET /recordings/{id}/master`` (where the playable mix is; assembled from the chunks so far
while recording, played at ``.../master/raw``) and the media bytes at
``GET /recordings/{id}/media/{media_file_id}/raw`` (and upstream 0.10's ``.../download``)
with HTTP Range (``206`` + ``Content-Range``; ``416`` past the end), so a browser's
player can seek without downloading the whole file. ``POST /meetings/{platform}/{id}/transcribe``
queues a past meeting for the post-meeting transcription again.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import JSONResponse, Response

from vexa.auth import AuthenticatedUser, require_user
from vexa.db.models import TERMINAL_STATUSES, Meeting
from vexa.recordings import records
from vexa.recordings.finalize import PARTIAL_DIR, assemble_partial_master
from vexa.recordings.jobs import enqueue_postprocess
from vexa.recordings.storage import RecordingStorage, StorageError

log = logging.getLogger(__name__)
router = APIRouter(dependencies=[Depends(require_user)], tags=["recordings"])

MAX_RANGE_BYTES = 8 * 1024 * 1024  # one answer's slice; players ask again for the rest


def _storage(request: Request) -> RecordingStorage:
    return request.app.state.recording_storage


async def _owned(request: Request, user_id: int, recording_id: int) -> tuple[Meeting, dict[str, Any]]:
    async with request.app.state.db.read_session() as session:
        meeting = (
            await session.execute(
                select(Meeting).where(
                    Meeting.user_id == user_id,
                    Meeting.data.contains({records.RECORDINGS_KEY: [{"id": recording_id}]}),
                )
            )
        ).scalar_one_or_none()
    if meeting is not None:
        for rec in meeting.data.get(records.RECORDINGS_KEY) or []:
            if rec.get("id") == recording_id:
                return meeting, rec
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Recording {recording_id} not found")


def public(rec: dict[str, Any], meeting: Meeting) -> dict[str, Any]:
    return {k: v for k, v in {**rec, "meeting_id": meeting.id}.items() if k != "storage_prefix"}


@router.get("/recordings", summary="The caller's recordings, newest first")
async def list_recordings(request: Request, user: AuthenticatedUser = Depends(require_user)) -> JSONResponse:
    async with request.app.state.db.read_session() as session:
        meetings = (
            await session.execute(
                select(Meeting)
                .where(Meeting.user_id == user.user_id, Meeting.data.has_key(records.RECORDINGS_KEY))
                .order_by(Meeting.created_at.desc(), Meeting.id.desc())
                .limit(1000)
            )
        ).scalars()
        out = [public(rec, m) for m in meetings for rec in (m.data.get(records.RECORDINGS_KEY) or [])]
    return JSONResponse({"recordings": out})


@router.get("/recordings/{recording_id}", summary="One recording of the caller's")
async def get_recording(
    request: Request,
    recording_id: int = Path(ge=1, le=2**53),
    user: AuthenticatedUser = Depends(require_user),
) -> JSONResponse:
    meeting, rec = await _owned(request, user.user_id, recording_id)
    return JSONResponse(public(rec, meeting))


def parse_range(header: str | None, total: int) -> tuple[int, int] | None:
    """``bytes=a-b``, ``a-`` or ``-n`` (first of a list) -> inclusive (start, end); 416 past the end."""
    if not header or not header.strip().lower().startswith("bytes="):
        return None
    first = header.strip()[6:].split(",", 1)[0].strip()
    start_s, sep, end_s = first.partition("-")
    if not sep:
        return None
    try:
        if not start_s.strip():
            suffix = int(end_s)
            if suffix <= 0:
                return None
            start, end = max(0, total - suffix), total - 1
        else:
            start = int(start_s)
            end = int(end_s) if end_s.strip() else total - 1
    except ValueError:
        return None
    if start >= total:
        raise HTTPException(
            status.HTTP_416_RANGE_NOT_SATISFIABLE,
            detail="Requested range not satisfiable",
            headers={"Content-Range": f"bytes */{total}"},
        )
    end = min(end, total - 1, start + MAX_RANGE_BYTES - 1)
    return (start, end) if end >= start else None


def _master_of(rec: dict[str, Any], media_type: str) -> dict[str, Any] | None:
    return next(
        (
            m
            for m in rec.get("media_files") or []
            if m.get("type") == media_type and (m.get("metadata") or {}).get("track") == "mixed"
        ),
        None,
    )


@router.get(
    "/recordings/{recording_id}/master",
    summary="The recording's playable master (the mix of all tracks) and where its bytes are",
)
async def get_master(
    request: Request,
    recording_id: int = Path(ge=1, le=2**53),
    media_type: str = Query("audio", alias="type", max_length=16),
    user: AuthenticatedUser = Depends(require_user),
) -> JSONResponse:
    """Upstream's shape: ``{id, type, storage_path, media_file_id, raw_url, duration_seconds}``.

    Our master is the ``mixed`` FLAC the post-processor writes when the meeting ends (we record
    audio only). While the meeting is still being recorded, the master is assembled on read
    from the chunks so far, as upstream does (``partial: true``, no media file id; its
    ``raw_url`` plays that mix), so a player can open a running meeting.
    """
    _, rec = await _owned(request, user.user_id, recording_id)
    master = _master_of(rec, media_type)
    raw_url = f"/recordings/{recording_id}/master/raw?type={media_type}"
    if master is None and rec.get("status") == records.IN_PROGRESS and media_type == "audio":
        partial = await assemble_partial_master(_storage(request), rec["storage_prefix"])
        if partial is None:
            raise HTTPException(status.HTTP_409_CONFLICT, detail="Nothing has been recorded yet")
        key, seconds = partial
        body = {"storage_path": key, "media_file_id": None, "duration_seconds": seconds, "partial": True}
        return JSONResponse({"id": recording_id, "type": media_type, **body, "raw_url": raw_url})
    if master is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No {media_type} master for this recording")
    return JSONResponse(
        {
            "id": recording_id,
            "type": media_type,
            "storage_path": master["storage_path"],
            "media_file_id": master["id"],
            "raw_url": f"/recordings/{recording_id}/media/{master['id']}/raw?type={media_type}",
            "duration_seconds": master.get("duration_seconds"),
        }
    )


@router.get(
    "/recordings/{recording_id}/master/raw",
    summary="The master's bytes: the final mix, or while recording the mix assembled at the last .../master",
    response_class=Response,
)
async def get_master_media(
    request: Request,
    recording_id: int = Path(ge=1, le=2**53),
    range_header: str | None = Header(None, alias="Range"),
    user: AuthenticatedUser = Depends(require_user),
) -> Response:
    _, rec = await _owned(request, user.user_id, recording_id)
    master = _master_of(rec, "audio")
    key = master["storage_path"] if master else f"{rec['storage_prefix']}/{PARTIAL_DIR}/master.flac"
    return await _serve_key(request, key, range_header, f"recording-{recording_id}-master.flac", "inline")


async def _serve_media(
    request: Request,
    user_id: int,
    recording_id: int,
    media_file_id: int,
    range_header: str | None,
    disposition: str,
) -> Response:
    _, rec = await _owned(request, user_id, recording_id)
    media = next((m for m in rec.get("media_files") or [] if m.get("id") == media_file_id), None)
    if media is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Media file {media_file_id} not found")
    filename = f"recording-{recording_id}-{media_file_id}.flac"
    return await _serve_key(request, media["storage_path"], range_header, filename, disposition)


async def _serve_key(
    request: Request, key: str, range_header: str | None, filename: str, disposition: str
) -> Response:
    """A stored FLAC's bytes, whole or the requested range (206), 416 past the end."""
    storage = _storage(request)
    total = await storage.size(key)
    if total is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="The media file is no longer stored")
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'{disposition}; filename="{filename}"',
        "Cache-Control": "private, max-age=3600",
    }
    media_type = "audio/flac"
    wanted = parse_range(range_header, total)
    if wanted is None:
        data = await storage.get(key)
        return Response(data, media_type=media_type, headers=headers)
    start, end = wanted
    data = await storage.get_range(key, start, end)
    headers["Content-Range"] = f"bytes {start}-{end}/{total}"
    return Response(data, status_code=206, media_type=media_type, headers=headers)


@router.get(
    "/recordings/{recording_id}/media/{media_file_id}/raw",
    summary="A media file's bytes (HTTP Range supported)",
    response_class=Response,
)
async def get_media(
    request: Request,
    recording_id: int = Path(ge=1, le=2**53),
    media_file_id: int = Path(ge=1, le=2**53),
    range_header: str | None = Header(None, alias="Range"),
    user: AuthenticatedUser = Depends(require_user),
) -> Response:
    return await _serve_media(request, user.user_id, recording_id, media_file_id, range_header, "inline")


@router.get(
    "/recordings/{recording_id}/media/{media_file_id}/download",
    summary="The same bytes as .../raw, as a download (upstream 0.10's path; HTTP Range supported)",
    response_class=Response,
)
async def download_media(
    request: Request,
    recording_id: int = Path(ge=1, le=2**53),
    media_file_id: int = Path(ge=1, le=2**53),
    range_header: str | None = Header(None, alias="Range"),
    user: AuthenticatedUser = Depends(require_user),
) -> Response:
    return await _serve_media(request, user.user_id, recording_id, media_file_id, range_header, "attachment")


@router.delete("/recordings/{recording_id}", summary="Delete one recording's files and record")
async def delete_recording(
    request: Request,
    recording_id: int = Path(ge=1, le=2**53),
    user: AuthenticatedUser = Depends(require_user),
) -> JSONResponse:
    meeting, _ = await _owned(request, user.user_id, recording_id)
    if meeting.status not in TERMINAL_STATUSES:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="The meeting is still running; stop the bot first"
        )
    removed = await remove_recordings(
        request.app.state.db.sessionmaker, _storage(request), meeting.id, {recording_id}
    )
    return JSONResponse({"id": recording_id, "deleted": True, "files_deleted": removed})


async def delete_files(storage: RecordingStorage, recs: list[dict[str, Any]], ids: set[int] | None) -> int:
    """Delete the stored objects of ``recs`` (all, or those in ``ids``); returns how many."""
    removed = 0
    for rec in recs:
        if ids is None or rec.get("id") in ids:
            removed += await storage.delete_prefix(rec["storage_prefix"])
    return removed


async def remove_recordings(
    sessionmaker: async_sessionmaker[AsyncSession], storage: RecordingStorage, meeting_id: int, ids: set[int]
) -> int:
    """Storage first (a failure leaves the record, so it can be retried), then the records."""
    async with sessionmaker() as session:
        meeting = await session.get(Meeting, meeting_id)
        recs = list((meeting.data or {}).get(records.RECORDINGS_KEY) or []) if meeting else []
    try:
        removed = await delete_files(storage, recs, ids)
    except StorageError:
        log.error("meeting %s: could not delete recordings %s from storage", meeting_id, sorted(ids))
        raise
    async with sessionmaker() as session, session.begin():
        meeting = await session.get(Meeting, meeting_id, with_for_update=True, populate_existing=True)
        if meeting is not None:
            data = dict(meeting.data or {})
            kept = [r for r in data.get(records.RECORDINGS_KEY) or [] if r.get("id") not in ids]
            if kept:
                data[records.RECORDINGS_KEY] = kept
            else:
                data.pop(records.RECORDINGS_KEY, None)
            meeting.data = data
    log.info("meeting %s: %d recording files deleted", meeting_id, removed)
    return removed


@router.post(
    "/meetings/{platform}/{native_meeting_id}/transcribe",
    status_code=202,
    tags=["transcripts"],
    summary="Queue the post-meeting transcription of a finished meeting's recording (again)",
)
async def transcribe_again(
    request: Request, platform: str, native_meeting_id: str, user: AuthenticatedUser = Depends(require_user)
) -> JSONResponse:
    async with request.app.state.db.read_session() as session:
        meeting = (
            await session.execute(
                select(Meeting)
                .where(
                    Meeting.user_id == user.user_id,
                    Meeting.platform == platform,
                    Meeting.platform_specific_id == native_meeting_id,
                )
                .order_by(Meeting.created_at.desc(), Meeting.id.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
    if meeting is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"Meeting {platform}/{native_meeting_id} not found"
        )
    if meeting.status not in TERMINAL_STATUSES:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="The meeting is still running")
    if not (meeting.data or {}).get(records.RECORDINGS_KEY):
        raise HTTPException(status.HTTP_409_CONFLICT, detail="The meeting has no recording to transcribe")
    await enqueue_postprocess(request.app.state.redis, meeting.id, force=True)
    return JSONResponse({"message": "queued", "meeting_id": meeting.id}, status_code=202)
