"""The collector's HTTP routes: meetings and transcripts of the calling user only."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from vexa.auth import AuthenticatedUser, require_user
from vexa.collector import read_queries
from vexa.collector.exports import ExportFormat, export_response
from vexa.collector.recordings_api import delete_files
from vexa.collector.segments import MeetingLock, absolute, decode, drop_meeting, read_raw, segment_field
from vexa.collector.transcript_cache import TranscriptCache
from vexa.db.models import TERMINAL_STATUSES, FinalSegment, Meeting, MeetingSession, Transcription
from vexa.meeting_filters import MeetingFilters, meeting_filters
from vexa.meetings import meeting_response, valid_native_id
from vexa.platforms import Platform
from vexa.schemas import (
    BotListResponse,
    ErrorResponse,
    MeetingListResponse,
    MeetingResponse,
    MeetingUpdate,
    MessageResponse,
    TranscriptionResponse,
    TranscriptionSegment,
)
from vexa.streams import entry_version

log = logging.getLogger(__name__)

NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such meeting of yours"}}
router = APIRouter(dependencies=[Depends(require_user)])


async def _find_meeting(
    session: AsyncSession,
    user_id: int,
    platform: Platform,
    native_id: str,
    meeting_id: int | None = None,
    *,
    lock: bool = False,
) -> Meeting:
    """The caller's newest such meeting; ``lock`` takes its row FOR UPDATE (writers of ``data``)."""
    query = select(Meeting).where(
        Meeting.user_id == user_id,
        Meeting.platform == platform.value,
        Meeting.platform_specific_id == native_id,
    )
    if meeting_id is not None:
        query = query.where(Meeting.id == meeting_id)
    query = query.order_by(Meeting.created_at.desc(), Meeting.id.desc()).limit(1)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"Meeting {platform.value}/{native_id} not found"
        )
    return found


@router.get("/meetings", response_model=MeetingListResponse, tags=["meetings"])
async def list_meetings(
    request: Request,
    filters: MeetingFilters = Depends(meeting_filters),
    user: AuthenticatedUser = Depends(require_user),
) -> Response:
    """The hot polling route: plain asyncpg rows, encoded once by pydantic (see ``vexa.db.reads``)."""
    return await meetings_answer(request.app.state, user, filters)


async def meetings_answer(state: Any, user: AuthenticatedUser, filters: MeetingFilters) -> Response:
    """``GET /meetings``, for the route above and for ``vexa.hot_routes``."""
    meetings = await read_queries.list_meetings(state.reads, user.user_id, filters)
    base = state.settings.meeting_base_url
    body = MeetingListResponse(meetings=[meeting_response(m, base) for m in meetings])
    headers = {}
    if filters.limit is not None:  # the dashboard's pages: the total in X-Total-Count
        headers["X-Total-Count"] = str(await read_queries.count_meetings(state.reads, user.user_id, filters))
    return _json(body.model_dump_json(by_alias=True).encode(), headers)


def _json(body: bytes, headers: dict[str, str] | None = None) -> Response:
    """An already encoded answer: FastAPI would validate and encode the model a second time."""
    return Response(body, media_type="application/json", headers=headers)


@router.get("/bots", response_model=BotListResponse, tags=["bots"])
async def list_bots(
    request: Request,
    filters: MeetingFilters = Depends(meeting_filters),
    user: AuthenticatedUser = Depends(require_user),
) -> BotListResponse:
    """Upstream's ``GET /bots``: the caller's meetings (one per bot run) with ``has_more`` for paging."""
    async with request.app.state.db.read_session() as session:
        query = filters.page(select(Meeting).where(Meeting.user_id == user.user_id))
        if filters.limit is not None:  # one extra row tells whether another page exists
            query = query.limit(filters.limit + 1)
        rows = list((await session.execute(query)).scalars())
    has_more = filters.limit is not None and len(rows) > filters.limit
    base = request.app.state.settings.meeting_base_url
    return BotListResponse(
        meetings=[meeting_response(m, base) for m in rows[: filters.limit]], has_more=has_more
    )


@router.get("/meetings/{meeting_id}", response_model=MeetingResponse, responses=NOT_FOUND, tags=["meetings"])
async def get_meeting(
    request: Request,
    meeting_id: int = Path(ge=1, le=2**31 - 1, description="The meeting's database id"),
    user: AuthenticatedUser = Depends(require_user),
) -> MeetingResponse:
    """One of the caller's meetings by its id (another user's is a 404, like a missing one)."""
    async with request.app.state.db.read_session() as session:
        meeting = (
            await session.execute(
                select(Meeting).where(Meeting.id == meeting_id, Meeting.user_id == user.user_id)
            )
        ).scalar_one_or_none()
    if meeting is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Meeting not found")
    return meeting_response(meeting, request.app.state.settings.meeting_base_url)


