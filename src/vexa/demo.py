"""`make demo`: the whole product on one machine, against a SIMULATED meeting.

Starts the stack (embedded PostgreSQL + Valkey unless configured), a simulated
Google Meet page on 127.0.0.1 where two synthetic participants speak, creates a
user and an API key through the public admin API, sends a bot with
``POST /bots``, prints the live transcript from ``WS /ws`` as it arrives, then
the final transcript from ``GET /transcripts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import webbrowser
from pathlib import Path

import httpx
import websockets

from vexa.embedded import free_port
from vexa.stack import Stack, StackSettings

NATIVE_ID = "abc-defg-hij"
SCRIPT = {
    "Alice": "Good morning everyone. Let us review the quarterly budget and the hiring plan.",
    "Bob": "Thanks Alice. The budget is on track and we will hire two engineers next month.",
}


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer")


async def _follow(gateway: str, api_key: str, timeout_s: float) -> None:
    ws_url = gateway.replace("http://", "ws://") + "/ws"
    async with websockets.connect(ws_url, additional_headers={"X-API-Key": api_key}) as ws:
        await ws.send(
            json.dumps(
                {"action": "subscribe", "meetings": [{"platform": "google_meet", "native_id": NATIVE_ID}]}
            )
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=deadline - time.monotonic())
            except TimeoutError:
                break
            event = json.loads(raw)
            kind = event.get("type")
            payload = event.get("payload") or {}
            if kind == "meeting.status":
                print(f"[status] {payload.get('status')} {payload.get('reason') or ''}", flush=True)
                if payload.get("status") in ("completed", "failed"):
                    return
            elif kind in ("transcript.mutable", "transcript.finalized"):
                tag = "final" if kind.endswith("finalized") else "live "
                for seg in payload.get("segments", []):
                    who = seg.get("speaker") or "?"
                    print(f"[{tag}] {seg.get('start', 0):6.1f}s {who:>6}: {seg.get('text')}", flush=True)
            elif kind == "error":
                print(f"[error] {event}", flush=True)


def open_dashboard(gateway: str, api_key: str) -> None:
    """Open the live meeting in the dashboard; the key is printed, never put in the URL."""
    url = f"{gateway}/ui/#/meetings/google_meet/{NATIVE_ID}"
    print(f"\nDashboard: {url}\nSign in there with the demo API key: {api_key}\n", flush=True)
    with contextlib.suppress(Exception):  # no browser on a server is fine: the URL is printed
        webbrowser.open(url)


def main() -> None:
    from vexa.testing.speech import synthesize

    work = Path(tempfile.mkdtemp(prefix="vexa-demo-"))
    wavs = []
    for i, (name, text) in enumerate(SCRIPT.items()):
        path = work / f"{name.lower()}.wav"
        synthesize(text, path, voice="en-us" if i == 0 else "en-gb")
        wavs.append(f"{name}={path}")

    sim_port = free_port()
    sim_cmd = [
        sys.executable,
        "-m",
        "vexa",
        "simulate-meeting",
        "--platform",
        "google_meet",
        "--port",
        str(sim_port),
        "--admit-after",
        "2",
        "--leave-after-audio",
        "6",
    ]
    for w in wavs:
        sim_cmd += ["--participant", w]
    print(f"SIMULATED meeting on http://127.0.0.1:{sim_port}/{NATIVE_ID}", flush=True)
    sim = subprocess.Popen(sim_cmd, stdin=subprocess.DEVNULL)
    stack = Stack(
        settings=StackSettings(),
        any_free_ports=True,  # a throwaway stack: never fail because a real one holds the ports
        extra_env={"MEETING_BASE_URL": f"http://127.0.0.1:{sim_port}", "BOT_LEAVE_WHEN_ALONE_S": "5"},
    )
    try:
        _wait_http(f"http://127.0.0.1:{sim_port}/_sim/state")
        stack.start()
        gw = stack.gateway_url
        admin = {"X-Admin-API-Key": stack.admin_token}
        with httpx.Client(base_url=gw, timeout=30) as client:
            user = client.post(
                "/admin/users", json={"email": "demo@example.com", "name": "Demo"}, headers=admin
            )
            user.raise_for_status()
            token = client.post(f"/admin/users/{user.json()['id']}/tokens", headers=admin)
            token.raise_for_status()
            api_key = token.json()["token"]
            headers = {"X-API-Key": api_key}
            client.delete(f"/bots/google_meet/{NATIVE_ID}", headers=headers)  # a leftover from an earlier run
            bot = client.post(
                "/bots",
                json={
                    "platform": "google_meet",
                    "native_meeting_id": NATIVE_ID,
                    "bot_name": "Vexa Demo",
                    "language": "en",
                },
                headers=headers,
            )
            print(f"POST /bots -> {bot.status_code} {bot.text[:200]}", flush=True)
            bot.raise_for_status()
            open_dashboard(gw, api_key)
            asyncio.run(_follow(gw, api_key, timeout_s=float(os.environ.get("DEMO_TIMEOUT_S", "240"))))
            final = client.get(f"/transcripts/google_meet/{NATIVE_ID}", headers=headers).json()
            print("\nFinal transcript:")
            for seg in final.get("segments", []):
                print(f"  {seg['start']:6.1f}s {seg.get('speaker') or '?':>6}: {seg['text']}")
            if sys.stdin.isatty():
                input("\nThe dashboard stays up until you press Enter. ")
    finally:
        stack.stop()
        sim.terminate()
        sim.wait(10)


if __name__ == "__main__":
    main()
