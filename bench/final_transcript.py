"""The post-meeting (final) transcript against the live one and the offline floor, on real speech.

Simulated meetings (``vexa.testing.simulator``) with three participants who speak every
real recording of Debian's pocketsphinx-testdata that has a reference (LibriVox read
speech, spoken card names, two short commands: 101 words, ``real_speech.all_clips``),
laid out anew each run by ``vexa.testing.real_speech.meeting`` (uneven pauses rotated,
a sentence that resumes mid-way, optional background noise), a real bot in Chromium,
and the whole stack (`vexa up`'s processes) on loopback. After each meeting the
collector's post-processor decodes each participant's recorded track again.
Printed per run and over all runs:

- live WER: the transcript made during the meeting (``?source=live``);
- final WER: the post-meeting transcript (served by default once ready);
- offline floor: faster-whisper with the final model (beam 5, VAD filter) on the very audio
  each participant played; the final/offline ratio (target: at most 1.1);
- recorded: the post-processor's own decoder on the track the bot recorded (tells capture
  differences from decoding differences when final and offline disagree);
- the post-processor's CPU seconds per minute of meeting (from ``data.final_transcript``).

    .venv/bin/python bench/final_transcript.py --model tiny.en --runs 3    # final: base (the default)
    .venv/bin/python bench/final_transcript.py --model base --runs 3
    .venv/bin/python bench/final_transcript.py --model tiny.en --final-model tiny.en --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from _stack import stores
from vexa.collector.settings import PostprocessSettings
from vexa.embedded import free_port
from vexa.recordings.audio import decode
from vexa.recordings.offline import OfflineOptions, transcribe_track
from vexa.stack import Stack, StackSettings
from vexa.testing.real_speech import round_table
from vexa.testing.simulator import SimConfig, SimParticipant, SimulatorServer
from vexa.testing.speech import write_wav
from vexa.transcription.models import resolve_model
from vexa.transcription.wer import normalize, wer

PORTS = ("GATEWAY", "ADMIN", "BOT_MANAGER", "COLLECTOR", "TRANSCRIPTION", "TRANSCRIPTION_HEALTH")
NAMES = ("Alice", "Bob", "Carol")


@dataclass
class Run:
    refs: dict[str, str]
    live: dict[str, str]
    final: dict[str, str]
    offline: dict[str, str]
    recorded: dict[str, str]
    cpu_s: float
    minutes: float
    final_model: str


def offline_floor(model: str, audio) -> str:
    """Plain faster-whisper on the whole audio (beam 5, VAD filter): the yardstick of the issue."""
    from faster_whisper import WhisperModel

    wm = WhisperModel(resolve_model(model), device="cpu", compute_type="default", cpu_threads=1)
    segments, _ = wm.transcribe(audio, language="en", beam_size=5, vad_filter=True)
    return " ".join(s.text.strip() for s in segments)


def texts(transcript: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    for seg in transcript["segments"]:
        out[seg["speaker"]] = (out.get(seg["speaker"], "") + " " + seg["text"]).strip()
    return out


async def one_meeting(stack: Stack, token: str, native: str, model: str) -> tuple[dict, dict, dict, dict]:
    """Live and final text per speaker, the meeting's data, and our decoder on each recorded track."""
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers={"X-API-Key": token}, timeout=60) as c:
        created = await c.post(
            "/bots", json={"platform": "google_meet", "native_meeting_id": native, "language": "en"}
        )
        created.raise_for_status()
        deadline = time.monotonic() + 900
        data: dict = {}
        while time.monotonic() < deadline:
            found = (await c.get(f"/transcripts/google_meet/{native}", params={"source": "live"})).json()
            data = found["data"]
            if found["status"] in ("completed", "failed") and (data.get("final_transcript") or {}).get(
                "status"
            ) in ("completed", "failed"):
                break
            await asyncio.sleep(2)
        live = texts((await c.get(f"/transcripts/google_meet/{native}", params={"source": "live"})).json())
        final = texts((await c.get(f"/transcripts/google_meet/{native}")).json())
        options = OfflineOptions(model=resolve_model(model), language="en")
        recorded: dict[str, str] = {}
        for rec in data.get("recordings", []):
            for media in rec["media_files"]:
                name = media["metadata"].get("participant")
                if name:
                    raw = await c.get(f"/recordings/{rec['id']}/media/{media['id']}/raw")
                    segments, _ = await asyncio.to_thread(transcribe_track, decode(raw.content), options)
                    recorded[name] = " ".join(s["text"] for s in segments)
        return live, final, data, recorded


