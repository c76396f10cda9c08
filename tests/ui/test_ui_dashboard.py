"""The dashboard, used the way a person would, in real Chromium against the real stack.

In file order: an invalid key is refused clearly; the admin creates a user and a key
that then works in the API; the user signs in, starts a bot from the form (with the
form's errors checked on the way), watches the statuses and the live transcript of a
SIMULATED meeting, stops the bot; then reads the past meeting: list and filters,
search, SRT/WebVTT exports parsed and compared with the API, rename and notes,
delete. Every page is checked with axe-core, at phone width where it matters, for
keyboard focus and for console errors; screenshots land in artifacts/ui/.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from ui_helpers import (
    PHONE,
    axe_violations,
    no_horizontal_scroll,
    open_tab,
    screenshot,
    sign_in,
    tab_stops,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.model, pytest.mark.timeout(600)]

NATIVE = "abc-defg-hij"
MEETING_HASH = f"#/meetings/google_meet/{NATIVE}"
SRT_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)$")
VTT_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)$")


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_cues(text: str, kind: str) -> list[tuple[float, float, str]]:
    """(start, end, text) per cue of a SubRip or WebVTT file; asserts the layout on the way."""
    blocks = text.strip().split("\n\n")
    if kind == "vtt":
        assert blocks.pop(0) == "WEBVTT"
    cues = []
    for n, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        if kind == "srt":
            assert lines.pop(0) == str(n), block
        times = (SRT_TIME if kind == "srt" else VTT_TIME).match(lines[0])
        assert times, block
        g = times.groups()
        cues.append((_seconds(*g[:4]), _seconds(*g[4:]), " ".join(lines[1:])))
    return cues


async def download(page: Page, label: str) -> str:
    async with page.expect_download() as info:
        await page.get_by_role("button", name=f"Export as {label}").click()
    path = await (await info.value).path()
    return await asyncio.to_thread(Path(path).read_text, encoding="utf-8")


async def vexa_transcript(stack, token: str, *args: str) -> asyncio.subprocess.Process:
    """`vexa transcript` as a user runs it, against this stack's gateway."""
    env = {**os.environ, "VEXA_API_URL": stack.gateway_url, "VEXA_API_KEY": token}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vexa",
        "transcript",
        "google_meet",
        NATIVE,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def assert_accessible(page: Page) -> None:
    violations = await axe_violations(page)
    assert violations == [], "\n".join(violations)


async def test_invalid_key_is_refused_with_a_clear_message(browser, stack):
    tab = await open_tab(browser, stack.gateway_url)
    page = tab.page
    await page.goto("/")
    await page.wait_for_function("() => location.hash.startsWith('#/signin')")
    key = page.get_by_label("API key")
    await expect(key).to_be_focused()
    await assert_accessible(page)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_text("Enter your API key.")).to_be_visible()

    await key.fill("x" * 40)
    await key.press("Enter")  # keyboard only
    message = page.get_by_text("This API key is not valid or has been revoked")
    await expect(message).to_be_visible()
    assert await key.get_attribute("aria-invalid") == "true"
    described = await key.get_attribute("aria-describedby")
    assert (
        await page.locator(f"[id='{described.split()[-1]}']").text_content() == await message.text_content()
    )
    assert await page.evaluate("sessionStorage.getItem('vexa.apiKey')") is None
    await screenshot(page, "01-sign-in-invalid-key")

    # Every control is reachable with Tab, in a loop through the page, with a visible focus ring.
    stops = [s for s in await tab_stops(page, 9) if s["tag"] != "body"]
    names = {s["text"] for s in stops}
    assert {
        "Skip to content",
        "Vexa",
        "Admin",
        "Sign in",
        "API key",
        "sign in with the admin key",
    } <= names, stops
    assert all(s["outline"] and s["onScreen"] for s in stops), stops
    assert tab.unexpected_errors(403) == []
    await tab.close()


