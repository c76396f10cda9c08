"""A SIMULATED meeting server for tests, benchmarks and demos — not a real platform.

It serves pages on 127.0.0.1 that reproduce the join flow and the DOM landmarks
the bot's platform adapters rely on (Google Meet, Microsoft Teams, Zoom web):
name field, ask-to-join, waiting room, admission, participant tiles with speaking
indicators, removal and end-of-meeting screens. Simulated participants "speak" by
playing WAV files through an in-page ``MediaStream`` (a Web Audio
``MediaStreamAudioDestinationNode``) attached to a media element's ``srcObject``,
which is how real meeting pages hand remote audio to the browser: per participant
on each tile (Google Meet) or one mixed stream for everyone (Teams, Zoom web), with
the speaking indicator late and flickering as real ones are (``sim_plan``). No
RTCPeerConnection is ever opened, so nothing leaves loopback.

Each meeting (keyed by its native id taken from the URL path) has its own state;
tests drive it through ``/_sim/*`` control endpoints and read it at ``GET /_sim/state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from vexa.testing.sim_plan import Person, Plan, PlanOptions, plan

log = logging.getLogger("vexa.testing.simulator")

STATIC_DIR = Path(__file__).parent / "static"

MEET_CODE = re.compile(r"^[a-z]{3}-[a-z]{4}-[a-z]{3}$")
DIGITS = re.compile(r"^[0-9]{9,15}$")

TITLES = {
    "google_meet": "Meet (SIMULATED)",
    "teams": "Microsoft Teams (SIMULATED)",
    "zoom": "Zoom (SIMULATED)",
}


@dataclass(frozen=True)
class SimParticipant:
    """A simulated participant who plays their WAV files, one per turn (turns go round-robin)."""

    name: str
    wav: Path | None
    more: tuple[Path, ...] = ()
    """Further clips, each a later turn."""
    join_at: float = 0.0
    """Seconds after the meeting's audio starts that they join (0: there from the start)."""
    leaves: bool = False
    """Leaves the meeting 1.5 s after their last turn."""
    rename_to: str | None = None
    """Renamed (their tile's name changes) just after their first turn."""

    @property
    def clips(self) -> tuple[Path, ...]:
        return (self.wav, *self.more) if self.wav is not None else ()

    @classmethod
    def parse(cls, spec: str) -> SimParticipant:
        """The CLI form: ``NAME=a.wav[,b.wav...][;join=SECONDS][;leave][;rename=NEW]``; ``NAME;silent``."""
        head, *options = [part.strip() for part in spec.split(";")]
        name, sep, paths = head.partition("=")
        silent = "silent" in options
        if not name.strip() or (not silent and (not sep or not paths.strip())):
            raise ValueError(
                f"participant must be NAME=path.wav[,more.wav][;join=S][;leave][;rename=NEW], got {spec!r}"
            )
        wavs = [] if silent else [Path(p.strip()).expanduser() for p in paths.split(",") if p.strip()]
        for wav in wavs:
            if not wav.is_file():
                raise ValueError(f"participant {name!r}: no such WAV file {wav}")
        kw: dict[str, Any] = {}
        for option in options:
            key, _, value = option.partition("=")
            if key == "join":
                kw["join_at"] = float(value)
            elif key == "leave":
                kw["leaves"] = True
            elif key == "rename" and value.strip():
                kw["rename_to"] = value.strip()
            elif key != "silent":
                raise ValueError(f"participant {name!r}: unknown option {option!r}")
        return cls(name=name.strip(), wav=wavs[0] if wavs else None, more=tuple(wavs[1:]), **kw)


