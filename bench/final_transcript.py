"""The post-meeting (final) transcript against the live one and the offline floor, on real speech.

One simulated meeting (``vexa.testing.simulator``) with two participants who speak real
read speech (LibriVox clips from Debian's pocketsphinx-testdata, arranged with uneven
pauses and a sentence that resumes mid-way by ``vexa.testing.real_speech.meeting``),
a real bot in Chromium, and the whole stack (`vexa up`'s processes) on loopback.
After the meeting the collector's post-processor decodes each participant's recorded
track again. Printed, per participant and overall:

- live WER: the transcript made during the meeting (``?source=live``);
- final WER: the post-meeting transcript (served by default once ready);
- offline floor: faster-whisper (beam 5, VAD filter) on the very audio that participant played;
- the final/offline ratio (target: at most 1.1);
- the post-processor's CPU seconds per minute of meeting (from ``data.final_transcript``).

    .venv/bin/python bench/final_transcript.py --model base
    .venv/bin/python bench/final_transcript.py --model tiny.en
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import httpx

from _stack import stores
from vexa.embedded import free_port
from vexa.stack import Stack, StackSettings
from vexa.testing.real_speech import librivox, meeting
from vexa.testing.simulator import SimConfig, SimParticipant, SimulatorServer
from vexa.testing.speech import write_wav
from vexa.transcription.models import resolve_model
from vexa.transcription.wer import wer

NATIVE = "fin-albe-nch"
PORTS = ("GATEWAY", "ADMIN", "BOT_MANAGER", "COLLECTOR", "TRANSCRIPTION", "TRANSCRIPTION_HEALTH")


def offline(model: str, path: Path) -> str:
    from faster_whisper import WhisperModel

    from vexa.testing.speech import read_wav

    audio, _ = read_wav(path)
    wm = WhisperModel(resolve_model(model), device="cpu", compute_type="default", cpu_threads=1)
    segments, _ = wm.transcribe(audio, language="en", beam_size=5, vad_filter=True)
    return " ".join(s.text.strip() for s in segments)


def texts(transcript: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    for seg in transcript["segments"]:
        out[seg["speaker"]] = (out.get(seg["speaker"], "") + " " + seg["text"]).strip()
    return out


async def one_meeting(stack: Stack, token: str) -> tuple[dict[str, str], dict[str, str], dict]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers={"X-API-Key": token}, timeout=60) as c:
        created = await c.post(
            "/bots", json={"platform": "google_meet", "native_meeting_id": NATIVE, "language": "en"}
        )
        created.raise_for_status()
        deadline = time.monotonic() + 900
        data: dict = {}
        while time.monotonic() < deadline:
            found = (await c.get(f"/transcripts/google_meet/{NATIVE}", params={"source": "live"})).json()
            data = found["data"]
            if found["status"] in ("completed", "failed") and (data.get("final_transcript") or {}).get(
                "status"
            ) in ("completed", "failed"):
                break
            await asyncio.sleep(2)
        live = texts((await c.get(f"/transcripts/google_meet/{NATIVE}", params={"source": "live"})).json())
        final = texts((await c.get(f"/transcripts/google_meet/{NATIVE}")).json())
        return live, final, data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="base", help="live and post-meeting model (WHISPER_MODEL)")
    parser.add_argument("--show", action="store_true", help="print each transcript's text")
    args = parser.parse_args()
    clips = librivox()
    people = {
        "Alice": meeting(clips=[clips[0], clips[2], clips[4]], trailing_silence_s=1.0, seed=3),
        "Bob": meeting(clips=[clips[1], clips[3]], resume_mid_sentence=False, trailing_silence_s=1.0, seed=5),
    }
    with tempfile.TemporaryDirectory(prefix="vexa-bench-final-") as tmp, stores() as (db_url, redis_url):
        folder = Path(tmp)
        wavs = {name: write_wav(folder / f"{name}.wav", m.audio) for name, m in people.items()}
        sim = SimulatorServer(
            SimConfig(
                participants=[SimParticipant(n, w) for n, w in wavs.items()],
                admit_after=0.5,
                leave_after_audio=3.0,
            ),
            free_port(),
        ).start()
        settings = StackSettings(
            DATABASE_URL=db_url,
            REDIS_URL=redis_url,
            ADMIN_API_TOKEN="bench-final-admin",
            **{f"{p}_PORT": str(free_port()) for p in PORTS},
        )  # type: ignore[arg-type]
        env = {
            "MEETING_BASE_URL": sim.base_url,
            "WHISPER_MODEL": args.model,
            "BOT_LEAVE_WHEN_ALONE_S": "2",
            "IMMUTABILITY_THRESHOLD": "2",
            "BACKGROUND_TASK_INTERVAL": "1",
            "LOG_LEVEL": "WARNING",
        }
        stack = Stack(settings=settings, home=folder / "home", extra_env=env, any_free_ports=True).start()
        try:
            admin = {"X-Admin-API-Key": stack.admin_token}
            with httpx.Client(base_url=stack.gateway_url, headers=admin, timeout=30) as c:
                user = c.post("/admin/users", json={"email": "bench-final@example.com"}).json()
                token = c.post(f"/admin/users/{user['id']}/tokens").json()["token"]
            live, final, data = asyncio.run(one_meeting(stack, token))
        finally:
            stack.stop()
            sim.stop()
        floor = {name: offline(args.model, wav) for name, wav in wavs.items()}

    refs = {name: m.text for name, m in people.items()}
    print(
        f"model {args.model}; real speech, {sum(len(r.split()) for r in refs.values())} words, 2 participants"
    )
    print(f"{'':8} {'live WER':>9} {'final WER':>10} {'offline':>8} {'final/offline':>14}")
    for name in [*people, "overall"]:
        if name == "overall":
            ref = " ".join(refs.values())
            row = [" ".join(d.get(n, "") for n in people) for d in (live, final, floor)]
        else:
            ref, row = refs[name], [live.get(name, ""), final.get(name, ""), floor[name]]
        w = [wer(ref, t) for t in row]
        ratio = w[1] / w[2] if w[2] else (1.0 if w[1] == 0 else float("inf"))
        print(f"{name:8} {w[0]:9.3f} {w[1]:10.3f} {w[2]:8.3f} {ratio:14.2f}")
    if args.show:
        for name in people:
            print(f"{name} reference: {refs[name]}")
            for label, got in (("live", live), ("final", final), ("offline", floor)):
                print(f"  {label:8} {got.get(name, '')}")
    state = data.get("final_transcript") or {}
    minutes = max(m["duration_seconds"] for r in data.get("recordings", []) for m in r["media_files"]) / 60
    cpu = state.get("cpu_seconds") or 0.0
    print(
        f"post-meeting transcription ({state.get('status')}): {cpu} CPU s for {minutes:.2f} meeting minutes "
        f"({state.get('audio_seconds')} s of tracks) = {cpu / minutes:.1f} CPU s per meeting minute"
    )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
