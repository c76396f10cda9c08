"""Upstream's admin statistics and analytics routes, same paths and shapes.

``/admin/stats/meetings-users``, ``/admin/analytics/users`` and
``/admin/analytics/meetings`` accept the admin key or the read-only
``ANALYTICS_API_TOKEN``; the per-meeting telematics and per-user details need
the admin key. Counts and sums are done in SQL, so a heavy user's history is
never loaded into memory. Token lists show metadata only, never a token.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from sqlalchemy import case, distinct, extract, func, select
from sqlalchemy.orm import selectinload

from vexa.admin.routes import ADMIN_ERRORS, NOT_FOUND
from vexa.admin.security import require_admin, require_analytics
from vexa.db.models import ACTIVE_STATUSES, Meeting, MeetingSession, Transcription, User
from vexa.meetings import meeting_response
from vexa.schemas import (
    MeetingPerformanceMetrics,
    MeetingSessionResponse,
    MeetingTableResponse,
    MeetingTelematicsResponse,
    MeetingUserStat,
    PaginatedMeetingUserStatResponse,
    TokenInfo,
    TranscriptionStats,
    UserAnalyticsResponse,
    UserDetailResponse,
    UserMeetingStats,
    UserResponse,
    UserTableResponse,
    UserUsagePatterns,
)

read_only = APIRouter(
    prefix="/admin", tags=["analytics"], dependencies=[Depends(require_analytics)], responses=ADMIN_ERRORS
)
admin_only = APIRouter(
    prefix="/admin", tags=["analytics"], dependencies=[Depends(require_admin)], responses=ADMIN_ERRORS
)
Skip = Query(0, ge=0, le=2**31 - 1)


def _session(request: Request):
    return request.app.state.db.read_session()


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


@read_only.get(
    "/stats/meetings-users",
    response_model=PaginatedMeetingUserStatResponse,
    summary="Meetings, newest first, each with its user",
)
async def meetings_with_users(
    request: Request, skip: int = Skip, limit: int = Query(100, ge=1, le=1000)
) -> PaginatedMeetingUserStatResponse:
    async with _session(request) as session:
        total = (await session.execute(select(func.count(Meeting.id)))).scalar_one()
        rows = (
            await session.execute(
                select(Meeting, User)
                .join(User, User.id == Meeting.user_id)
                .order_by(Meeting.created_at.desc(), Meeting.id.desc())
                .offset(skip)
                .limit(limit)
            )
        ).all()
    return PaginatedMeetingUserStatResponse(
        total=total,
        items=[
            MeetingUserStat(**meeting_response(m, None).model_dump(), user=UserResponse.model_validate(u))
            for m, u in rows
        ],
    )


@read_only.get(
    "/analytics/users", response_model=list[UserTableResponse], summary="Users without data or tokens"
)
async def users_table(
    request: Request, skip: int = Skip, limit: int = Query(1000, ge=1, le=10000)
) -> list[UserTableResponse]:
    async with _session(request) as session:
        users = (await session.execute(select(User).order_by(User.id).offset(skip).limit(limit))).scalars()
        return [UserTableResponse.model_validate(u) for u in users]


@read_only.get(
    "/analytics/meetings", response_model=list[MeetingTableResponse], summary="Meetings without data"
)
async def meetings_table(
    request: Request, skip: int = Skip, limit: int = Query(1000, ge=1, le=10000)
) -> list[MeetingTableResponse]:
    async with _session(request) as session:
        meetings = (
            await session.execute(select(Meeting).order_by(Meeting.id).offset(skip).limit(limit))
        ).scalars()
        return [MeetingTableResponse.model_validate(m) for m in meetings]


@admin_only.get(
    "/analytics/meetings/{meeting_id}/telematics",
    response_model=MeetingTelematicsResponse,
    responses=NOT_FOUND,
    summary="One meeting: sessions, transcript statistics, durations",
)
async def meeting_telematics(
    request: Request,
    meeting_id: int = Path(ge=1, le=2**31 - 1),
    include_transcriptions: bool = False,
    include_sessions: bool = True,
) -> MeetingTelematicsResponse:
    async with _session(request) as session:
        meeting = await session.get(Meeting, meeting_id)
        if meeting is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Meeting not found")
        sessions = []
        if include_sessions:
            sessions = list(
                (
                    await session.execute(
                        select(MeetingSession)
                        .where(MeetingSession.meeting_id == meeting_id)
                        .order_by(MeetingSession.id)
                    )
                ).scalars()
            )
        stats = None
        if include_transcriptions:
            count, duration, speakers = (
                await session.execute(
                    select(
                        func.count(Transcription.id),
                        func.coalesce(func.sum(Transcription.end_time - Transcription.start_time), 0.0),
                        func.count(distinct(Transcription.speaker)),
                    ).where(Transcription.meeting_id == meeting_id)
                )
            ).one()
            languages = (
                await session.execute(
                    select(distinct(Transcription.language)).where(
                        Transcription.meeting_id == meeting_id, Transcription.language.is_not(None)
                    )
                )
            ).scalars()
            if count:
                stats = TranscriptionStats(
                    total_transcriptions=count,
                    total_duration=float(duration),
                    unique_speakers=speakers,
                    languages_detected=sorted(languages),
                )
        data = meeting.data or {}
        metrics = None
        if meeting.start_time and meeting.end_time:
            metrics = MeetingPerformanceMetrics(
                total_duration=_seconds(meeting.start_time, meeting.end_time),
                join_time=_seconds(meeting.created_at, meeting.start_time),
                admission_time=data.get("admission_time")
                if isinstance(data.get("admission_time"), int | float)
                else None,
                bot_uptime=_seconds(meeting.created_at, meeting.end_time),
            )
        return MeetingTelematicsResponse(
            meeting=meeting_response(meeting, None),
            sessions=[MeetingSessionResponse.model_validate(s) for s in sessions],
            transcription_stats=stats,
            performance_metrics=metrics,
        )


@admin_only.get(
    "/analytics/users/{user_id}/details",
    response_model=UserAnalyticsResponse,
    responses=NOT_FOUND,
    summary="One user: full record, meeting statistics, usage patterns",
)
async def user_details(
    request: Request,
    user_id: int = Path(ge=1, le=2**31 - 1),
    include_meetings: bool = Query(
        True, description="Accepted for upstream clients; statistics are always included."
    ),
    include_tokens: bool = False,
) -> UserAnalyticsResponse:
    async with _session(request) as session:
        user = (
            await session.execute(select(User).options(selectinload(User.tokens)).where(User.id == user_id))
        ).scalar_one_or_none()
        if user is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="User not found")
        mine = Meeting.user_id == user_id
        duration = func.extract("epoch", Meeting.end_time - Meeting.start_time)
        done_with_times = (
            (Meeting.status == "completed") & Meeting.start_time.is_not(None) & Meeting.end_time.is_not(None)
        )
        total, completed, failed, active, timed, seconds, first, last = (
            await session.execute(
                select(
                    func.count(Meeting.id),
                    func.count(case((Meeting.status == "completed", 1))),
                    func.count(case((Meeting.status == "failed", 1))),
                    func.count(case((Meeting.status.in_(ACTIVE_STATUSES), 1))),
                    func.count(case((done_with_times, 1))),
                    func.sum(case((done_with_times, duration))),
                    func.min(Meeting.created_at),
                    func.max(Meeting.created_at),
                ).where(mine)
            )
        ).one()
        platform = (
            await session.execute(
                select(Meeting.platform)
                .where(mine)
                .group_by(Meeting.platform)
                .order_by(func.count().desc(), Meeting.platform)
                .limit(1)
            )
        ).scalar_one_or_none()
        hour = extract("hour", Meeting.created_at)
        hours = (
            await session.execute(
                select(hour).where(mine).group_by(hour).order_by(func.count().desc(), hour).limit(3)
            )
        ).scalars()
        detail = UserDetailResponse(
            **UserResponse.model_validate(user).model_dump(),
            api_tokens=[TokenInfo.model_validate(t) for t in sorted(user.tokens, key=lambda t: t.id)],
        )
        tokens = detail.api_tokens if include_tokens else None
    days = (datetime.now(UTC) - first).days + 1 if first else 0
    return UserAnalyticsResponse(
        user=detail,
        meeting_stats=UserMeetingStats(
            total_meetings=total,
            completed_meetings=completed,
            failed_meetings=failed,
            active_meetings=active,
            total_duration=float(seconds) if timed else None,
            average_duration=float(seconds) / timed if timed else None,
        ),
        usage_patterns=UserUsagePatterns(
            most_used_platform=platform,
            meetings_per_day=total / days if days else 0.0,
            peak_usage_hours=[int(h) for h in hours],
            last_activity=last,
        ),
        api_tokens=tokens,
    )