def run_meetings(args: argparse.Namespace) -> list[Run]:
    final_model = args.final_model or PostprocessSettings(WHISPER_MODEL=args.model).offline_model  # type: ignore[call-arg]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="vexa-bench-final-") as tmp, stores() as (db_url, redis_url):
        folder = Path(tmp)
        sim_port = free_port()
        settings = StackSettings(
            DATABASE_URL=db_url,
            REDIS_URL=redis_url,
            ADMIN_API_TOKEN="bench-final-admin",
            **{f"{p}_PORT": str(free_port()) for p in PORTS},
        )  # type: ignore[arg-type]
        env = {
            "MEETING_BASE_URL": f"http://127.0.0.1:{sim_port}",
            "WHISPER_MODEL": args.model,
            "BOT_LEAVE_WHEN_ALONE_S": "2",
            "IMMUTABILITY_THRESHOLD": "2",
            "BACKGROUND_TASK_INTERVAL": "1",
            "LOG_LEVEL": "WARNING",
            **({"POSTPROCESS_MODEL": args.final_model} if args.final_model else {}),
        }
        stack = Stack(settings=settings, home=folder / "home", extra_env=env, any_free_ports=True).start()
        try:
            admin = {"X-Admin-API-Key": stack.admin_token}
            with httpx.Client(base_url=stack.gateway_url, headers=admin, timeout=30) as c:
                user = c.post("/admin/users", json={"email": "bench-final@example.com"}).json()
                token = c.post(f"/admin/users/{user['id']}/tokens").json()["token"]
            for r in range(args.first_run, args.first_run + args.runs):
                people = round_table(list(NAMES), run=r, snr_db=args.snr)
                wavs = {n: write_wav(folder / f"{n}-{r}.wav", m.audio) for n, m in people.items()}
                sim = SimulatorServer(
                    SimConfig(
                        participants=[SimParticipant(n, w) for n, w in wavs.items()],
                        admit_after=0.5,
                        leave_after_audio=3.0,
                    ),
                    sim_port,
                ).start()
                try:
                    native = f"fin-rn{chr(97 + r // 26)}{chr(97 + r % 26)}-ben"  # Meet ids are letters
                    live, final, data, recorded = asyncio.run(one_meeting(stack, token, native, final_model))
                finally:
                    sim.stop()
                state = data.get("final_transcript") or {}
                minutes = (
                    max(m["duration_seconds"] for x in data["recordings"] for m in x["media_files"]) / 60
                )
                runs.append(
                    Run(
                        refs={n: m.text for n, m in people.items()},
                        live=live,
                        final=final,
                        offline={n: offline_floor(final_model, m.audio) for n, m in people.items()},
                        recorded=recorded,
                        cpu_s=float(state.get("cpu_seconds") or 0.0),
                        minutes=minutes,
                        final_model=str(state.get("model")),
                    )
                )
                report_run(r, runs[-1], args.show)
        finally:
            stack.stop()
    return runs


def errors(ref: str, hyp: str) -> float:
    return wer(ref, hyp) * len(normalize(ref))


def overall(run: Run, which: str) -> tuple[float, int]:
    """(word errors, reference words) over every participant of the run."""
    got = getattr(run, which)
    return sum(errors(run.refs[n], got.get(n, "")) for n in run.refs), sum(
        len(normalize(r)) for r in run.refs.values()
    )


def ratio(a: float, b: float) -> float:
    return a / b if b else (1.0 if a == 0 else float("inf"))


def report_run(r: int, run: Run, show: bool) -> None:
    print(f"run {r}: live vs final ({run.final_model}), {run.minutes:.2f} meeting minutes", flush=True)
    print(f"  {'':8} {'live':>7} {'final':>7} {'offline':>8} {'recorded':>9} {'final/offline':>14}")
    for name in [*run.refs, "overall"]:
        if name == "overall":
            w = [e / n for e, n in (overall(run, k) for k in ("live", "final", "offline", "recorded"))]
        else:
            ref = run.refs[name]
            w = [wer(ref, getattr(run, k).get(name, "")) for k in ("live", "final", "offline", "recorded")]
        print(f"  {name:8} {w[0]:7.3f} {w[1]:7.3f} {w[2]:8.3f} {w[3]:9.3f} {ratio(w[1], w[2]):14.2f}")
    if show:
        for name, ref in run.refs.items():
            print(f"  {name} reference: {ref}")
            for k in ("live", "final", "offline", "recorded"):
                print(f"    {k:8} {getattr(run, k).get(name, '')}")
    print(
        f"  post-meeting CPU: {run.cpu_s:.1f} s = {run.cpu_s / run.minutes:.1f} s per meeting minute",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="base", help="the live model (WHISPER_MODEL)")
    parser.add_argument("--final-model", help="POSTPROCESS_MODEL (default: the collector's own choice)")
    parser.add_argument("--runs", type=int, default=3, help="meetings, each laid out anew")
    parser.add_argument("--first-run", type=int, default=0, help="layout of the first run (to add runs)")
    parser.add_argument("--snr", type=float, help="background noise this many dB below the speech")
    parser.add_argument("--show", action="store_true", help="print each transcript's text")
    args = parser.parse_args()
    runs = run_meetings(args)
    totals = {
        k: [sum(x) for x in zip(*(overall(r, k) for r in runs), strict=True)]
        for k in ("live", "final", "offline", "recorded")
    }
    w = {k: e / n for k, (e, n) in totals.items()}
    ratios = [ratio(*(overall(r, k)[0] for k in ("final", "offline"))) for r in runs]
    words = totals["live"][1]
    print(
        f"\nlive {args.model}, final {runs[0].final_model}, noise {args.snr or 'none'} dB SNR: "
        f"{len(runs)} runs, {words} reference words, 3 participants; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"WER over all runs: live {w['live']:.3f}  final {w['final']:.3f}  offline {w['offline']:.3f}  "
        f"recorded {w['recorded']:.3f}"
    )
    print(
        f"final/offline per run: {', '.join(f'{x:.2f}' for x in ratios)}; "
        f"mean {sum(ratios) / len(ratios):.2f}; pooled {ratio(w['final'], w['offline']):.2f} (target <= 1.1)"
    )
    print(f"final/live pooled: {ratio(w['final'], w['live']):.2f}")
    cpu, minutes = sum(r.cpu_s for r in runs), sum(r.minutes for r in runs)
    print(
        f"post-meeting transcription: {cpu / minutes:.1f} CPU s per meeting minute "
        f"({cpu:.0f} s / {minutes:.1f} min)"
    )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