@router.get(
    "/transcripts/{platform}/{native_meeting_id}",
    response_model=TranscriptionResponse,
    responses=NOT_FOUND,
    tags=["transcripts"],
)
async def get_transcript(
    request: Request,
    platform: Platform,
    native_id: str = Depends(valid_native_id),
    meeting_id: int | None = Query(None, ge=1, le=2**31 - 1, description="A specific meeting's database id"),
    format: ExportFormat = Query(ExportFormat.json, description="json (default), txt, srt, vtt or md"),
    source: Literal["final", "live"] | None = Query(
        None,
        description="live: the transcript made during the meeting. Default: the post-meeting (final) "
        "transcript once data.final_transcript.status is completed, else the live one.",
    ),
    user: AuthenticatedUser = Depends(require_user),
) -> TranscriptionResponse | Response:
    return await transcript_answer(request.app.state, user, platform, native_id, meeting_id, format, source)


async def transcript_answer(
    state: Any,
    user: AuthenticatedUser,
    platform: Platform,
    native_id: str,
    meeting_id: int | None = None,
    format: ExportFormat = ExportFormat.json,
    source: Literal["final", "live"] | None = None,
) -> Response:
    """``GET /transcripts/...``, for the route above and for ``vexa.hot_routes``: JSON comes encoded."""
    not_found = HTTPException(
        status.HTTP_404_NOT_FOUND, detail=f"Meeting {platform.value}/{native_id} not found"
    )
    found = await read_queries.find_meeting_id(state.reads, user.user_id, platform, native_id, meeting_id)
    if found is None:
        raise not_found
    # Redis before PostgreSQL: the persister commits a row before it deletes the draft, so
    # in this order a segment on its way from one to the other is seen in at least one.
    live_raw = await read_raw(state.redis, found)
    read = await read_queries.meeting_with_version(state.reads, found, user.user_id)
    if read is None:
        raise not_found
    meeting, version = read
    final_ready = ((meeting.data or {}).get("final_transcript") or {}).get("status") == "completed"
    final = source != "live" and final_ready
    cache: TranscriptCache = state.transcript_cache
    cacheable = format is ExportFormat.json and (final or not live_raw)
    if cacheable and (cached := cache.get(meeting.id, final, version)) is not None:
        return _json(cached)
    if final:
        async with state.db.read_session() as session:
            segments = await _final_segments(session, meeting)
    else:
        segments = await _live_segments(state, meeting.id, live_raw)
    transcript = _transcript(meeting, segments, state.settings.meeting_base_url, format)
    if not isinstance(transcript, TranscriptionResponse):  # txt, srt, vtt, md
        return transcript
    body = transcript.model_dump_json(by_alias=True).encode()
    if cacheable:
        cache.put(meeting.id, final, version, body)
    return _json(body)


async def _live_segments(state: Any, meeting_id: int, live_raw: dict[str, str]) -> list[TranscriptionSegment]:
    """The stored rows, with each newer live draft from Redis in place of its row, in time order."""
    rows = await read_queries.stored_segments(state.reads, meeting_id)
    starts = await read_queries.session_starts(state.reads, meeting_id)
    merged: dict[str, TranscriptionSegment] = {}
    versions: dict[str, int] = {}
    pieces: dict[tuple[str, float], list[str]] = {}  # a split segment's stored pieces
    # Plain tuples into one dict per row: pydantic-core validates that faster than
    # SQLAlchemy builds row mappings (and faster than model_construct, which is Python).
    for (
        start_time,
        end_time,
        text,
        language,
        created_at,
        speaker,
        status_,
        confidence,
        uid,
        version,
        split_from,
    ) in rows:
        start = starts.get(uid)
        field = segment_field(uid, start_time)
        merged[field] = TranscriptionSegment.model_validate(
            {
                "start_time": start_time,
                "end_time": end_time,
                "text": text,
                "language": language,
                "created_at": created_at,
                "speaker": speaker,
                "speaker_mapping_status": status_,
                "speaker_confidence": confidence,
                "absolute_start_time": absolute(start, start_time),
                "absolute_end_time": absolute(start, end_time),
                "completed": True,
                "session_uid": uid,
            }
        )
        versions[field] = version
        if split_from is not None:
            pieces.setdefault((uid, split_from), []).append(field)
    live, _ = decode(live_raw)
    for field, stored in live.items():
        # A live draft replaces the stored row only if it is not older (a replayed old
        # message can sit in Redis briefly after the row was persisted).
        if entry_version(stored.version) >= versions.get(field, -1):
            merged[field] = stored.to_public(starts.get(stored.session_uid))
            if stored.pieces is not None:  # a newer split of a stored segment: its old pieces go
                keep = {field, *stored.pieces}
                for old in pieces.get((stored.session_uid, stored.start), []):
                    if old not in keep and versions[old] < entry_version(stored.version):
                        merged.pop(old, None)
    return sorted(merged.values(), key=_sort_key)


