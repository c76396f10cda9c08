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

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page

log = logging.getLogger("vexa.bot.platforms")


class JoinFailed(Exception):
    """The bot could not get into the meeting; ``reason`` is a contract reason string."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Selectors:
    """Where one platform's landmarks are; Playwright selector syntax (css, text=, :has-text)."""

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
        for sel in (selectors,) if isinstance(selectors, str) else selectors:
            try:
                if await self.page.locator(sel).first.is_visible():
                    return True
            except PlaywrightError:
                continue
        return False

    async def _click_first_visible(self, selectors: tuple[str, ...]) -> bool:
        for sel in selectors:
            loc = self.page.locator(sel).first
            try:
                if await loc.is_visible():
                    await loc.click(timeout=5000)
                    return True
            except PlaywrightError:
                continue
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
            response = await self.page.goto(self.meeting_url, wait_until="domcontentloaded", timeout=30000)
        except PlaywrightError as exc:
            why = exc.message.splitlines()[0].removeprefix("Page.goto: ")
            raise JoinFailed("join_error", f"cannot open the meeting page: {why}") from exc
        if response is not None and response.status == 404:
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
        await self.page.locator(s.name_input).first.fill(self.bot_name)
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
        self, per_participant: bool = True, frame_ms: int = 100, ingress_url: str | None = None
    ) -> str:
        """Start tapping the page's remote audio (the init script waits for this call).

        Returns how frames will travel to ``ingress_url`` (vexa.bot.audio_ingress): ``worker_socket``
        (opened in a shared worker), ``page_socket`` (the page could not start one), or ``binding``
        (the page could not open the socket at all, or none was given).
        """
        cfg = {
            **self.capture_config(per_participant),
            "frame_samples": frame_ms * 16,  # 16 kHz
            "ingress_url": ingress_url,
        }
        return str(await self.page.evaluate("cfg => window.__vexaStartCapture(cfg)", cfg))

    async def watch_speakers(self) -> None:
        """Start the in-page speaker/participant watcher (reports through exposed bindings)."""
        await self.page.evaluate("cfg => window.__vexaWatchSpeakers(cfg)", self.capture_config(True))

    def _any_of(self, selectors: tuple[str, ...]) -> Locator:
        """One locator for a group of selectors: one round trip to the page instead of one each."""
        locator = self.page.locator(selectors[0])
        for sel in selectors[1:]:
            locator = locator.or_(self.page.locator(sel))
        return locator.first

    async def watch_end(self, poll_s: float = 1.0) -> str:
        """Block until the bot is out of the meeting; returns ``evicted`` or ``meeting_ended``.

        Polled for the whole meeting, so each poll is two questions to the page (any end screen?
        still in the meeting?), not one per selector: every question is a hop through Playwright's
        driver and a DOM search in the renderer, and at 0.5 s a selector they cost a bot more CPU
        than its audio did.
        """
        s = self.selectors
        end_screens = self._any_of((*s.removed, *s.ended))
        in_meeting = self._any_of(s.admitted)
        gone_since: float | None = None
        while True:
            if await self._is_visible(end_screens):
                return "evicted" if await self._visible(s.removed) else "meeting_ended"
            if await self._is_visible(in_meeting):
                gone_since = None
            elif gone_since is None:
                gone_since = time.monotonic()
            elif time.monotonic() - gone_since > 10:
                return "meeting_ended"  # in-meeting UI gone with no explanation on the page
            await asyncio.sleep(poll_s)

    @staticmethod
    async def _is_visible(locator: Locator) -> bool:
        try:
            return await locator.is_visible()
        except PlaywrightError:
            return False

    async def leave(self) -> None:
        """Click the platform's leave control (and its confirmation, if any)."""
        s = self.selectors
        try:
            await self.page.evaluate("() => window.__vexaStopCapture && window.__vexaStopCapture()")
            if await self._visible(s.leave_button):
                await self.page.locator(s.leave_button).first.click(timeout=5000)
                if s.leave_confirm:
                    confirm = self.page.locator(s.leave_confirm).first
                    await confirm.wait_for(state="visible", timeout=3000)
                    await confirm.click(timeout=3000)
                log.info("%s: left the meeting", self.platform)
        except PlaywrightError as exc:
            log.warning("%s: leaving did not go cleanly: %s", self.platform, exc.message.splitlines()[0])

    def describe(self) -> dict[str, object]:
        return {"platform": self.platform, "selectors": asdict(self.selectors)}