@dataclass
class SimConfig:
    participants: list[SimParticipant]
    admit_after: float = 2.0
    """Seconds after the bot asks to join before the host admits it; < 0 means never (use /_sim/admit)."""
    leave_after_audio: float = 5.0
    """Seconds after the last participant's audio before everyone leaves and the meeting ends."""
    play_delay: float = 2.0
    """Seconds between admission and the first participant speaking (the bot needs a moment to attach)."""
    gap: float = 0.8
    """Silence between two participants' turns."""
    unknown_meetings: frozenset[str] = frozenset()
    """Native ids answered with the platform's "meeting not found" page (a dead or mistyped link)."""
    audio: str = "auto"
    """How remote audio reaches the page: ``per_participant`` (a media element per tile, as Google
    Meet does), ``mixed`` (one element for everyone, as Teams and Zoom web do) or ``auto`` (the
    platform's own way)."""
    overlap: float = 0.0
    """Share of the speech time two people talk at once (0-0.5)."""
    indicator_lag: float = 0.3
    """Seconds the active-speaker indicator trails the audio (each switch jittered by 0.1 s)."""
    flicker_per_min: float = 4.0
    """Random short drop-outs of the speaking indicator per minute of speech."""
    screen_share: bool = False
    """Show a screen-share tile (video, no audio, not a participant)."""
    csp: str | None = None
    """``Content-Security-Policy`` of the meeting page, as real platforms send one (``connect-src
    'self'`` refuses the bot's loopback audio socket, so the bot must fall back to its binding)."""
    seed: int = 1

    def audio_mode(self, platform: str) -> str:
        if self.audio != "auto":
            return self.audio
        return "per_participant" if platform == "google_meet" else "mixed"

    def plan(self) -> Plan:
        people = [
            Person(p.clips, join_at=p.join_at, leaves=p.leaves, renamed=p.rename_to is not None)
            for p in self.participants
        ]
        return plan(
            people,
            PlanOptions(
                gap=self.gap,
                overlap=self.overlap,
                lag=self.indicator_lag,
                blips_per_min=self.flicker_per_min,
                seed=self.seed,
            ),
        )


@dataclass
class MeetingState:
    """What the host/platform side of one simulated meeting knows."""

    platform: str
    native_id: str
    bot_name: str | None = None
    bot_mic_muted: bool | None = None
    bot_camera_off: bool | None = None
    asked_at: float | None = None
    admitted_at: float | None = None
    rejected: bool = False
    removed: bool = False
    bot_left: bool = False
    ended: bool = False
    ended_reason: str | None = None
    end_due: float | None = None
    playing: str | None = None
    played: list[dict[str, Any]] = field(default_factory=list)
    participants: list[str] = field(default_factory=list)
    origin_at: float | None = None
    """Wall-clock time of the plan's 0 s (the page's audio origin): plan times + this = when."""

    @property
    def admitted(self) -> bool:
        return self.admitted_at is not None


