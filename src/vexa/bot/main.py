"""The meeting bot: one Chromium page in one meeting, audio to transcription, status to the manager.

Run as ``vexa bot`` (or ``python -m vexa bot``) with ``BOT_CONFIG`` set; the exit
code is 0 after a ``completed`` status and 1 after a ``failed`` one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vexa.bot.audio_ingress import AudioIngress
from vexa.bot.browser import Chromium, launch
from vexa.bot.commands import listen_for_commands
from vexa.bot.page import Page
from vexa.bot.platforms import ADAPTERS, JoinFailed, MeetingAdapter
from vexa.bot.settings import BotConfig, BotSettings
from vexa.bot.status import StatusReporter
from vexa.bot.transcription_client import TranscriptionStream
from vexa.logs import setup_logging
from vexa.tasks import cancel_and_wait

if TYPE_CHECKING:
    from vexa.bot.recorder import MeetingRecorder

log = logging.getLogger("vexa.bot")

CAPTURE_JS = Path(__file__).with_name("capture.js")


def pcm16_to_float32(data: bytes) -> bytes:
    """The page's 16-bit PCM frame as the float32 the transcription protocol wants (nothing kept)."""
    return (np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0).astype("<f4").tobytes()


class AudioRouter:
    """Turns the page's audio frames and speaker changes into transcription streams.

    One ``TranscriptionStream`` per capture key: ``p:<participant id>`` (a session
    whose ``speaker`` is that participant) or ``mixed`` (speaker from events).
    """

    def __init__(self, config: BotConfig, settings: BotSettings) -> None:
        self.config = config
        self.settings = settings
        self.session_config: dict[str, Any] = {
            "language": config.language,
            "task": config.task,
            "platform": config.platform,
            "meeting_url": config.meeting_url,
            "token": config.token,
            "meeting_id": config.native_meeting_id,
            # Binds the transcription session to this meeting row (not just its native id).
            "meeting_db_id": config.meeting_id if isinstance(config.meeting_id, int) else None,
            "use_vad": True,
            # WhisperLive's field for words to favour; ours biases faster-whisper's decoding with it.
            "hotwords": ", ".join(config.custom_vocabulary) or None,
        }
        self.streams: dict[str, TranscriptionStream] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.speaker_events = 0  # counted, not kept: a long meeting must not grow the bot's memory
        self.participants: dict[str, str] = {}  # id -> name, currently present
        self.participants_seen: set[str] = set()
        self.participants_changed_at = time.monotonic()
        self.closed = False
        self.recorder: MeetingRecorder | None = None
        self.paths: set[str] = set()  # "per-participant" and/or "mixed", as the page offered
        self.retired: list[TranscriptionStream] = []  # replaced after a rename, still flushing

    def on_audio_b64(self, key: str, name: str, pid: str, b64: str, t_ms: float) -> None:
        """A frame through the page's binding (when it could not open the loopback socket)."""
        self.on_audio(key, name, pid, base64.b64decode(b64), t_ms)

    def on_audio(self, key: str, name: str, pid: str, pcm16: bytes, t_ms: float) -> None:
        """One frame of 16-bit PCM from tap ``key``; ``t_ms`` dates its last sample."""
        if self.closed:
            return  # late frames from the page after the bot started shutting down
        stream = self.streams.get(key)
        if stream is not None and key != "mixed" and name and stream.base_config.get("speaker") != name:
            # Renamed mid-meeting: their words from now on go out under the new name.
            log.info("participant %s renamed to %r: new session", pid, name)
            self.retired.append(stream)
            self.tasks.append(asyncio.create_task(stream.close()))
            stream = None
        if stream is None:
            self._log_path(key)
            speaker = name if key != "mixed" else None
            stream = TranscriptionStream(
                self.config.transcription_url,
                self.session_config,
                speaker=speaker,
                max_buffer_s=self.settings.audio_buffer_s,
                reconnect_max_s=self.settings.reconnect_max_s,
                label=f"audio[{name or 'mixed'}]",
            )
            self.streams[key] = stream
            self.tasks.append(asyncio.create_task(stream.run()))
            log.info("new audio stream %s", stream.label)
        pcm = pcm16_to_float32(pcm16)
        stream.push(pcm, t_ms / 1000.0)
        if self.recorder is not None:
            self.recorder.push(key, name if key != "mixed" else None, pid or None, pcm, t_ms / 1000.0)

    def _log_path(self, key: str) -> None:
        """Say once which audio path the page offered: per participant, or one mixed stream."""
        path = "mixed" if key == "mixed" else "per-participant"
        if path not in self.paths:
            self.paths.add(path)
            how = (
                "one mixed stream for everyone; speakers attributed per word from the page's indicator"
                if path == "mixed"
                else "a media element per participant; each transcribed as its own speaker"
            )
            log.info("%s audio path: the %s page gives %s", path, self.config.platform, how)

    def on_speaker(self, event_type: str, name: str, pid: str, t_ms: float) -> None:
        """A speaking-indicator change, dated back by the indicator's lag (``BOT_SPEAKER_LAG_MS``)."""
        event = {
            "type": "speaker_activity",
            "event_type": event_type,
            "participant_name": name,
            "participant_id": pid or None,
        }
        wall = (t_ms - self.settings.speaker_lag_ms) / 1000.0
        self.speaker_events += 1
        for stream in self.streams.values():
            stream.send_event(event, wall_time=wall)
        if self.recorder is not None:
            self.recorder.speaker(event_type, name, pid or None, wall)

    def on_participants(self, people: list[dict[str, str]]) -> None:
        self.participants = {p.get("id") or p.get("name", ""): p.get("name", "") for p in people}
        self.participants_seen.update(n for n in self.participants.values() if n)
        self.participants_changed_at = time.monotonic()
        log.info("participants now: %d", len(self.participants))

    def reconfigure(self, language: str | None, task: str | None) -> None:
        message: dict[str, Any] = {"type": "session_control"}
        if language:
            message["language"] = language
            self.session_config["language"] = language
        if task:
            message["task"] = task
            self.session_config["task"] = task
        for stream in self.streams.values():
            stream.base_config.update({k: v for k, v in message.items() if k != "type"})
            stream.send_event(message)

    async def close(self) -> None:
        self.closed = True
        streams = [*self.streams.values(), *self.retired]
        closing = [s.close() for s in streams]
        if self.recorder is not None:
            closing.append(self.recorder.close())
        await asyncio.gather(*closing, return_exceptions=True)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class Bot:
    """One meeting, start to finish."""

    def __init__(self, config: BotConfig, settings: BotSettings | None = None) -> None:
        self.config = config
        self.settings = settings or BotSettings()
        self.reporter = StatusReporter(config.callback_url, config.token, config.meeting_id)
        self.audio = AudioRouter(config, self.settings)
        self._stop = asyncio.Event()
        self.stop_reason: str | None = None
        # Why it ended, in words, for the final status report (data.error_details): no stack traces.
        self.end_message: str | None = None
        self.ingress_url: str | None = None
        self.audio_transport: str | None = None  # "socket" or "binding", once capturing
        self.capture_path: str | None = None  # "track" or "worklet" (capture.js), once capturing
        self.capture_render_s = 0.0  # the worklet context's render size (baseLatency), if that path

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            log.info("stopping: %s", reason)
            self.stop_reason = reason
            self._stop.set()

    async def _handle_command(self, command: dict[str, Any]) -> None:
        action = command.get("action")
        if action == "leave":
            self.request_stop("stopped")
        elif action == "reconfigure":
            log.info("reconfigure: language=%s task=%s", command.get("language"), command.get("task"))
            self.audio.reconfigure(command.get("language"), command.get("task"))
        else:
            log.warning("unknown command %r", action)

    async def _until_stopped(self, coro: Any) -> tuple[bool, Any]:
        """Run ``coro`` unless a stop comes first: (finished, result)."""
        task = asyncio.ensure_future(coro)
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if task.done():
            return True, task.result()
        await cancel_and_wait(task)
        return False, None

    async def _watch_alone(self) -> None:
        limit = self.config.leave_when_alone_s
        while True:
            await asyncio.sleep(0.5)
            alone_for = time.monotonic() - self.audio.participants_changed_at
            if not self.audio.participants and alone_for >= limit:
                self.request_stop("left_alone")
                return

    async def _open_page(self, browser: Chromium) -> Page:
        page = await browser.new_page()
        await page.expose("__vexaAudio", self.audio.on_audio_b64)
        await page.expose("__vexaSpeaker", self.audio.on_speaker)
        await page.expose("__vexaParticipants", self.audio.on_participants)
        await page.add_init_script(CAPTURE_JS.read_text())
        return page

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop, "stopped")
        log.info(
            "bot for meeting %s (%s %s) as %r",
            self.config.meeting_id,
            self.config.platform,
            self.config.native_meeting_id,
            self.config.bot_name,
        )
        helpers: list[asyncio.Task[Any]] = []
        if self.config.redis_url:
            helpers.append(
                asyncio.create_task(
                    listen_for_commands(self.config.redis_url, self.config.meeting_id, self._handle_command)
                )
            )
        helpers.append(asyncio.create_task(self._max_duration()))
        if self.config.recording_enabled and self.config.recording_prefix:
            # Imported only for a recorded meeting: the FLAC encoder (PyAV, FFmpeg's libraries) and the
            # storage clients are a quarter of the bot's Python memory, and most meetings record nothing.
            from vexa.bot.recorder import MeetingRecorder
            from vexa.recordings.storage import open_storage

            self.audio.recorder = MeetingRecorder(
                open_storage(self.settings), self.config.recording_prefix, self.settings.recording_chunk_s
            )
            self.audio.recorder.start()
            log.info("recording to %s (%s)", self.config.recording_prefix, self.settings.storage_backend)
        await self.reporter.send("joining")
        status, reason = "failed", "join_error"
        ingress = AudioIngress(self.audio.on_audio)
        self.ingress_url = await ingress.start() if self.settings.audio_socket else None
        try:
            browser = await launch(self.settings)
            try:
                status, reason = await self._in_meeting(await self._open_page(browser), helpers)
            finally:
                await self.audio.close()
                await browser.close()
        except Exception as exc:
            log.exception("bot crashed")
            status, reason = "failed", "join_error"
            self.end_message = f"the bot crashed: {type(exc).__name__}"
            await self.audio.close()
        finally:
            await ingress.stop()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
        await self.reporter.send(
            status,
            reason,
            participants=sorted(self.audio.participants_seen),
            details={
                "speaker_events": self.audio.speaker_events,
                **({"message": self.end_message} if self.end_message else {}),
            },
        )
        return 0 if status == "completed" else 1

    async def _max_duration(self) -> None:
        await asyncio.sleep(self.config.max_duration_s)
        self.request_stop("max_duration")

    async def _in_meeting(self, page: Page, helpers: list[asyncio.Task[Any]]) -> tuple[str, str]:
        adapter_cls = ADAPTERS.get(self.config.platform)
        if adapter_cls is None:
            self.end_message = f"unsupported platform {self.config.platform!r}"
            return "failed", "join_error"
        adapter: MeetingAdapter = adapter_cls(page, self.config.meeting_url, self.config.bot_name)
        try:
            finished, _ = await self._until_stopped(adapter.join())
            if finished:
                finished, _ = await self._until_stopped(
                    adapter.wait_for_admission(
                        self.config.admission_timeout_s, lambda: self.reporter.send("awaiting_admission")
                    )
                )
        except JoinFailed as exc:
            log.warning("could not join: %s", exc)
            self.end_message = exc.detail or None
            return "failed", exc.reason
        if not finished:
            return "completed", self.stop_reason or "stopped"
        # Admitted: capture starts only now.
        transport = await adapter.start_capture(
            per_participant=self.settings.per_participant,
            frame_ms=self.settings.audio_frame_ms,
            render_ms=self.settings.capture_render_ms,
            ingress_url=self.ingress_url,
            path=self.settings.capture_path,
        )
        self.capture_path, self.capture_render_s = await adapter.capture_path()
        log.info(
            "audio frames travel over the %s; tracks are tapped %s",
            "loopback socket" if transport == "socket" else "page binding",
            "by track processors in a worker"
            if self.capture_path == "track"
            else f"by an AudioWorklet rendering {self.capture_render_s * 1000:.0f} ms at a time",
        )
        if self.capture_path != self.settings.capture_path:
            log.warning("the page refused the capture worker: tracks are tapped by an AudioWorklet instead")
        self.audio_transport = transport
        await adapter.watch_speakers()
        await self.reporter.send("active", participants=sorted(self.audio.participants_seen))
        helpers.append(asyncio.create_task(self._watch_alone()))
        ended, end_reason = await self._until_stopped(adapter.watch_end())
        if ended:
            return "completed", end_reason
        await adapter.leave()
        return "completed", self.stop_reason or "stopped"


def run() -> None:
    """Entry point for ``vexa bot``: read BOT_CONFIG, run one meeting, exit with its outcome."""
    settings = BotSettings()
    setup_logging("bot", settings.log_level)
    config = BotConfig.from_env()
    code = asyncio.run(Bot(config, settings).run())
    raise SystemExit(code)