async def test_admin_creates_a_user_and_a_key_that_works(browser, stack, shared):
    tab = await open_tab(browser, stack.gateway_url)
    page = tab.page
    await page.goto("/ui/#/admin")
    admin_key = page.get_by_label("Admin API key")
    await admin_key.fill("wrong-admin-key")
    await admin_key.press("Enter")
    await expect(page.get_by_text("This admin key is not valid.")).to_be_visible()
    await admin_key.fill(stack.admin_token)
    await page.get_by_role("button", name="Sign in as admin").click()

    await page.get_by_label("Email").fill("ui-user@example.com")
    await page.get_by_label("Name (optional)").fill("Ui User")
    await page.get_by_label("Concurrent bots").fill("1")
    await page.get_by_role("button", name="Create user").click()
    await expect(page.get_by_role("cell", name="ui-user@example.com", exact=True)).to_be_visible()
    await expect(page.get_by_role("heading", name="API keys of ui-user@example.com")).to_be_visible()

    await page.get_by_role("button", name="Issue a new API key").click()
    secret = page.get_by_label("New API key")
    await expect(secret).to_be_focused()
    token = await secret.input_value()
    assert len(token) == 40
    await assert_accessible(page)
    await screenshot(page, "02-admin")

    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as api:
        works = await api.get("/meetings", headers={"X-API-Key": token})
        assert works.status_code == 200 and works.json() == {"meetings": []}

        # A second key, revoked from the page, stops working at once.
        await page.get_by_role("button", name="Issue a new API key").click()
        await expect(page.get_by_label("New API key")).not_to_have_value(token)
        second = await page.get_by_label("New API key").input_value()
        assert (await api.get("/meetings", headers={"X-API-Key": second})).status_code == 200
        await page.get_by_role("button", name=f"Revoke key {second[:6]}…").click()
        await expect(page.locator("tr", has_text=second[:6])).to_contain_text("revoked")
        assert (await api.get("/meetings", headers={"X-API-Key": second})).status_code == 403
        assert (await api.get("/meetings", headers={"X-API-Key": token})).status_code == 200

    assert tab.unexpected_errors(403) == []
    shared["token"] = token
    await tab.close()


async def _start_form_errors(browser, stack, token: str) -> None:
    """While the first bot runs: duplicate and limit errors, shown next to the field / on the form."""
    tab = await open_tab(browser, stack.gateway_url)
    page = tab.page
    await sign_in(tab, token, then="#/new")
    link = page.get_by_label("Meeting link")
    await link.fill(f"https://meet.google.com/{NATIVE}")
    await page.get_by_role("button", name="Send the bot").click()
    duplicate = page.get_by_text("An active bot already exists for google_meet/abc-defg-hij")
    await expect(duplicate).to_be_visible()
    assert await link.get_attribute("aria-invalid") == "true"

    await link.fill("https://meet.google.com/xyz-abcd-efg")
    await page.get_by_role("button", name="Send the bot").click()
    await expect(page.get_by_role("alert")).to_contain_text("maximum concurrent bot limit (1)")
    assert tab.unexpected_errors(409, 429) == []
    await tab.close()


