"""The interface every platform adapter implements, and the join flow they share.

Real meeting pages change their markup often, so each platform keeps all its
selectors in one ``Selectors`` value (its own module); the flow here only refers
to them by role (name field, join button, waiting room, ...).
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from vexa.bot.page import Page, PageError

log = logging.getLogger("vexa.bot.platforms")

CAPTURE_WORKER_JS = Path(__file__).parent.parent / "capture_worker.js"


class JoinFailed(Exception):
    """The bot could not get into the meeting; ``reason`` is a contract reason string."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Selectors:
    """Where one platform's landmarks are: CSS, ``text=words``, CSS``:has-text("words")`` (page_query.js)."""

    name_input: str
    join_buttons: tuple[str, ...]
    admitted: tuple[str, ...]
    """Visible only once in the meeting (typically the leave button)."""
    waiting: tuple[str, ...]
    rejected: tuple[str, ...]
    removed: tuple[str, ...]
    ended: tuple[str, ...]
    not_found: tuple[str, ...]
    leave_button: str
    tile: str
    """A participant's tile; holds its media element, name and speaking indicator."""
    tile_id_attr: str
    tile_name: str
    speaking: str
    """Matches the tile itself or an element inside it while that participant speaks."""
    launcher_buttons: tuple[str, ...] = ()
    """"Continue in this browser" style buttons shown before the pre-join screen."""
    mute_mic: tuple[str, ...] = ()
    """Controls present while the microphone is ON; clicking one mutes."""
    camera_off: tuple[str, ...] = ()
    leave_confirm: str | None = None