class MeetingSimulator:
    """The state machine behind the pages; thread-safe enough for one event loop.

    Every meeting plays ``config`` unless one was set for its native id with ``configure``
    (a bench runs meetings of different sizes and overlaps against one server).
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.meetings: dict[str, MeetingState] = {}
        self.plan = config.plan()
        self._own: dict[str, tuple[SimConfig, Plan]] = {}

    def configure(self, native_id: str, config: SimConfig) -> Plan:
        """Give one meeting its own participants and plan (before a bot opens it); returns the plan."""
        planned = config.plan()
        self._own[native_id] = (config, planned)
        return planned

    def config_of(self, native_id: str) -> SimConfig:
        return self._own[native_id][0] if native_id in self._own else self.config

    def plan_of(self, native_id: str) -> Plan:
        return self._own[native_id][1] if native_id in self._own else self.plan

    def meeting(self, platform: str, native_id: str) -> MeetingState:
        state = self.meetings.get(native_id)
        if state is None:
            state = MeetingState(
                platform=platform,
                native_id=native_id,
                participants=[p.name for p in self.config_of(native_id).participants],
            )
            self.meetings[native_id] = state
        return state

    def tick(self, state: MeetingState) -> None:
        """Apply the timers (auto-admission, end after the last audio)."""
        now = time.time()
        admit_after = self.config_of(state.native_id).admit_after
        if (
            state.asked_at is not None
            and not state.admitted
            and not state.rejected
            and admit_after >= 0
            and now - state.asked_at >= admit_after
        ):
            state.admitted_at = now
            log.info("SIMULATED host admitted %s to %s", state.bot_name, state.native_id)
        if state.end_due is not None and not state.ended and now >= state.end_due:
            self.end(state, "everyone_left")

    def end(self, state: MeetingState, reason: str) -> None:
        state.ended = True
        state.ended_reason = reason
        state.participants = []
        state.playing = None
        log.info("SIMULATED meeting %s ended (%s)", state.native_id, reason)

    def select(self, request: Request) -> list[MeetingState]:
        """Meetings a control request addresses: ``?meeting=<native id>`` or all of them."""
        wanted = request.query_params.get("meeting")
        if wanted:
            return [m for m in self.meetings.values() if m.native_id == wanted]
        return list(self.meetings.values())

    def snapshot(self, state: MeetingState) -> dict[str, Any]:
        self.tick(state)
        data = asdict(state)
        data["admitted"] = state.admitted
        data["asked"] = state.asked_at is not None
        return data


def _page(sim: MeetingSimulator, platform: str, native_id: str) -> HTMLResponse:
    if native_id in sim.config.unknown_meetings:
        return _not_found(platform)
    sim.meeting(platform, native_id)
    config = sim.config_of(native_id)
    audio = f"/_sim/m/{quote(native_id, safe='')}/audio"
    cfg = {
        "platform": platform,
        "meeting": native_id,
        "participants": [
            {
                "name": p.name,
                "rename_to": p.rename_to,
                "id": f"sim-participant-{i + 1}",
                "audio": [f"{audio}/{i}/{k}.wav" for k in range(len(p.clips))],
            }
            for i, p in enumerate(config.participants)
        ],
        "audio_mode": config.audio_mode(platform),
        "screen_share": config.screen_share,
        "plan": sim.plan_of(native_id).as_json(),
        "play_delay": config.play_delay,
    }
    html = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(TITLES[platform])}</title>"
        "<link rel='stylesheet' href='/_sim/static/sim.css'></head><body>"
        "<div class='sim-banner'>SIMULATED meeting for testing — not a real meeting platform</div>"
        "<div id='app'></div>"
        f"<script id='sim-config' type='application/json'>{escape(json.dumps(cfg), quote=False)}</script>"
        "<script src='/_sim/static/sim.js'></script></body></html>"
    )
    headers = {"Content-Security-Policy": sim.config.csp} if sim.config.csp else None
    return HTMLResponse(html, headers=headers)


def _not_found(platform: str) -> HTMLResponse:
    texts = {
        "google_meet": "Check your meeting code",
        "teams": "We couldn't find this meeting",
        "zoom": "This meeting link is invalid",
    }
    return HTMLResponse(
        f"<!doctype html><html><body><div class='sim-not-found'>{texts[platform]}</div></body></html>", 404
    )


def create_app(sim: MeetingSimulator) -> Starlette:
    """The Starlette app; one ``MeetingSimulator`` holds all meetings' state."""

    async def google_meet(request: Request) -> Response:
        code = request.path_params["code"]
        if not MEET_CODE.fullmatch(code):
            return _not_found("google_meet")
        return _page(sim, "google_meet", code)

    async def zoom(request: Request) -> Response:
        number = request.path_params["number"]
        return _page(sim, "zoom", number) if DIGITS.fullmatch(number) else _not_found("zoom")

    async def teams(request: Request) -> Response:
        number = request.path_params["number"]
        return _page(sim, "teams", number) if DIGITS.fullmatch(number) else _not_found("teams")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        path = STATIC_DIR / name
        if "/" in name or not path.is_file():
            return JSONResponse({"detail": "not found"}, 404)
        return FileResponse(path)

    async def audio(request: Request) -> Response:
        index, clip = int(request.path_params["index"]), int(request.path_params["clip"])
        people = sim.config_of(request.path_params["meeting"]).participants
        if not 0 <= index < len(people):
            return JSONResponse({"detail": "no such participant"}, 404)
        clips = people[index].clips
        if not 0 <= clip < len(clips):
            return JSONResponse({"detail": "no such clip"}, 404)
        return FileResponse(clips[clip], media_type="audio/wav")

    def _meeting_or_404(request: Request) -> MeetingState | None:
        return sim.meetings.get(request.path_params["meeting"])

    async def page_state(request: Request) -> Response:
        state = _meeting_or_404(request)
        if state is None:
            return JSONResponse({"detail": "unknown meeting"}, 404)
        return JSONResponse(sim.snapshot(state))

    async def page_event(request: Request) -> Response:
        """Events the page reports: join request, speech start/end, the bot leaving."""
        state = _meeting_or_404(request)
        if state is None:
            return JSONResponse({"detail": "unknown meeting"}, 404)
        body = await request.json()
        kind = body.get("event")
        now = time.time()
        if kind == "ask":
            state.bot_name = str(body.get("name") or "")
            state.bot_mic_muted = bool(body.get("mic_muted"))
            state.bot_camera_off = bool(body.get("camera_off"))
            state.asked_at = now
            log.info("SIMULATED %s: %r asks to join", state.native_id, state.bot_name)
        elif kind == "speech_start":
            state.playing = body["name"]
            state.played.append(
                {
                    "name": body["name"],
                    "turn": body.get("turn"),
                    "started_at": now,
                    "ended_at": None,
                    "duration": None,
                }
            )
        elif kind == "speech_end":
            state.playing = None
            for item in reversed(state.played):
                if item["name"] == body["name"] and item["ended_at"] is None:
                    item["ended_at"] = now
                    item["duration"] = float(body.get("duration") or 0.0)
                    break
            if body.get("last"):
                state.end_due = now + sim.config_of(state.native_id).leave_after_audio
        elif kind == "left":
            state.bot_left = True
        elif kind == "origin":
            state.origin_at = float(body.get("at") or now)
        elif kind == "roster":
            state.participants = [str(n) for n in body.get("names") or []]
        else:
            return JSONResponse({"detail": f"unknown event {kind!r}"}, 422)
        sim.tick(state)
        return JSONResponse({"ok": True})

    def _control(action: str):
        async def handler(request: Request) -> Response:
            targets = sim.select(request)
            if not targets:
                return JSONResponse({"detail": "no such meeting"}, 404)
            for state in targets:
                if action == "admit":
                    state.admitted_at = state.admitted_at or time.time()
                elif action == "reject":
                    state.rejected = True
                elif action == "remove-bot":
                    state.removed = True
                elif action == "end":
                    sim.end(state, "ended_by_host")
                elif action == "everyone-leaves":
                    state.participants = []
                    state.playing = None
            log.info("SIMULATED control %s on %s", action, [m.native_id for m in targets])
            return JSONResponse({"ok": True, "meetings": [m.native_id for m in targets]})

        return handler

    async def all_state(request: Request) -> Response:
        targets = sim.select(request)
        return JSONResponse({"meetings": {m.native_id: sim.snapshot(m) for m in targets}})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "simulated": True})

    routes = [
        Route("/health", health),
        Route("/_sim/state", all_state),
        Route("/_sim/admit", _control("admit"), methods=["POST"]),
        Route("/_sim/reject", _control("reject"), methods=["POST"]),
        Route("/_sim/remove-bot", _control("remove-bot"), methods=["POST"]),
        Route("/_sim/end", _control("end"), methods=["POST"]),
        Route("/_sim/everyone-leaves", _control("everyone-leaves"), methods=["POST"]),
        Route("/_sim/static/{name}", static),
        Route("/_sim/m/{meeting}/audio/{index:int}/{clip:int}.wav", audio),
        Route("/_sim/m/{meeting}/state", page_state),
        Route("/_sim/m/{meeting}/event", page_event, methods=["POST"]),
        Route("/j/{number}", zoom),
        Route("/wc/join/{number}", zoom),
        Route("/meet/{number}", teams),
        Route("/{code}", google_meet),
    ]
    return Starlette(routes=routes)