async def test_start_a_bot_and_watch_the_meeting_live(browser, stack, simulator, shared):
    tab = await open_tab(browser, stack.gateway_url)
    page = tab.page
    await sign_in(tab, shared["token"], then="#/new")
    link = page.get_by_label("Meeting link")
    await expect(link).to_be_focused()

    # A Zoom link fills platform, number and passcode; a link from elsewhere is refused beside the field.
    await link.fill("https://us05web.zoom.us/j/85912345678?pwd=Ab1.x")
    await link.press("Tab")
    assert await page.get_by_label("Platform").input_value() == "zoom"
    assert await page.get_by_label("Meeting id").input_value() == "85912345678"
    assert await page.get_by_label("Passcode (optional)").input_value() == "Ab1.x"
    await link.fill("https://teams.live.com/meet/9312345678901?p=KxYz12")
    assert await page.get_by_label("Platform").input_value() == "teams"
    assert await page.get_by_label("Meeting id").input_value() == "9312345678901"
    assert await page.get_by_label("Passcode (optional)").input_value() == "KxYz12"
    await link.fill("https://example.com/meeting/42")
    await page.get_by_role("button", name="Send the bot").click()
    await expect(page.get_by_text("Not a Google Meet, Microsoft Teams or Zoom link.")).to_be_visible()
    assert await link.evaluate("el => document.activeElement === el")

    await link.fill(f"https://meet.google.com/{NATIVE}?authuser=0")
    await page.get_by_label("Bot name").fill("Vexa UI")
    await page.get_by_label("Language").select_option("en")
    await page.get_by_label("Custom vocabulary (optional)").fill("Vexa, budget\nhiring plan")
    await assert_accessible(page)
    await screenshot(page, "03-start-bot")
    await page.get_by_role("button", name="Send the bot").click()
    await page.wait_for_function("(h) => location.hash === h", arg=MEETING_HASH)

    # Record every status shown and whether a segment was ever shown as a draft.
    status = page.get_by_test_id("status")
    await expect(status).to_be_visible()
    await page.evaluate(
        """() => {
            window.__statuses = [document.querySelector("[data-testid=status]").dataset.status];
            window.__drafts = 0;
            new MutationObserver(() => {
                const s = document.querySelector("[data-testid=status]").dataset.status;
                if (window.__statuses.at(-1) !== s) window.__statuses.push(s);
                window.__drafts += document.querySelectorAll(".seg.draft").length;
            }).observe(document.querySelector("main"), {subtree: true, attributes: true, childList: true});
        }"""
    )
    await expect(status).to_have_attribute("data-status", "active", timeout=90_000)
    await expect(page.get_by_role("list", name="Status history")).to_contain_text("Waiting for admission")
    follower = await vexa_transcript(stack, shared["token"], "--follow", "--format", "srt")

    await _start_form_errors(browser, stack, shared["token"])

    transcript = page.get_by_role("log", name="Transcript")
    await expect(transcript.locator(".seg[data-speaker=Alice]").first).to_be_visible(timeout=120_000)
    await expect(transcript.locator(".seg[data-speaker=Bob]").first).to_be_visible(timeout=120_000)
    await assert_accessible(page)
    colours = await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll(".seg")].map(
            r => [r.dataset.speaker, r.querySelector(".speaker").style.color]))"""
    )
    assert colours["Alice"] != colours["Bob"]
    # Wait until Bob's last words are in (the simulated meeting goes on in silence afterwards).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "morning" not in (
        await transcript.locator(".seg[data-speaker=Bob]").last.text_content()
    ):
        await asyncio.sleep(1)
    await screenshot(page, "04-live-meeting")

    await page.get_by_role("button", name="Stop the bot").click()
    await expect(status).to_have_attribute("data-status", "completed", timeout=60_000)
    await expect(status).to_contain_text("stopped on request")
    await expect(page.get_by_role("button", name="Stop the bot")).to_be_hidden()
    # Drafts settle: every segment on the page ends up committed.
    await expect(transcript.locator(".seg.draft")).to_have_count(0, timeout=60_000)
    statuses = await page.evaluate("window.__statuses")
    assert statuses[-1] == "completed" and "active" in statuses and len(statuses) >= 3, statuses
    assert await page.evaluate("window.__drafts") > 0  # segments first appeared as drafts
    assert simulator.state(NATIVE)["bot_name"] == "Vexa UI"
    assert tab.unexpected_errors() == []
    shared["tab"] = tab

    # The terminal view followed the same meeting: every committed segment once, then it returned.
    out, err = await asyncio.wait_for(follower.communicate(), 90)
    assert follower.returncode == 0, err.decode()
    assert "[status] completed (stopped)" in err.decode()
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as api:
        final = await api.get(
            f"/transcripts/google_meet/{NATIVE}",
            params={"format": "srt", "source": "live"},
            headers={"X-API-Key": shared["token"]},
        )
    followed = parse_cues(out.decode(), "srt")
    assert [c[2] for c in followed] == [c[2] for c in parse_cues(final.text, "srt")]
    assert [c[0] for c in followed] == sorted(c[0] for c in followed)


async def test_meetings_list_filters_and_phone_width(browser, stack, shared):
    tab = await open_tab(browser, stack.gateway_url)
    page = tab.page
    await sign_in(tab, shared["token"])
    row = page.locator("tr", has_text=NATIVE)
    await expect(row).to_contain_text("Completed")
    await expect(row).to_contain_text("stopped on request")
    await expect(row).to_contain_text("Alice")
    await expect(page.get_by_role("table")).to_have_attribute("data-ready", "true")
    await assert_accessible(page)
    await screenshot(page, "05-meetings")

    await page.get_by_label("Status").select_option("failed")
    await page.wait_for_function("() => location.hash.includes('status=failed')")
    await expect(page.get_by_text("No meetings match these filters.")).to_be_visible()
    await page.get_by_label("Status").select_option("completed")
    await expect(page.locator("tr", has_text=NATIVE)).to_be_visible()
    await page.get_by_label("Platform").select_option("zoom")
    await expect(page.get_by_text("No meetings match these filters.")).to_be_visible()

    await page.set_viewport_size(PHONE)
    await page.goto("/ui/#/meetings")
    await expect(page.locator("tr", has_text=NATIVE)).to_be_visible()
    assert await no_horizontal_scroll(page)
    await assert_accessible(page)
    await screenshot(page, "06-meetings-phone")
    await page.goto(f"/ui/{MEETING_HASH}")
    await expect(page.get_by_role("log", name="Transcript")).to_be_visible()
    assert await no_horizontal_scroll(page)
    await screenshot(page, "07-meeting-phone")
    assert tab.unexpected_errors() == []
    await tab.close()


async def test_past_meeting_search_export_rename_delete(browser, stack, shared):
    tab = shared.pop("tab")
    page = tab.page
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"X-API-Key": shared["token"]}, timeout=30
    ) as api:  # the post-meeting transcript replaces the live one a little after the meeting
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            data = (await api.get(f"/transcripts/google_meet/{NATIVE}")).json()["data"]
            if (data.get("final_transcript") or {}).get("status") in ("completed", "failed"):
                break
            await asyncio.sleep(1)
        assert data["final_transcript"]["status"] == "completed", data
        segments = (await api.get(f"/transcripts/google_meet/{NATIVE}")).json()["segments"]
        bob_start = next(s["start"] for s in segments if s["speaker"] == "Bob")
    await page.reload()
    transcript = page.get_by_role("log", name="Transcript")
    await expect(transcript.locator(".seg").first).to_be_visible()
    await expect(page.get_by_role("button", name="Stop the bot")).to_be_hidden()
    await expect(page.get_by_test_id("final-state")).to_contain_text(
        "final transcript, made from the recording"
    )

    # The recording plays beside the transcript; a segment's time plays from there.
    await expect(page.get_by_role("region", name="Recording")).to_contain_text(
        "select a time", timeout=30_000
    )
    bob = transcript.locator(".seg[data-speaker=Bob]").first
    await bob.get_by_role("button").click()
    position = await page.evaluate("() => document.querySelector('audio').currentTime")
    assert bob_start > 1 and abs(position - bob_start) < 0.5, (position, bob_start)

    search = page.get_by_label("Search the transcript")
    await search.fill("budget")
    await expect(page.get_by_text(re.compile(r"^\d+ matching segments?$"))).to_be_visible()
    visible = transcript.locator(".seg:not([hidden])")
    assert await visible.count() >= 1
    for line in await visible.locator(".text").all_text_contents():
        assert "budget" in line.lower()
    await expect(visible.locator("mark").first).to_have_text(re.compile("budget", re.I))
    await search.fill("")

    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"X-API-Key": shared["token"]}, timeout=30
    ) as api:
        segments = (await api.get(f"/transcripts/google_meet/{NATIVE}")).json()["segments"]
        expected = [f"{s['speaker']}: {' '.join(s['text'].split())}" for s in segments if s["text"].strip()]
        assert len(expected) >= 2 and all(s["completed"] for s in segments)

        srt = parse_cues(await download(page, "SRT"), "srt")
        vtt = parse_cues(await download(page, "WebVTT"), "vtt")
        for cues in (srt, vtt):
            starts = [c[0] for c in cues]
            assert starts == sorted(starts) and all(end >= start for start, end, _ in cues)
        assert [c[2] for c in srt] == expected
        assert [re.sub(r"^<v ([^>]+)>", r"\1: ", c[2]) for c in vtt] == expected
        assert [(c[0], c[1]) for c in srt] == [(c[0], c[1]) for c in vtt]
        assert (await download(page, "TXT")).count("\n") == len(expected)
        assert "## Transcript" in await download(page, "Markdown")
        printed = await vexa_transcript(stack, shared["token"], "--format", "vtt")
        out, _ = await asyncio.wait_for(printed.communicate(), 60)
        assert printed.returncode == 0 and parse_cues(out.decode(), "vtt") == vtt
        assert '"segments"' in await download(page, "JSON")

        await page.get_by_label("Name", exact=True).fill("Quarterly review")
        await page.get_by_label("Notes", exact=True).fill("Send the hiring plan.")
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Quarterly review")
        meeting = (await api.get(f"/transcripts/google_meet/{NATIVE}")).json()
        assert meeting["data"]["name"] == "Quarterly review"
        assert meeting["data"]["notes"] == "Send the hiring plan."
        await assert_accessible(page)
        await screenshot(page, "08-past-meeting")

        await page.get_by_role("button", name="Delete this meeting").click()
        dialog = page.get_by_role("dialog", name="Delete this meeting?")
        await expect(dialog).to_be_visible()
        await assert_accessible(page)
        await dialog.get_by_role("button", name="Cancel").click()
        await expect(dialog).to_be_hidden()
        assert (await api.get(f"/transcripts/google_meet/{NATIVE}")).status_code == 200
        await page.get_by_role("button", name="Delete this meeting").click()
        await dialog.get_by_role("button", name="Delete").click()
        await page.wait_for_function("() => location.hash === '#/meetings'")
        await expect(page.get_by_text("Meeting deleted.")).to_be_visible()
        assert (await api.get(f"/transcripts/google_meet/{NATIVE}")).status_code == 404
    assert tab.unexpected_errors() == []
    await tab.close()


async def test_meetings_paging_and_live_badges(browser, stack, database_url):
    """30 meetings (every third one active): two pages, LIVE badges, the 'live' filter."""
    admin = {"X-Admin-API-Key": stack.admin_token}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as api:
        user = (await api.post("/admin/users", json={"email": "pager@example.com"}, headers=admin)).json()
        token = (await api.post(f"/admin/users/{user['id']}/tokens", headers=admin)).json()["token"]
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO meetings (user_id, platform, platform_specific_id, status, created_at) "
                    "VALUES (:u, 'zoom', :n, :s, now() - make_interval(mins => :i))"
                ),
                [
                    {
                        "u": user["id"],
                        "n": f"{850000000 + i}",
                        "s": "active" if i % 3 == 0 else "completed",
                        "i": i,
                    }
                    for i in range(30)
                ],
            )
    finally:
        await engine.dispose()

    tab = await open_tab(browser, stack.gateway_url)
    page = tab.page
    await sign_in(tab, token)
    await expect(page.get_by_text("Showing 1\u201325 of 30 meetings")).to_be_visible()
    await expect(page.locator("tbody tr")).to_have_count(25)
    await expect(page.locator("tbody tr").first).to_contain_text("850000000")  # newest first
    await expect(page.locator(".badge.live")).to_have_count(9)  # i = 0, 3, ..., 24
    await page.get_by_role("link", name="Next").click()
    await expect(page.get_by_text("Showing 26\u201330 of 30 meetings")).to_be_visible()
    await expect(page.locator("tbody tr")).to_have_count(5)
    await expect(page.get_by_text("Page 2 of 2")).to_be_visible()
    await page.get_by_role("link", name="Previous").click()
    await expect(page.get_by_text("Showing 1\u201325 of 30 meetings")).to_be_visible()

    await page.get_by_label("Status").select_option("live")
    await expect(page.get_by_text("Showing 1\u201310 of 10 meetings")).to_be_visible()
    assert await page.locator(".badge.live").count() == 10
    await assert_accessible(page)

    # The key is revoked while the tab is open: the next request sends the person back to sign in.
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as api:
        tokens = (await api.get(f"/admin/users/{user['id']}/tokens", headers=admin)).json()
        assert (await api.delete(f"/admin/tokens/{tokens[0]['id']}", headers=admin)).status_code == 204
    await page.get_by_label("Status").select_option("completed")
    await expect(page.get_by_role("alert")).to_contain_text("no longer valid")
    assert page.url.split("#")[1].startswith("/signin")
    assert await page.evaluate("sessionStorage.getItem('vexa.apiKey')") is None
    assert tab.unexpected_errors(403) == []
    await tab.close()