class MeetingAdapter(ABC):
    """One meeting page, driven through its platform's join flow."""

    platform: str = ""

    def __init__(self, page: Page, meeting_url: str, bot_name: str) -> None:
        self.page = page
        self.meeting_url = meeting_url
        self.bot_name = bot_name

    @property
    @abstractmethod
    def selectors(self) -> Selectors:
        """This platform's landmarks."""

    # ---- helpers --------------------------------------------------------------------
    async def _visible(self, selectors: tuple[str, ...] | str) -> bool:
        """Any of ``selectors`` showing; a page that cannot answer shows nothing."""
        try:
            return await self.page.visible(selectors)
        except PageError:
            return False

    async def _click_first_visible(self, selectors: tuple[str, ...]) -> bool:
        try:
            return await self.page.click(selectors)
        except PageError:
            return False

    async def _wait_any(self, groups: dict[str, tuple[str, ...]], within_s: float) -> str | None:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            for name, sels in groups.items():
                if await self._visible(sels):
                    return name
            await asyncio.sleep(0.25)
        return None

    # ---- the interface ---------------------------------------------------------------
    async def join(self) -> None:
        """Open the meeting, enter the name, join muted with the camera off, ask to join."""
        s = self.selectors
        try:
            status = await self.page.goto(self.meeting_url, timeout_s=30)
        except PageError as exc:
            raise JoinFailed("join_error", f"cannot open the meeting page: {exc}") from exc
        if status == 404:
            raise JoinFailed("meeting_not_found", f"HTTP 404 for the {self.platform} meeting page")
        found = await self._wait_any(
            {"name": (s.name_input,), "launcher": s.launcher_buttons, "not_found": s.not_found}, 30
        )
        if found == "not_found":
            raise JoinFailed("meeting_not_found", "the platform says the meeting does not exist")
        if found == "launcher":
            await self._click_first_visible(s.launcher_buttons)
            found = await self._wait_any({"name": (s.name_input,)}, 20)
        if found != "name":
            raise JoinFailed("join_error", "no name field on the pre-join screen")
        if not await self.page.fill(s.name_input, self.bot_name):
            raise JoinFailed("join_error", "the name field went away before the name was typed")
        for group in (s.mute_mic, s.camera_off):
            if await self._click_first_visible(group):
                log.info(
                    "%s: turned off %s before joining", self.platform, "mic" if group is s.mute_mic else "cam"
                )
        if not await self._click_first_visible(s.join_buttons):
            raise JoinFailed("join_error", "no join button on the pre-join screen")
        log.info("%s: asked to join as %r", self.platform, self.bot_name)

    async def wait_for_admission(self, within_s: float, on_waiting: Callable[[], Awaitable[None]]) -> None:
        """Return once in the meeting; raise ``JoinFailed`` on rejection or timeout."""
        s = self.selectors
        deadline = time.monotonic() + within_s
        waiting_reported = False
        while time.monotonic() < deadline:
            if await self._visible(s.admitted):
                log.info("%s: admitted", self.platform)
                return
            if await self._visible(s.rejected):
                raise JoinFailed("awaiting_admission_rejected", "the host denied the request to join")
            if await self._visible(s.ended) or await self._visible(s.removed):
                raise JoinFailed("awaiting_admission_rejected", "removed before admission")
            if not waiting_reported and await self._visible(s.waiting):
                waiting_reported = True
                log.info("%s: in the waiting room", self.platform)
                await on_waiting()
            await asyncio.sleep(0.3)
        raise JoinFailed("awaiting_admission_timeout", f"not admitted within {within_s:.0f}s")

    def capture_config(self, per_participant: bool) -> dict[str, object]:
        s = self.selectors
        return {
            "per_participant": per_participant,
            "tile": s.tile,
            "tile_id_attr": s.tile_id_attr,
            "tile_name": s.tile_name,
            "speaking": s.speaking,
        }

    async def start_capture(
        self,
        per_participant: bool = True,
        frame_ms: int = 100,
        render_ms: int = 10,
        ingress_url: str | None = None,
        path: str = "track",
    ) -> str:
        """Start tapping the page's remote audio (the init script waits for this call).

        Returns how frames will travel to ``ingress_url`` (vexa.bot.audio_ingress): ``socket``, or
        ``binding`` (the page could not open the socket, or none was given).
        """
        cfg = {
            **self.capture_config(per_participant),
            "frame_samples": frame_ms * 16,  # 16 kHz
            "render_s": render_ms / 1000,
            "ingress_url": ingress_url,
            "path": path,
            "worker_source": CAPTURE_WORKER_JS.read_text() if path == "track" else "",
        }
        return str(await self.page.evaluate("window.__vexaStartCapture", cfg))

    async def capture_path(self) -> tuple[str, float]:
        """How the page taps its tracks (``track`` or ``worklet``, see capture.js) and, for the
        worklet, how much audio its context renders at a time as Chromium granted it (seconds)."""
        path, render_s = await self.page.evaluate(
            "() => [window.__vexaState.path, window.__vexaState.ctx ? window.__vexaState.ctx.baseLatency : 0]"
        )
        return str(path), float(render_s)

    async def watch_speakers(self) -> None:
        """Start the in-page speaker/participant watcher (reports through exposed bindings)."""
        await self.page.evaluate("window.__vexaWatchSpeakers", self.capture_config(True))

    async def watch_end(self, poll_s: float = 1.0) -> str:
        """Block until the bot is out of the meeting; returns ``evicted`` or ``meeting_ended``.

        Polled for the whole meeting, so each poll asks the page at most two questions (an end
        screen? still in the meeting?), each one in-page search over a whole selector group.
        """
        s = self.selectors
        end_screens = (*s.removed, *s.ended)
        gone_since: float | None = None
        while True:
            if await self._visible(end_screens):
                return "evicted" if await self._visible(s.removed) else "meeting_ended"
            if await self._visible(s.admitted):
                gone_since = None
            elif gone_since is None:
                gone_since = time.monotonic()
            elif time.monotonic() - gone_since > 10:
                return "meeting_ended"  # in-meeting UI gone with no explanation on the page
            await asyncio.sleep(poll_s)

    async def leave(self) -> None:
        """Click the platform's leave control (and its confirmation, if any)."""
        s = self.selectors
        try:
            await self.page.evaluate("() => window.__vexaStopCapture && window.__vexaStopCapture()")
            if await self.page.click(s.leave_button):
                if s.leave_confirm and await self.page.wait_visible(s.leave_confirm, 3):
                    await self.page.click(s.leave_confirm)
                log.info("%s: left the meeting", self.platform)
        except PageError as exc:
            log.warning("%s: leaving did not go cleanly: %s", self.platform, exc)

    def describe(self) -> dict[str, object]:
        return {"platform": self.platform, "selectors": asdict(self.selectors)}
