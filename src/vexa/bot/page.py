"""One meeting tab, as the platform adapters see it: open a URL, find landmarks, click, type, run JS.

Everything goes over the bot's DevTools session with the tab (vexa.bot.cdp), and only the
domains the bot needs are on: Page (navigation, init scripts) and Runtime (scripts, bindings).
The Network domain stays off, so the browser never reports the page's traffic (its audio
frames on the loopback socket included) to the bot.

Landmarks are found by one in-page function (``page_query.js``) that takes a whole group of
selectors, so asking "is any end screen showing?" is one round trip however many selectors the
platform lists. Clicks and typing are sent as input events (``Input.dispatchMouseEvent``,
``Input.insertText``): the page sees them as a person's, trusted, not as script calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vexa.bot.cdp import CdpConnection, CdpError

log = logging.getLogger("vexa.bot.page")

QUERY_JS = Path(__file__).with_name("page_query.js").read_text().strip().rstrip(";")
NAVIGATION_STATUS_JS = "() => (performance.getEntriesByType('navigation')[0] || {}).responseStatus || 0"
# Every command to the tab is answered within this, or the tab is taken as hung or crashed.
COMMAND_TIMEOUT_S = 20.0


class PageError(CdpError):
    """The tab could not do what was asked: a navigation failed, a script threw, it stopped answering."""


class Page:
    """A tab the bot attached to (flat session ``session_id`` on ``cdp``)."""

    def __init__(self, cdp: CdpConnection, session_id: str) -> None:
        self.cdp = cdp
        self.session_id = session_id
        self._bindings: dict[str, Callable[..., None]] = {}
        self._dom_ready: asyncio.Future[None] | None = None

    async def enable(self) -> None:
        self.cdp.on("Runtime.bindingCalled", self._binding_called, self.session_id)
        self.cdp.on("Page.domContentEventFired", self._dom_content, self.session_id)
        await self._send("Page.enable")
        # Chromium installs bindings in new documents only while Runtime is on (which also sends the
        # page's console messages here: nothing listens to them, they are dropped on arrival).
        await self._send("Runtime.enable")

    async def _send(self, method: str, params: dict[str, Any] | None = None, timeout_s: float = 0) -> Any:
        limit = timeout_s or COMMAND_TIMEOUT_S
        try:
            return await asyncio.wait_for(self.cdp.send(method, params, self.session_id), limit)
        except TimeoutError as exc:
            raise PageError(f"{method}: no answer from the page within {limit:.0f} s") from exc

    # ---- set-up -----------------------------------------------------------------------------
    async def add_init_script(self, source: str) -> None:
        """Run ``source`` in every document this tab loads, before the page's own scripts."""
        await self._send("Page.addScriptToEvaluateOnNewDocument", {"source": source})

    async def expose(self, name: str, callback: Callable[..., None]) -> None:
        """Give every document ``window[name](jsonArgsArray)``; each call runs ``callback(*args)`` here."""
        self._bindings[name] = callback
        await self._send("Runtime.addBinding", {"name": name})

    def _binding_called(self, params: dict[str, Any]) -> None:
        callback = self._bindings.get(params.get("name", ""))
        if callback is None:
            return
        try:
            args = json.loads(params.get("payload") or "[]")
        except ValueError:
            log.warning("binding %s: payload is not JSON; dropped", params.get("name"))
            return
        callback(*args) if isinstance(args, list) else callback(args)

    def _dom_content(self, _params: dict[str, Any]) -> None:
        if self._dom_ready is not None and not self._dom_ready.done():
            self._dom_ready.set_result(None)

    # ---- navigation and scripts ---------------------------------------------------------------
    async def goto(self, url: str, timeout_s: float = 30.0) -> int:
        """Open ``url`` and wait for its DOM; returns the HTTP status (0 when the page has none)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._dom_ready = loop.create_future()
        navigated = await self._send("Page.navigate", {"url": url}, timeout_s)
        if navigated.get("errorText"):
            raise PageError(navigated["errorText"])
        try:
            await asyncio.wait_for(asyncio.shield(self._dom_ready), max(0.1, deadline - loop.time()))
        except TimeoutError as exc:
            raise PageError(f"the page did not load within {timeout_s:.0f} s") from exc
        status = await self.evaluate(NAVIGATION_STATUS_JS)
        return int(status or 0)

    async def evaluate(self, function: str, *args: Any) -> Any:
        """Call the JS ``function`` with ``args`` (JSON) in the page; its (awaited) result, as JSON."""
        result = await self._send(
            "Runtime.evaluate",
            {
                "expression": f"({function})(...{json.dumps(args)})",
                "returnByValue": True,
                "awaitPromise": True,
            },
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            thrown = details.get("exception", {}).get("description") or details.get("text", "")
            raise PageError(f"script failed: {thrown.splitlines()[0] if thrown else 'no detail'}")
        return result.get("result", {}).get("value")

    # ---- landmarks ----------------------------------------------------------------------------
    async def first_visible(self, selectors: tuple[str, ...] | str) -> int | None:
        """Index of the first selector with a visible match (None: none is showing)."""
        index = await self.evaluate(QUERY_JS, _group(selectors), "visible")
        return None if index is None or index < 0 else int(index)

    async def visible(self, selectors: tuple[str, ...] | str) -> bool:
        return await self.first_visible(selectors) is not None

    async def wait_visible(self, selectors: tuple[str, ...] | str, timeout_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not await self.visible(selectors):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def click(self, selectors: tuple[str, ...] | str) -> bool:
        """Click the first visible match with the mouse, at its centre; False if none is visible."""
        point = await self.evaluate(QUERY_JS, _group(selectors), "click")
        if not point:
            return False
        at = {"x": point["x"], "y": point["y"], "button": "left"}
        await self._send("Input.dispatchMouseEvent", {"type": "mouseMoved", **at})
        for kind in ("mousePressed", "mouseReleased"):
            await self._send("Input.dispatchMouseEvent", {"type": kind, "clickCount": 1, **at})
        return True

    async def fill(self, selectors: tuple[str, ...] | str, text: str) -> bool:
        """Replace the text of the first visible match, typed in as one input; False if none."""
        if not await self.evaluate(QUERY_JS, _group(selectors), "fill"):
            return False
        await self._send("Input.insertText", {"text": text})
        return True


def _group(selectors: tuple[str, ...] | str) -> list[str]:
    return [selectors] if isinstance(selectors, str) else list(selectors)
