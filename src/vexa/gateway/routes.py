"""The public HTTP API: every route declared with its schemas, then forwarded.

Declaring each route (instead of a catch-all proxy) gives one OpenAPI document
for the whole system, lets the gateway reject bad platform/meeting ids and bad
bodies before any internal service sees them, and makes sure internal paths
(``/bots/internal/*``) are simply not reachable from outside.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response, Security, status

from vexa.admin.security import admin_key_header
from vexa.auth import Scope, require_user
from vexa.meeting_filters import MeetingFilters, meeting_filters
from vexa.meetings import valid_native_id
from vexa.platforms import Platform
from vexa.schemas import (
    BotListResponse,
    BotStatusResponse,
    ErrorResponse,
    MeetingConfigUpdate,
    MeetingCreate,
    MeetingListResponse,
    MeetingResponse,
    MeetingTableResponse,
    MeetingTelematicsResponse,
    MeetingUpdate,
    MessageResponse,
    PaginatedMeetingUserStatResponse,
    TokenCreate,
    TokenInfo,
    TokenResponse,
    TranscriptionResponse,
    UserAnalyticsResponse,
    UserCreate,
    UserDetailResponse,
    UserResponse,
    UserTableResponse,
    UserUpdate,
    WebhookDeliveries,
    WebhookInfo,
    WebhookSetResponse,
    WebhookTestResult,
    WebhookUpdate,
)
from vexa.transcript_export import MEDIA_TYPES, ExportFormat

BOT_MANAGER = "bot-manager"
COLLECTOR = "transcription-collector"
ADMIN = "admin-api"


def _err(description: str) -> dict:
    return {"model": ErrorResponse, "description": description}


DOWNSTREAM_ERRORS: dict[int | str, dict] = {
    422: _err("Invalid request (bad platform, meeting id or body)"),
    502: _err("The internal service sent an invalid response"),
    503: _err("The internal service is unavailable"),
    504: _err("The internal service did not answer in time"),
}
USER_ERRORS: dict[int | str, dict] = {
    401: _err("Missing or expired X-API-Key"),
    403: _err("Unknown or revoked X-API-Key, or one used outside its scope (the detail names it)"),
    429: _err("Rate limit reached (see Retry-After)"),
    **DOWNSTREAM_ERRORS,
}
ADMIN_ERRORS: dict[int | str, dict] = {
    401: _err("Missing X-Admin-API-Key"),
    403: _err("Wrong X-Admin-API-Key"),
    429: _err("Rate limit reached (see Retry-After)"),
    **DOWNSTREAM_ERRORS,
}
NOT_FOUND = {404: _err("Not found (or not yours)")}
CONFLICT = {409: _err("Conflicts with the current state")}


async def require_admin_key(key: str | None = Security(admin_key_header)) -> None:
    """Presence only: admin-api compares the value (the gateway need not hold the secret)."""
    if not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail="Missing admin API key (X-Admin-API-Key header)"
        )


async def meeting_ref(platform: Platform, native_meeting_id: str = Depends(valid_native_id)) -> str:
    """Reject malformed ids here with the format in words; returns the canonical downstream path part."""
    return f"{platform.value}/{native_meeting_id}"


async def forward(request: Request, service: str, path: str) -> Response:
    state = request.app.state
    base = {
        BOT_MANAGER: state.settings.bot_manager_url,
        COLLECTOR: state.settings.transcription_collector_url,
        ADMIN: state.settings.admin_api_url,
    }[service]
    return await state.forwarder.forward(request, service, base, path)


public = APIRouter(dependencies=[Depends(require_user)], responses=USER_ERRORS)
admin = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin_key)], responses=ADMIN_ERRORS
)

# --- bots (bot-manager) --------------------------------------------------------------------------


@public.post(
    "/bots",
    tags=["bots"],
    status_code=201,
    response_model=MeetingResponse,
    responses={**CONFLICT, 429: _err("Concurrent bot limit reached (as upstream), or rate limit")},
    summary="Send a bot into a meeting",
)
async def request_bot(body: MeetingCreate, request: Request) -> Response:
    return await forward(request, BOT_MANAGER, "/bots")


@public.delete(
    "/bots/{platform}/{native_meeting_id}",
    tags=["bots"],
    status_code=202,
    response_model=MessageResponse,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Make the bot leave the meeting",
)
async def stop_bot(request: Request, ref: str = Depends(meeting_ref)) -> Response:
    return await forward(request, BOT_MANAGER, f"/bots/{ref}")


@public.put(
    "/bots/{platform}/{native_meeting_id}/config",
    tags=["bots"],
    status_code=202,
    response_model=MessageResponse,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Change a running bot's language or task",
)
async def reconfigure_bot(
    body: MeetingConfigUpdate, request: Request, ref: str = Depends(meeting_ref)
) -> Response:
    return await forward(request, BOT_MANAGER, f"/bots/{ref}/config")


@public.get(
    "/bots",
    tags=["bots"],
    response_model=BotListResponse,
    summary="The caller's bots (meetings), newest first; filter by status/platform, page with limit/offset",
)
async def list_bots(request: Request, _: MeetingFilters = Depends(meeting_filters)) -> Response:
    return await forward(request, COLLECTOR, "/bots")


@public.get(
    "/bots/status", tags=["bots"], response_model=BotStatusResponse, summary="The caller's running bots"
)
async def bots_status(request: Request) -> Response:
    return await forward(request, BOT_MANAGER, "/bots/status")


# --- meetings and transcripts (collector) --------------------------------------------------------


@public.get(
    "/meetings",
    tags=["meetings"],
    response_model=MeetingListResponse,
    summary="The caller's meetings, newest first (optionally filtered and paged)",
)
async def list_meetings(request: Request, _: MeetingFilters = Depends(meeting_filters)) -> Response:
    return await forward(request, COLLECTOR, "/meetings")


@public.get(
    "/meetings/{meeting_id}",
    tags=["meetings"],
    response_model=MeetingResponse,
    responses=NOT_FOUND,
    summary="One of the caller's meetings by its id",
)
async def get_meeting(request: Request, meeting_id: int = Path(ge=1, le=2**31 - 1)) -> Response:
    return await forward(request, COLLECTOR, f"/meetings/{meeting_id}")


@public.get(
    "/transcripts/{platform}/{native_meeting_id}",
    tags=["transcripts"],
    response_model=TranscriptionResponse,
    responses={
        **NOT_FOUND,
        200: {
            "description": "The transcript: JSON, or the export named by `format`",
            "content": {MEDIA_TYPES[f].split(";")[0]: {} for f in ExportFormat if f is not ExportFormat.json},
        },
    },
    summary="A meeting's transcript (the latest meeting with that id unless meeting_id is given)",
)
async def get_transcript(
    request: Request,
    ref: str = Depends(meeting_ref),
    meeting_id: int | None = Query(None, ge=1, le=2**31 - 1, description="A specific meeting's database id"),
    format: ExportFormat = Query(ExportFormat.json, description="json (default), txt, srt, vtt or md"),
    source: Literal["final", "live"] | None = Query(
        None, description="live: the transcript made during the meeting; default: the final one once ready"
    ),
) -> Response:
    return await forward(request, COLLECTOR, f"/transcripts/{ref}")


@public.post(
    "/meetings/{platform}/{native_meeting_id}/transcribe",
    tags=["transcripts"],
    status_code=202,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Queue the post-meeting transcription of a finished meeting's recording (again)",
)
async def transcribe_meeting(request: Request, ref: str = Depends(meeting_ref)) -> Response:
    return await forward(request, COLLECTOR, f"/meetings/{ref}/transcribe")


# --- recordings (collector) ----------------------------------------------------------------------


@public.get("/recordings", tags=["recordings"], summary="The caller's recordings")
async def list_recordings(request: Request) -> Response:
    return await forward(request, COLLECTOR, "/recordings")


@public.get("/recordings/{recording_id}", tags=["recordings"], responses=NOT_FOUND, summary="One recording")
async def get_recording(request: Request, recording_id: int = Path(ge=1, le=2**53)) -> Response:
    return await forward(request, COLLECTOR, f"/recordings/{recording_id}")


@public.delete(
    "/recordings/{recording_id}",
    tags=["recordings"],
    responses={**NOT_FOUND, **CONFLICT},
    summary="Delete a recording's files",
)
async def delete_recording(request: Request, recording_id: int = Path(ge=1, le=2**53)) -> Response:
    return await forward(request, COLLECTOR, f"/recordings/{recording_id}")


@public.get(
    "/recordings/{recording_id}/media/{media_file_id}/raw",
    tags=["recordings"],
    response_class=Response,
    responses={
        **NOT_FOUND,
        206: {"description": "The requested byte range"},
        416: _err("Range past the end"),
    },
    summary="A recording's audio file (FLAC); HTTP Range supported",
)
async def get_recording_media(
    request: Request, recording_id: int = Path(ge=1, le=2**53), media_file_id: int = Path(ge=1, le=2**53)
) -> Response:
    return await forward(request, COLLECTOR, f"/recordings/{recording_id}/media/{media_file_id}/raw")


@public.get(
    "/recordings/{recording_id}/media/{media_file_id}/download",
    tags=["recordings"],
    response_class=Response,
    responses={
        **NOT_FOUND,
        206: {"description": "The requested byte range"},
        416: _err("Range past the end"),
    },
    summary="The same file as .../raw, as a download (upstream 0.10's path); HTTP Range supported",
)
async def download_recording_media(
    request: Request, recording_id: int = Path(ge=1, le=2**53), media_file_id: int = Path(ge=1, le=2**53)
) -> Response:
    return await forward(request, COLLECTOR, f"/recordings/{recording_id}/media/{media_file_id}/download")


@public.get(
    "/recordings/{recording_id}/master",
    tags=["recordings"],
    responses={**NOT_FOUND, **CONFLICT},
    summary="The recording's playable master (the mix): {id, type, storage_path, media_file_id, raw_url, "
    "duration_seconds}",
)
async def get_recording_master(
    request: Request,
    recording_id: int = Path(ge=1, le=2**53),
    media_type: str = Query("audio", alias="type", max_length=16),
) -> Response:
    return await forward(request, COLLECTOR, f"/recordings/{recording_id}/master")


@public.get(
    "/recordings/{recording_id}/master/raw",
    tags=["recordings"],
    response_class=Response,
    responses={
        **NOT_FOUND,
        206: {"description": "The requested byte range"},
        416: _err("Range past the end"),
    },
    summary="The master's FLAC: the final mix, or while recording the mix assembled by the last .../master",
)
async def get_recording_master_media(request: Request, recording_id: int = Path(ge=1, le=2**53)) -> Response:
    return await forward(request, COLLECTOR, f"/recordings/{recording_id}/master/raw")


@public.patch(
    "/meetings/{platform}/{native_meeting_id}",
    tags=["meetings"],
    response_model=MeetingResponse,
    responses=NOT_FOUND,
    summary="Update a meeting's name, participants, languages or notes",
)
async def update_meeting(body: MeetingUpdate, request: Request, ref: str = Depends(meeting_ref)) -> Response:
    return await forward(request, COLLECTOR, f"/meetings/{ref}")


@public.delete(
    "/meetings/{platform}/{native_meeting_id}",
    tags=["meetings"],
    response_model=MessageResponse,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Delete a finished meeting's transcript and anonymise the meeting",
)
async def delete_meeting(request: Request, ref: str = Depends(meeting_ref)) -> Response:
    return await forward(request, COLLECTOR, f"/meetings/{ref}")


# --- user settings (admin-api) -------------------------------------------------------------------


@public.put(
    "/user/webhook",
    tags=["user"],
    response_model=WebhookSetResponse,
    summary="Set the webhook URL, secret and events (the secret is shown once)",
)
async def set_webhook(body: WebhookUpdate, request: Request) -> Response:
    return await forward(request, ADMIN, "/user/webhook")


@public.get("/user/webhook", tags=["user"], response_model=WebhookInfo, summary="The webhook settings")
async def get_webhook(request: Request) -> Response:
    return await forward(request, ADMIN, "/user/webhook")


@public.delete(
    "/user/webhook", tags=["user"], status_code=204, response_class=Response, summary="Stop webhooks"
)
async def delete_webhook(request: Request) -> Response:
    return await forward(request, ADMIN, "/user/webhook")


@public.get(
    "/user/webhook/deliveries",
    tags=["user"],
    response_model=WebhookDeliveries,
    summary="Recent webhook delivery attempts, newest first",
)
async def webhook_deliveries(request: Request, limit: int = Query(100, ge=1, le=500)) -> Response:
    return await forward(request, ADMIN, "/user/webhook/deliveries")


@public.post(
    "/user/webhook/test",
    tags=["user"],
    response_model=WebhookTestResult,
    responses={404: _err("No webhook is set")},
    summary="Send a signed test ping now",
)
async def test_webhook(request: Request) -> Response:
    return await forward(request, ADMIN, "/user/webhook/test")


# --- admin (admin-api) ---------------------------------------------------------------------------

UserId = Path(ge=1, le=2**31 - 1)


@admin.post(
    "/users",
    status_code=201,
    response_model=UserResponse,
    responses={
        200: {"model": UserResponse, "description": "A user with that email exists; returned unchanged"}
    },
    summary="Create a user (idempotent by email)",
)
async def admin_create_user(body: UserCreate, request: Request) -> Response:
    return await forward(request, ADMIN, "/admin/users")


@admin.get("/users", response_model=list[UserResponse], summary="List users")
async def admin_list_users(
    request: Request, skip: int = Query(0, ge=0, le=2**31 - 1), limit: int = Query(100, ge=1, le=1000)
) -> Response:
    return await forward(request, ADMIN, "/admin/users")


@admin.get(
    "/users/email/{email}", response_model=UserResponse, responses=NOT_FOUND, summary="Find a user by email"
)
async def admin_user_by_email(request: Request, email: str = Path(max_length=255)) -> Response:
    return await forward(request, ADMIN, f"/admin/users/email/{quote(email, safe='@')}")


@admin.get(
    "/users/{user_id}", response_model=UserDetailResponse, responses=NOT_FOUND, summary="A user and tokens"
)
async def admin_get_user(request: Request, user_id: int = UserId) -> Response:
    return await forward(request, ADMIN, f"/admin/users/{user_id}")


@admin.patch(
    "/users/{user_id}",
    response_model=UserResponse,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Update a user",
)
async def admin_update_user(body: UserUpdate, request: Request, user_id: int = UserId) -> Response:
    return await forward(request, ADMIN, f"/admin/users/{user_id}")


@admin.delete(
    "/users/{user_id}", status_code=204, response_class=Response, responses=NOT_FOUND, summary="Delete a user"
)
async def admin_delete_user(request: Request, user_id: int = UserId) -> Response:
    return await forward(request, ADMIN, f"/admin/users/{user_id}")


@admin.post(
    "/users/{user_id}/tokens",
    status_code=201,
    response_model=TokenResponse,
    responses=NOT_FOUND,
    summary="Issue an API token (plaintext shown once)",
)
async def admin_create_token(
    request: Request,
    user_id: int = UserId,
    body: TokenCreate | None = Body(None),
    scope: Scope | None = Query(None, description="Same as the body's scope (upstream passes a query)."),
    expires_in: int | None = Query(None, ge=60, le=10 * 365 * 86400, description="Seconds to expiry."),
) -> Response:
    return await forward(request, ADMIN, f"/admin/users/{user_id}/tokens")


@admin.get(
    "/users/{user_id}/tokens", response_model=list[TokenInfo], responses=NOT_FOUND, summary="A user's tokens"
)
async def admin_list_tokens(request: Request, user_id: int = UserId) -> Response:
    return await forward(request, ADMIN, f"/admin/users/{user_id}/tokens")


@admin.delete(
    "/tokens/{token_id}",
    status_code=204,
    response_class=Response,
    responses=NOT_FOUND,
    summary="Revoke a token",
)
async def admin_revoke_token(request: Request, token_id: int = Path(ge=1, le=2**31 - 1)) -> Response:
    return await forward(request, ADMIN, f"/admin/tokens/{token_id}")


# --- admin statistics and analytics (admin-api; upstream's paths) ---------------------------------

Skip = Query(0, ge=0, le=2**31 - 1)


@admin.get(
    "/stats/meetings-users",
    tags=["analytics"],
    response_model=PaginatedMeetingUserStatResponse,
    summary="Meetings with their users (admin or analytics key)",
)
async def admin_meetings_users(
    request: Request, skip: int = Skip, limit: int = Query(100, ge=1, le=1000)
) -> Response:
    return await forward(request, ADMIN, "/admin/stats/meetings-users")


@admin.get(
    "/analytics/users",
    tags=["analytics"],
    response_model=list[UserTableResponse],
    summary="Users without data or tokens (admin or analytics key)",
)
async def admin_analytics_users(
    request: Request, skip: int = Skip, limit: int = Query(1000, ge=1, le=10000)
) -> Response:
    return await forward(request, ADMIN, "/admin/analytics/users")


@admin.get(
    "/analytics/meetings",
    tags=["analytics"],
    response_model=list[MeetingTableResponse],
    summary="Meetings without data (admin or analytics key)",
)
async def admin_analytics_meetings(
    request: Request, skip: int = Skip, limit: int = Query(1000, ge=1, le=10000)
) -> Response:
    return await forward(request, ADMIN, "/admin/analytics/meetings")


@admin.get(
    "/analytics/meetings/{meeting_id}/telematics",
    tags=["analytics"],
    response_model=MeetingTelematicsResponse,
    responses=NOT_FOUND,
    summary="One meeting's sessions, transcript statistics and durations",
)
async def admin_meeting_telematics(
    request: Request,
    meeting_id: int = Path(ge=1, le=2**31 - 1),
    include_transcriptions: bool = False,
    include_sessions: bool = True,
) -> Response:
    return await forward(request, ADMIN, f"/admin/analytics/meetings/{meeting_id}/telematics")


@admin.get(
    "/analytics/users/{user_id}/details",
    tags=["analytics"],
    response_model=UserAnalyticsResponse,
    responses=NOT_FOUND,
    summary="One user's record, meeting statistics and usage patterns",
)
async def admin_user_details(
    request: Request, user_id: int = UserId, include_meetings: bool = True, include_tokens: bool = False
) -> Response:
    return await forward(request, ADMIN, f"/admin/analytics/users/{user_id}/details")
