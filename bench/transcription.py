"""Streaming transcription on real speech, side by side with upstream WhisperLive, in one run.

Both servers get the same model folder, the same audio, the same pacing (real time,
100 ms frames) and the same client (``vexa.testing.streaming_eval``), one after the
other so they never share the CPU. The audio is real human speech arranged as a
meeting brings it (``vexa.testing.real_speech``: LibriVox read speech and spoken
card names from Debian's pocketsphinx-testdata, pauses of 0.2-3 s, a sentence that
resumes mid-way), in three scenarios:

- ``silence``: the stream ends in 3 s of silence, then END_OF_AUDIO;
- ``stop``: the client stops sending right after the last word and waits 4 s;
- ``noise``: like ``silence`` with background noise at 20 dB SNR.

Printed per system (each run a new layout, see ``scenario``): mean WER against the reference
text, the same for offline faster-whisper (beam 5, VAD filter) on the same audio and model,
utterance end -> committed and -> first shown latencies, last words committed after
the client stopped sending, words lost at segment boundaries, and CPU per stream
(the server process's CPU seconds per second of audio = share of one core). Then
our service alone: N concurrently speaking streams for rising N until the commit
latency or the real-time pace breaks, and the CPU of 50 open silent sessions.

    .venv/bin/python bench/transcription.py --model tiny.en --runs 3
    .venv/bin/python bench/transcription.py --model base --runs 2 --levels 1,2,3
    .venv/bin/python bench/transcription.py --model base --language auto --runs 3 --levels 1 --silent 0

``--language auto`` sends no language, so both servers detect it (a multilingual model): the
table then also counts the runs in which a server labelled this English speech another language.

The peer is installed on first use into .venv-peers/whisperlive (bench/peers/setup_whisperlive.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
from websockets.asyncio.client import connect

from vexa.embedded import free_port
from vexa.testing.processes import ServiceProcess
from vexa.testing.real_speech import Meeting, meeting
from vexa.testing.streaming_eval import StreamRun, boundary_deletions, stream_meeting
from vexa.transcription.models import resolve_model
from vexa.transcription.wer import wer

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("silence", "stop", "noise")
SPOKEN_LANGUAGE = "en"  # what real_speech's clips are in
KEEPS_UP_P95_S = 3.0  # streams keep up while every utterance commits and p95 stays within this


@dataclass
class Figures:
    wer: list[float] = field(default_factory=list)
    wer_offline: list[float] = field(default_factory=list)
    commit: list[float] = field(default_factory=list)
    shown: list[float] = field(default_factory=list)
    missing_commits: int = 0
    stop_commit: list[float] = field(default_factory=list)
    boundary_lost: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    languages: list[list[str]] = field(default_factory=list)  # per run: the languages it reported


PAUSES = [0.8, 2.0, 0.3, 1.2, 3.0, 0.5, 0.2, 1.5, 0.7, 2.5]
LEADS = [0.5, 0.3, 0.9, 0.6]


def scenario(name: str, layout: int = 0) -> Meeting:
    """The scenario's audio in layout ``layout``: the pauses rotated and the start shifted.

    Why layouts: tiny.en flips a word or two when an utterance's boundaries move by a tenth
    of a second, so one layout run again and again measures one draw; each run of the
    bench uses the next layout, and offline Whisper is scored on the same audio.
    """
    k = (layout * 3) % len(PAUSES)
    return meeting(
        snr_db=20.0 if name == "noise" else None,
        pauses=PAUSES[k:] + PAUSES[:k],
        lead_s=LEADS[layout % len(LEADS)],
    )


def offline(model: str, audio: np.ndarray, language: str | None) -> str:
    from faster_whisper import WhisperModel

    wm = WhisperModel(resolve_model(model), device="cpu", compute_type="int8", cpu_threads=1)
    segments, _ = wm.transcribe(audio, language=language, beam_size=5, vad_filter=True)
    return " ".join(s.text.strip() for s in segments)


class Server:
    """A WhisperLive-protocol server process and the process whose CPU it spends."""

    def __init__(self, name: str, url: str, pid: int, stop) -> None:  # type: ignore[no-untyped-def]
        self.name, self.url, self.pid, self._stop = name, url, pid, stop

    def cpu_s(self) -> float:
        proc = psutil.Process(self.pid)
        total = sum(proc.cpu_times()[:2])
        for child in proc.children(recursive=True):
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.Error:
                pass
        return total

    def stop(self) -> None:
        self._stop()


def start_ours(model: str, tmp: Path) -> Server:
    hport = free_port()
    svc = ServiceProcess(
        "transcription",
        free_port(),
        {
            "WHISPER_MODEL": model,
            "HEALTH_PORT": str(hport),
            "WL_MAX_CLIENTS": "128",
            "LOG_LEVEL": "WARNING",
            "WL_STANDALONE": "true",  # anonymous WhisperLive clients, as against the WhisperLive peer
        },
        health_url=f"http://127.0.0.1:{hport}/health",
        log_path=tmp / "vexa-transcription.log",
    )
    svc.start(timeout=120)
    assert svc.proc is not None
    return Server("vexa", f"ws://127.0.0.1:{svc.port}/ws", svc.proc.pid, svc.stop)


def start_whisperlive(model: str, tmp: Path) -> Server:
    python = (
        subprocess.run(
            ["bash", str(ROOT / "bench/peers/setup_whisperlive.sh")],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    port = free_port()
    log = open(tmp / "whisperlive.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            str(ROOT / python),
            str(ROOT / "bench/peers/whisperlive_server.py"),
            str(port),
            resolve_model(model),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    url = f"ws://127.0.0.1:{port}"
    asyncio.run(_wait_ws(url, proc))

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()

    return Server("whisperlive", url, proc.pid, stop)


async def _wait_ws(url: str, proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"WhisperLive exited with {proc.returncode}")
        try:
            async with connect(url, open_timeout=2):
                return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError("WhisperLive did not start listening within 120 s")


def config(server: Server, language: str | None) -> dict[str, object]:
    base: dict[str, object] = {"uid": str(uuid.uuid4()), "language": language, "task": "transcribe"}
    if server.name == "whisperlive":
        # What WhisperLive's own client sends by default.
        base |= {"model": "custom", "use_vad": True, "send_last_n_segments": 10, "no_speech_thresh": 0.45}
    return base


async def measure(server: Server, name: str, audio: Meeting, language: str | None, fig: Figures) -> None:
    cpu0 = server.cpu_s()
    stop = name == "stop"
    run: StreamRun = await stream_meeting(
        server.url, audio, config(server, language), stop_after_speech=stop, hold_s=4.0
    )
    sent_s = audio.utterances[-1][1] if stop else audio.seconds
    fig.cpu.append((server.cpu_s() - cpu0) / sent_s)  # CPU seconds per second of audio
    text = run.committed_text()
    fig.texts.append(text)
    # Ours labels every segment; WhisperLive announces the language it detected once.
    heard = {seg.get("language") for seg in run.final_segments() if seg.get("text", "").strip()}
    heard |= {msg.get("language") for msg in run.languages}
    fig.languages.append(sorted(lang for lang in heard if lang))
    fig.wer.append(wer(audio.text, text))
    commits = run.latencies(completed=True)
    fig.missing_commits += sum(1 for x in commits if x is None)
    fig.commit += [x for x in commits if x is not None]
    fig.shown += [x for x in run.latencies(completed=False) if x is not None]
    fig.boundary_lost.append(len(boundary_deletions(audio.text, run.committed_segments())))
    if name == "stop" and commits:
        last = commits[-1]
        fig.stop_commit.append(float("inf") if last is None else last)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def summary(fig: Figures) -> dict[str, float]:
    return {
        "wer": statistics.mean(fig.wer),
        "wer_offline": statistics.mean(fig.wer_offline) if fig.wer_offline else float("nan"),
        "commit_p50": pct(fig.commit, 0.5),
        "commit_p95": pct(fig.commit, 0.95),
        "shown_p50": pct(fig.shown, 0.5),
        "stop_commit": statistics.median(fig.stop_commit) if fig.stop_commit else float("nan"),
        "uncommitted": fig.missing_commits,
        "boundary_lost": sum(fig.boundary_lost),
        "cpu_per_stream": statistics.median(fig.cpu),
        "other_language_runs": sum(1 for heard in fig.languages if set(heard) - {SPOKEN_LANGUAGE}),
    }


async def concurrency(server: Server, levels: list[int], language: str | None) -> list[dict[str, object]]:
    """N concurrent speaking streams until an utterance is not committed or p95 exceeds KEEPS_UP_P95_S."""
    rows = []
    audio = scenario("silence")
    for n in levels:
        cpu0 = server.cpu_s()
        started = time.monotonic()
        runs = await asyncio.gather(
            *(stream_meeting(server.url, audio, config(server, language)) for _ in range(n))
        )
        wall = time.monotonic() - started
        commits = [x for r in runs for x in r.latencies(completed=True)]
        done = [x for x in commits if x is not None]
        row = {
            "streams": n,
            "commit_p50_s": round(pct(done, 0.5), 2),
            "commit_p95_s": round(pct(done, 0.95), 2),
            "uncommitted": len(commits) - len(done),
            "wer_median": round(statistics.median(wer(audio.text, r.committed_text()) for r in runs), 3),
            "cpu_cores": round((server.cpu_s() - cpu0) / wall, 2),
        }
        row["keeps_up"] = bool(row["uncommitted"] == 0 and row["commit_p95_s"] <= KEEPS_UP_P95_S)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if not row["keeps_up"]:
            break
    return rows


async def silent_sessions(server: Server, n: int, seconds: float) -> float:
    """Share of one core that ``n`` open sessions sending digital silence cost together."""
    frame = np.zeros(1600, dtype="<f4").tobytes()

    async def one() -> None:
        async with connect(server.url, open_timeout=30, ping_interval=None) as ws:
            await ws.send(json.dumps({"uid": str(uuid.uuid4()), "language": "en"}))
            await ws.recv()
            start = time.monotonic()
            for i in range(int(seconds * 10)):
                await ws.send(frame)
                delay = start + (i + 1) * 0.1 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await ws.send(b"END_OF_AUDIO")

    cpu0, t0 = server.cpu_s(), time.monotonic()
    await asyncio.gather(*(one() for _ in range(n)))
    return (server.cpu_s() - cpu0) / (time.monotonic() - t0)


def ratio(a: float, b: float) -> str:
    if not (b and np.isfinite(a) and np.isfinite(b)):
        return "-"
    return f"{a / b:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--levels", default="1,2,4,6,8")
    parser.add_argument("--silent", type=int, default=50)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument(
        "--language", default=SPOKEN_LANGUAGE, help="sent in each session's config; 'auto': none, detect it"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    language = None if args.language == "auto" else args.language
    names = [s for s in args.scenarios.split(",") if s]
    print(
        f"model {args.model}; language {args.language}; {os.cpu_count()} CPUs; runs {args.runs}; "
        f"scenarios {names}",
        flush=True,
    )
    audios = {(name, r): scenario(name, r) for name in names for r in range(max(1, args.runs))}
    offline_wer = {key: wer(a.text, offline(args.model, a.audio, language)) for key, a in audios.items()}
    shown = {f"{name}/{r}": round(v, 3) for (name, r), v in offline_wer.items()}
    print("offline faster-whisper WER:", shown, flush=True)
    with tempfile.TemporaryDirectory(prefix="vexa-bench-") as d:
        tmp = Path(d)
        servers = [start_ours(args.model, tmp)]
        if not args.no_peer and args.runs:
            servers.append(start_whisperlive(args.model, tmp))
        try:
            if args.runs:
                side_by_side(servers, names, audios, offline_wer, language, args.runs)
            print("\nconcurrent speaking streams (ours):", flush=True)
            asyncio.run(concurrency(servers[0], [int(x) for x in args.levels.split(",")], language))
            if args.silent:
                share = asyncio.run(silent_sessions(servers[0], args.silent, 20.0))
                print(f"{args.silent} open silent sessions: {share * 100:.1f}% of one core together")
        finally:
            for s in servers:
                s.stop()


def side_by_side(
    servers: list[Server],
    names: list[str],
    audios: dict[tuple[str, int], Meeting],
    offline_wer: dict[tuple[str, int], float],
    language: str | None,
    runs: int,
) -> None:
    """Each scenario on each server in turn (never at once), one layout per run; then the table."""
    figs = {s.name: Figures() for s in servers}
    for r in range(runs):
        for name in names:
            for server in servers:
                asyncio.run(measure(server, name, audios[name, r], language, figs[server.name]))
                figs[server.name].wer_offline.append(offline_wer[name, r])
                print(
                    f"run {r + 1} {name:8s} {server.name:12s} WER {figs[server.name].wer[-1]:.3f} "
                    f"cpu {figs[server.name].cpu[-1]:.2f} languages {figs[server.name].languages[-1]}",
                    flush=True,
                )
    print_table({name: summary(fig) for name, fig in figs.items()})
    print("\nour committed text (last run):", figs["vexa"].texts[-1])
    if "whisperlive" in figs:
        print("whisperlive committed text (last run):", figs["whisperlive"].texts[-1])


def print_table(table: dict[str, dict[str, float]]) -> None:
    ours = table["vexa"]
    peer = table.get("whisperlive")
    rows = [
        ("WER vs reference (mean over runs)", "wer", "{:.3f}"),
        ("offline faster-whisper WER, same audio", "wer_offline", "{:.3f}"),
        ("utterance end -> committed, p50 s", "commit_p50", "{:.2f}"),
        ("utterance end -> committed, p95 s", "commit_p95", "{:.2f}"),
        ("utterance end -> first shown, p50 s", "shown_p50", "{:.2f}"),
        ("client stops sending -> last words committed, s", "stop_commit", "{:.2f}"),
        ("utterances never committed", "uncommitted", "{:.0f}"),
        ("words lost at segment boundaries (all runs)", "boundary_lost", "{:.0f}"),
        ("CPU per stream, share of one core", "cpu_per_stream", "{:.2f}"),
        (f"runs labelled other than '{SPOKEN_LANGUAGE}'", "other_language_runs", "{:.0f}"),
    ]
    print("\n| figure | vexa | WhisperLive 0.10.0 | vexa / WhisperLive |")
    print("|---|---|---|---|")
    for label, key, fmt in rows:
        a = ours[key]
        b = peer[key] if peer else float("nan")
        theirs, r = (fmt.format(b), ratio(a, b)) if peer else ("-", "-")
        print(f"| {label} | {fmt.format(a)} | {theirs} | {r} |")
    print(f"\nvexa WER / offline WER: {ratio(ours['wer'], ours['wer_offline'])}")


if __name__ == "__main__":
    sys.exit(main())