class SimulatorServer:
    """In-process simulator on 127.0.0.1 (uvicorn in a background thread), for tests and benches."""

    def __init__(self, config: SimConfig, port: int, host: str = "127.0.0.1") -> None:
        self.sim = MeetingSimulator(config)
        self.host, self.port = host, port
        self._server = uvicorn.Server(
            uvicorn.Config(create_app(self.sim), host=host, port=port, log_level="warning", lifespan="off")
        )
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        self._thread = threading.Thread(target=self._server.run, name="meeting-simulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"simulator did not start on {self.base_url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def configure(self, native_id: str, config: SimConfig) -> Plan:
        """One meeting's own participants and plan (``MeetingSimulator.configure``)."""
        return self.sim.configure(native_id, config)

    def state(self, native_id: str) -> dict[str, Any] | None:
        """The meeting's state as ``GET /_sim/state`` shows it (None before a bot opened the page)."""
        m = self.sim.meetings.get(native_id)
        return None if m is None else self.sim.snapshot(m)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_simulator(
    platform: str,
    port: int,
    participants: list[str],
    admit_after: float = 2.0,
    leave_after_audio: float = 5.0,
    **options: Any,
) -> None:
    """Serve a SIMULATED meeting on 127.0.0.1:port until interrupted (``vexa simulate-meeting``).

    ``options``: the other ``SimConfig`` fields (audio, overlap, indicator_lag, screen_share, ...).
    """
    if platform not in TITLES:
        raise SystemExit(f"unknown platform {platform!r}; expected one of {', '.join(TITLES)}")
    people = [SimParticipant.parse(p) for p in participants]
    if not 0 <= len(people) <= 8:
        raise SystemExit("a simulated meeting has at most 8 participants")
    config = SimConfig(
        participants=people, admit_after=admit_after, leave_after_audio=leave_after_audio, **options
    )
    example = {"google_meet": "/abc-defg-hij", "zoom": "/j/1234567890", "teams": "/meet/1234567890123"}[
        platform
    ]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info(
        "SIMULATED meeting server on http://127.0.0.1:%d (e.g. %s); %d participant(s); control at /_sim/*",
        port,
        example,
        len(config.participants),
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(MeetingSimulator(config)), host="127.0.0.1", port=port, log_level="warning")
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve())
