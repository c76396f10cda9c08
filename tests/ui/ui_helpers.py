"""Helpers for the dashboard tests: pages that record console errors, axe-core, keyboard checks."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("VEXA_UI_ARTIFACTS", ROOT / "artifacts" / "ui"))
CHROMIUM = os.environ.get("BOT_CHROMIUM_PATH", "/usr/lib/chromium/chromium")
AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text()
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


@dataclass
class Tab:
    """One browser tab (its own sessionStorage) and every console error or page error it saw."""

    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)

    def unexpected_errors(self, *allowed_statuses: int) -> list[str]:
        """Console errors, less the browser's own log line for an HTTP status the test provoked on purpose."""
        codes = "|".join(str(s) for s in allowed_statuses)
        pattern = re.compile(rf"Failed to load resource: the server responded with a status of ({codes})\b")
        return [e for e in self.errors if not (allowed_statuses and pattern.search(e))]

    async def close(self) -> None:
        await self.context.close()


async def open_tab(browser: Browser, base_url: str, viewport: dict | None = None) -> Tab:
    context = await browser.new_context(
        base_url=base_url, viewport=viewport or DESKTOP, accept_downloads=True, reduced_motion="reduce"
    )
    page = await context.new_page()
    tab = Tab(context, page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            tab.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: tab.errors.append(f"pageerror: {exc}"))
    return tab


async def axe_violations(page: Page) -> list[str]:
    """Runs axe-core (WCAG 2.x A and AA rules, and best practices) in the page; one line per violation."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE)
    result = await page.evaluate(
        """async () => {
            const r = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
            });
            return r.violations.map(v => `${v.id} (${v.impact}): ${v.help} -> ` +
                v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", "));
        }"""
    )
    return list(result)


async def tab_stops(page: Page, count: int) -> list[dict]:
    """Presses Tab ``count`` times; for each stop: tag, accessible text, and whether focus is visible."""
    stops = []
    for _ in range(count):
        await page.keyboard.press("Tab")
        stops.append(
            await page.evaluate(
                """() => {
                    const el = document.activeElement;
                    const style = getComputedStyle(el);
                    const box = el.getBoundingClientRect();
                    return {
                        tag: el.tagName.toLowerCase(),
                        text: (el.getAttribute("aria-label") || el.labels?.[0]?.textContent
                               || el.textContent || "").trim().slice(0, 60),
                        outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2,
                        onScreen: box.width > 0 && box.height > 0,
                    };
                }"""
            )
        )
    return stops


async def no_horizontal_scroll(page: Page) -> bool:
    return await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


async def sign_in(tab: Tab, key: str, then: str = "#/meetings") -> None:
    await tab.page.goto(f"/ui/#/signin?next={then.removeprefix('#')}")
    await tab.page.get_by_label("API key").fill(key)
    await tab.page.get_by_role("button", name="Sign in").click()
    await tab.page.wait_for_function("(h) => location.hash === h", arg=then)
