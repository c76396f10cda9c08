"""The gateway's /docs and /redoc render in a real Chromium with nothing fetched from outside 127.0.0.1."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Route, async_playwright

from vexa.bot.settings import BotSettings
from vexa.testing.processes import ServiceProcess

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(120)]


async def _open(gateway: ServiceProcess, path: str, ready: str) -> tuple[list[str], list[str], str]:
    """Load ``path``: (loopback URLs, outside URLs, which are blocked, page text once ``ready`` shows)."""
    local: list[str] = []
    outside: list[str] = []

    async def watch(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:")):
            local.append(url)
            await route.continue_()
        else:
            outside.append(url)
            await route.abort()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=BotSettings().chromium_path, headless=True)
        try:
            page = await browser.new_page()
            await page.route("**/*", watch)
            await page.goto(gateway.base_url + path)
            await page.wait_for_selector(ready, timeout=30_000)
            await page.wait_for_load_state("networkidle")
            text = await page.inner_text("body")
        finally:
            await browser.close()
    return local, outside, text


async def test_swagger_ui_shows_the_operations_offline(gateway: ServiceProcess):
    local, outside, text = await _open(gateway, "/docs", ".opblock")
    assert outside == []
    assert any(url.endswith("/openapi.json") for url in local)
    assert any(url.endswith("swagger-ui-bundle.js") for url in local)
    for operation in ("/bots", "/meetings", "/transcripts/{platform}/{native_meeting_id}", "/admin/users"):
        assert operation in text, operation


async def test_redoc_renders_offline(gateway: ServiceProcess):
    local, outside, text = await _open(gateway, "/redoc", "[data-section-id]")
    assert outside == []
    assert any(url.endswith("redoc.standalone.js") for url in local)
    assert "Vexa API" in text and "/meetings" in text


def test_the_docs_pages_forbid_other_origins(gateway: ServiceProcess):
    for path in ("/docs", "/redoc"):
        response = httpx.get(gateway.base_url + path, timeout=10)
        assert response.status_code == 200
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert "cdn" not in response.text.lower()