async def _final_segments(session: AsyncSession, meeting: Any) -> list[TranscriptionSegment]:
    """The post-meeting transcript; times count from the recording's start (``started_at``)."""
    started = None
    for rec in (meeting.data or {}).get("recordings") or []:
        for media in rec.get("media_files") or []:
            if media.get("metadata", {}).get("started_at"):
                started = datetime.fromtimestamp(media["metadata"]["started_at"], UTC)
    rows = (
        await session.execute(
            select(FinalSegment)
            .where(FinalSegment.meeting_id == meeting.id)
            .order_by(FinalSegment.start_time)
        )
    ).scalars()
    return [
        TranscriptionSegment(
            start_time=r.start_time,
            end_time=r.end_time,
            text=r.text,
            language=r.language,
            created_at=r.created_at,
            speaker=r.speaker,
            absolute_start_time=started + timedelta(seconds=r.start_time) if started else None,
            absolute_end_time=started + timedelta(seconds=r.end_time) if started else None,
            completed=True,
            session_uid="final",
        )
        for r in rows
    ]


def _transcript(
    meeting: Any, segments: list[TranscriptionSegment], base_url: str | None, format: ExportFormat
) -> TranscriptionResponse | Response:
    view = meeting_response(meeting, base_url)
    transcript = TranscriptionResponse(
        **view.model_dump(
            include={
                "id",
                "platform",
                "native_meeting_id",
                "constructed_meeting_url",
                "status",
                "start_time",
                "end_time",
                "data",
            }
        ),
        segments=segments,
    )
    return transcript if format is ExportFormat.json else export_response(transcript, format)


@router.patch(
    "/meetings/{platform}/{native_meeting_id}",
    response_model=MeetingResponse,
    responses=NOT_FOUND,
    tags=["meetings"],
)
async def update_meeting(
    body: MeetingUpdate,
    request: Request,
    platform: Platform,
    native_id: str = Depends(valid_native_id),
    user: AuthenticatedUser = Depends(require_user),
) -> MeetingResponse:
    changes = body.data.model_dump(exclude_unset=True)
    async with request.app.state.db.session() as session:
        # FOR UPDATE: the bot-manager's status transitions lock the row too, so neither
        # write loses the other's keys (status_transition, completion_reason, participants).
        meeting = await _find_meeting(session, user.user_id, platform, native_id, lock=True)
        merged: dict[str, Any] = {**(meeting.data or {}), **changes}
        meeting.data = merged
        await session.commit()
        await session.refresh(meeting)
        log.info("meeting %s: updated data keys %s", meeting.id, sorted(changes))
        return meeting_response(meeting, request.app.state.settings.meeting_base_url)


@router.delete(
    "/meetings/{platform}/{native_meeting_id}",
    response_model=MessageResponse,
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "The meeting is still running"}},
    tags=["meetings"],
)
async def delete_meeting(
    request: Request,
    platform: Platform,
    native_id: str = Depends(valid_native_id),
    user: AuthenticatedUser = Depends(require_user),
) -> MessageResponse:
    state = request.app.state
    async with state.db.session() as session:
        meeting = await _find_meeting(session, user.user_id, platform, native_id)
        if meeting.status not in TERMINAL_STATUSES:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                detail=f"Meeting {platform.value}/{native_id} is {meeting.status}; stop the bot first "
                "(only completed or failed meetings can be deleted)",
            )
        meeting_db_id = meeting.id
        # Hold the persist lock so no collector writes rows for this meeting while we delete them.
        lock = MeetingLock(state.redis, meeting_db_id, ttl_ms=30_000)
        for _ in range(200):  # up to ~10 s
            if await lock.acquire():
                break
            await asyncio.sleep(0.05)
        else:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, detail="Meeting is busy; try again shortly"
            )
        try:
            # The fence: the persister takes this row FOR SHARE before writing rows, so its
            # transaction either commits before we delete or waits and then sees the redaction
            # (the Redis lock above only saves work; it may expire during a slow round).
            await session.execute(select(Meeting.id).where(Meeting.id == meeting_db_id).with_for_update())
            await drop_meeting(state.redis, meeting_db_id)  # Redis first: leftovers would be persisted again
            # Recordings' files first: a storage failure leaves the meeting as it was, to retry.
            recordings = (meeting.data or {}).get("recordings") or []
            await delete_files(state.recording_storage, recordings, None)
            await session.execute(delete(Transcription).where(Transcription.meeting_id == meeting_db_id))
            await session.execute(delete(FinalSegment).where(FinalSegment.meeting_id == meeting_db_id))
            await session.execute(delete(MeetingSession).where(MeetingSession.meeting_id == meeting_db_id))
            await session.execute(
                update(Meeting)
                .where(Meeting.id == meeting_db_id)
                .values(
                    platform_specific_id=None,
                    data={"redacted": True},
                )
            )
            await session.commit()
        finally:
            await lock.release()
    state.directory.forget_meeting(meeting_db_id)
    log.info("meeting %s: transcript deleted and meeting anonymised", meeting_db_id)
    return MessageResponse(
        message=f"Meeting {platform.value}/{native_id} transcripts deleted and meeting data anonymised"
    )


def _sort_key(seg: TranscriptionSegment) -> tuple[float, float]:
    if seg.absolute_start_time is not None:
        return (seg.absolute_start_time.timestamp(), seg.start_time)
    return (seg.start_time, seg.start_time)
