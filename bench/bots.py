"""How many concurrent meeting bots does this machine sustain? (SIMULATED meetings)

For N = 1, 2, ... it starts N real bot processes (`python -m vexa bot`, each with
its own headless Chromium) against one SIMULATED meeting server (a meeting per
bot, two participants speaking in turn), samples every bot's CPU % and memory
*including its Chromium children* once a second, and checks the audio:

- real-time: per session, samples received / (16 kHz x session wall time) — a bot
  that cannot keep up delivers less audio than time passed (dropouts);
- fidelity: correlation of each participant's voice with their WAV, whole and per 2 s window (a
  window that does not match marks lost or garbled audio), in the way the page hands audio over:
  ``--platform google_meet`` (default) gives a stream per participant, ``teams``/``zoom`` one
  mixed stream in which each voice is looked for (bench/_bots_capture.py);
- continuity: where each voice's offset moves, per 0.25 s piece ("offset_steps": + a gap was put
  in, - samples were lost; "samples_lost" above 0 fails the round). A bot whose audio
  cannot be compared at all is reported as a CAPTURE CHECK failure, and one bot alone failing
  stops the bench with a non-zero exit: a broken bench must not print a "ceiling".

Audio goes to the real transcription service (`vexa serve transcription`) when
``--transcription real`` (or ``auto`` and `vexa.transcription.main` imports);
the audio checks then need the recording STAND-IN, so by default
(``--transcription standin``) a recording stand-in receives the audio.

    .venv/bin/python bench/bots.py --max-bots 10 --keep-going        # the concurrency walk
    .venv/bin/python bench/bots.py --flags                            # each Chromium flag alone
    .venv/bin/python bench/bots.py --compare /path/to/old/src --repeat 3  # old bot vs this one
    .venv/bin/python bench/bots.py --env BOT_AUDIO_SOCKET=false --repeat 3  # defaults vs a setting

Memory is reported as PSS (shared pages split between the processes that map them, so it falls
as more bots share a machine), USS (pages only this bot maps) and, for bot 0, "alone": the
distinct physical pages of its process tree (bench/_tree_memory.py), the PSS it would have with
nothing else on the machine, which does not swing with other work the way PSS does. Per process
kind (python, Chromium's browser/renderer/utility/gpu/zygote where they run apart, and node:
Playwright's driver, in trees before 2026-12-06 for ``--compare``), bot 0's PSS at its peak and
CPU are printed too, and per thread while it is in the meeting (CPU and wake-ups a second,
``bot0_threads_in_meeting``, bench/_threads.py: whose work the CPU is, the page's playback or
the bot's capture); bot 0's delivered audio is saved beside the logs. CPU is printed for the
whole run (``cpu_pct``) and while the bot is in the meeting (``cpu_pct_in_meeting``: from its
"active" status to its last), the cost per hour of meeting.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
import time
import wave
from pathlib import Path

import numpy as np
import psutil

from _bots_capture import check_bots
from _threads import ThreadWindow, process_kind
from _tree_memory import tree_alone_mib
from vexa.embedded import free_port
from vexa.testing.simulator import SimConfig, SimParticipant, SimulatorServer
from vexa.testing.simulator_standins import CallbackRecorder, RecordingTranscriptionServer
from vexa.testing.speech import read_wav, resample, synthesize, write_wav

ALICE = (
    "Good morning everyone. Let us start with the budget review. Spending in the third quarter "
    "was slightly above the plan, mostly because of the new servers."
)
BOB = (
    "Thanks. On the roadmap side we shipped the export feature and the mobile client. "
    "Next month we focus on reliability and on the onboarding flow."
)


SPEEDS = (150, 162, 140, 172, 132, 156, 145, 168)
"""espeak words a minute of each repetition in a participant's WAV, in turn."""


def make_wav(text: str, voice: str, seconds: float, path: Path) -> Path:
    """Repeat espeak speech (with short pauses) to about ``seconds`` long, each repetition at the
    next of ``SPEEDS`` (none alike in the first ~80 s).

    Why not the same clip again: a WAV that repeats itself has as many good alignments as
    repetitions, and when one gap in the delivered audio splits the best one, the whole-file
    alignment the per-window check starts from can land a repetition away, failing every window
    after it (13 of 20 for one 10 ms gap) where one window broke.
    """
    parts: list[np.ndarray] = []
    total, rate = 0.0, 16000
    while total < seconds or not parts:
        speed = SPEEDS[(len(parts) // 2) % len(SPEEDS)]
        data, rate = read_wav(synthesize(text, voice=voice, speed=speed))
        parts += [data, np.zeros(int(0.4 * rate), np.float32)]
        total += len(data) / rate + 0.4
    out = np.concatenate(parts)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(out, -1, 1) * 32767).astype("<i2").tobytes())
    return path


_KNOWN: dict[int, psutil.Process] = {}


def tree_usage(proc: psutil.Process) -> tuple[float, int, int]:
    """CPU % (summed over the tree since the previous call), PSS and USS bytes of a process tree.

    PSS, not RSS: Chromium's processes share most of their pages, and summing RSS
    would count them once per process. PSS also splits pages shared with OTHER bots (and with
    any other Chromium or node on the machine), so it falls as more run; USS (pages only this
    bot's processes map) is what each further bot adds, whatever else runs.
    """
    cpu, mem, uss = 0.0, 0, 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, 0, 0
    for p in procs:
        p = _KNOWN.setdefault(p.pid, p)  # cpu_percent needs the same object between calls
        try:
            cpu += p.cpu_percent(None)
            info = p.memory_full_info()
            mem += info.pss
            uss += info.uss
        except psutil.Error:
            continue
    return cpu, mem, uss


def tree_of(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_breakdown(proc: psutil.Process) -> dict[str, float]:
    """PSS MiB of a bot's tree by process kind (python, node for an old tree's driver, Chromium --type)."""
    out: dict[str, float] = {}
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    for p in procs:
        try:
            cmd = p.cmdline()
            pss = p.memory_full_info().pss / 2**20
        except psutil.Error:
            continue
        out[process_kind(cmd)] = round(out.get(process_kind(cmd), 0.0) + pss, 1)
    return out


_CPU_BY_KIND: dict[str, float] = {}


def tree_cpu_by_kind(proc: psutil.Process) -> None:
    """Accumulate CPU seconds by process kind (read at the end of a round)."""
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            times = p.cpu_times()
            _CPU_BY_KIND[f"{p.pid}:{process_kind(p.cmdline())}"] = times.user + times.system
        except psutil.Error:
            continue


PATHS = {"google_meet": "/{}", "zoom": "/j/{}", "teams": "/meet/{}"}


def native_id(platform: str, i: int) -> str:
    """Bot ``i``'s meeting id, in the form the platform's (simulated) links take."""
    if platform != "google_meet":
        return f"{100000000 + i:d}" if platform == "zoom" else f"{1000000000000 + i:d}"
    letters = "".join("abcdefghijklmnopqrstuvwxyz"[(i // 26**k) % 26] for k in range(4))
    return f"bch-{letters}-sim"


async def run_round(
    n: int,
    wavs: dict[str, Path],
    transcription_url: str | None,
    log_dir: Path,
    bot_env: dict[str, str] | None = None,
    platform: str = "google_meet",
) -> dict:
    sim_config = SimConfig(
        [SimParticipant(k, v) for k, v in wavs.items()], admit_after=1.0, leave_after_audio=2.0
    )
    sim = SimulatorServer(sim_config, free_port()).start()
    standin = None
    if transcription_url is None:
        standin = await RecordingTranscriptionServer(free_port()).start()
        transcription_url = standin.url
    callbacks = CallbackRecorder(free_port(), token="bench").start()
    procs: list[tuple[asyncio.subprocess.Process, psutil.Process]] = []
    # Per bot, once a second: (CPU %, PSS, USS, in the meeting?) -- "in the meeting" from its "active"
    # status to its last one: the steady state a long meeting is made of, without start-up.
    samples: dict[int, list[tuple[float, int, int, bool]]] = {i: [] for i in range(n)}
    peak_breakdown: dict[str, float] = {}
    alone_peak: float | None = None
    threads = ThreadWindow()  # bot 0's threads while it is in the meeting
    natives = [native_id(platform, i) for i in range(n)]
    t0 = time.time()
    try:
        for i, native in enumerate(natives):
            config = {
                "meeting_id": i + 1,
                "platform": platform,
                "native_meeting_id": native,
                "meeting_url": sim.base_url + PATHS[platform].format(native),
                "bot_name": f"Bench Bot {i + 1}",
                "language": "en",
                "transcription_url": transcription_url,
                "callback_url": callbacks.url,
                "leave_when_alone_s": 60,
                "max_duration_s": 600,
                "admission_timeout_s": 120,
                # For ``--compare`` with trees from before BOT_TOKEN (2026-11-28, the issue's
                # baseline among them), whose bot read both tokens from here; today's ignores them.
                "token": "bench",
                "callback_token": "bench",
            }
            env = {
                **os.environ,
                **(bot_env or {}),
                "BOT_CONFIG": json.dumps(config),
                "BOT_TOKEN": "bench",
                "LOG_LEVEL": "INFO",
            }
            log = (log_dir / f"bot-{n}-{i}.log").open("wb")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "vexa", "bot", env=env, stdout=log, stderr=log
            )
            procs.append((proc, psutil.Process(proc.pid)))

        def in_meeting(i: int) -> bool:
            said = [c["status"] for c in list(callbacks.calls) if c.get("meeting_id") == i + 1]
            return "active" in said and said[-1] == "active"

        def sample() -> None:
            nonlocal peak_breakdown, alone_peak
            for i, (_, ps) in enumerate(procs):
                cpu, pss, uss = tree_usage(ps)
                if pss:
                    samples[i].append((cpu, pss, uss, in_meeting(i)))
                    if i == 0 and pss >= max(r for _, r, _, _ in samples[0]):
                        peak_breakdown = tree_breakdown(ps)
                    if i == 0:
                        tree_cpu_by_kind(ps)
                    if i == 0 and in_meeting(0):
                        threads.add(tree_of(ps))
                    if i == 0 and len(samples[0]) % 3 == 0:
                        alone = tree_alone_mib(tree_of(ps))
                        if alone is not None:
                            alone_peak = max(alone_peak or 0.0, alone)

        while any(p.returncode is None for p, _ in procs):
            await asyncio.sleep(1.0)
            # Reading every process's smaps (and bot 0's pagemap) takes a while with many bots: off
            # the event loop, where the transcription stand-in must keep answering the bots (a
            # stalled loop timed out their handshakes at 6 bots).
            await asyncio.to_thread(sample)
            if time.time() - t0 > 300:
                for p, _ in procs:
                    if p.returncode is None:
                        p.terminate()
        await asyncio.gather(*(p.wait() for p, _ in procs))
    finally:
        callbacks.stop()
        sim.stop()
        if standin is not None:
            await standin.stop()
    wall = time.time() - t0
    cpu_by_kind: dict[str, float] = {}
    for key, seconds in _CPU_BY_KIND.items():
        kind = key.split(":", 1)[1]
        cpu_by_kind[kind] = round(cpu_by_kind.get(kind, 0.0) + seconds / wall * 100, 1)
    _CPU_BY_KIND.clear()
    reasons = [c.get("reason") for c in callbacks.calls if c["status"] in ("completed", "failed")]
    # Skip the first 2 samples (browser start-up) for the steady-state CPU figure.
    cpu = [np.mean([c for c, _, _, _ in s[2:]] or [0.0]) for s in samples.values()]
    # In the meeting: the CPU a bot costs per hour of meeting; before it, start-up, once per meeting
    # (CPU-seconds: each sample is a 1 s average).
    cpu_meeting = [np.mean([c for c, _, _, m in s if m] or [0.0]) for s in samples.values()]
    startup_s = [
        sum(c for c, _, _, m in s[: next((k for k, x in enumerate(s) if x[3]), 0)]) / 100
        for s in samples.values()
    ]
    pss = [max((r for _, r, _, _ in s), default=0) / 2**20 for s in samples.values()]
    uss = [max((u for _, _, u, _ in s), default=0) / 2**20 for s in samples.values()]
    result = {
        "bots": n,
        "wall_s": round(wall, 1),
        "completed_meeting_ended": sum(r == "meeting_ended" for r in reasons),
        "cpu_pct_per_bot_avg": round(float(np.mean(cpu)), 1),
        "cpu_pct_in_meeting_per_bot_avg": round(float(np.mean(cpu_meeting)), 1),
        "startup_cpu_s_per_bot_avg": round(float(np.mean(startup_s)), 2),
        "cpu_pct_total": round(float(np.sum(cpu)), 1),
        "pss_mib_per_bot_peak": round(float(np.max(pss)), 1),
        "uss_mib_per_bot_peak": round(float(np.max(uss)), 1),
        "machine_cpu_count": psutil.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "bot0_mib_alone_peak": round(alone_peak, 1) if alone_peak is not None else None,
        "bot0_pss_mib_by_process": peak_breakdown,
        "bot0_cpu_pct_by_process": cpu_by_kind,
    }
    if threads.seconds:
        result["bot0_in_meeting_s"] = round(threads.seconds, 1)
        result["bot0_threads_in_meeting"] = threads.usage()
    result["audio_path"] = sim_config.audio_mode(platform)
    if standin is not None:
        refs = {}
        for name, path in wavs.items():
            data, rate = read_wav(path)
            refs[name] = resample(data, rate)
        check = check_bots(standin.sessions, natives, refs, mixed=result["audio_path"] == "mixed")
        for k, session in enumerate(s for s in standin.sessions if s.config.get("meeting_id") == natives[0]):
            # What bot 0 delivered, to listen to or compare when a window does not match.
            write_wav(log_dir / f"bot0-{n}-{session.speaker or 'mixed'}-{k}.wav", session.audio())
        result.update(check.figures())
        result["sustained"] = result["completed_meeting_ended"] == n and check.ok
        for problem in check.problems:
            print(f"# CAPTURE CHECK FAILED ({n} bots): {problem}", file=sys.stderr, flush=True)
    else:
        result["sustained"] = result["completed_meeting_ended"] == n
    return result


# Each candidate flag, tried alone on top of the capture flags (BOT_CHROMIUM_LEAN=false).
FLAG_CANDIDATES = [
    ["--renderer-process-limit=1"],
    ["--single-process"],
    ["--no-zygote"],
    ["--in-process-gpu"],
    ["--disable-extensions", "--disable-component-extensions-with-background-pages"],
    ["--disable-background-networking", "--disable-component-update", "--disable-sync"],
    ["--disable-features=AudioServiceOutOfProcess"],
    ["--disable-site-isolation-trials", "--disable-features=site-per-process,IsolateOrigins"],
    ["--js-flags=--max-old-space-size=64"],
    ["--js-flags=--lite-mode"],
    ["--blink-settings=imagesEnabled=false"],
    ["--mute-audio"],
    ["--disable-software-rasterizer"],
]


async def compare(
    variants: list[tuple[str, dict[str, str]]],
    wavs: dict[str, Path],
    url: str | None,
    out: Path,
    repeat: int,
    platform: str,
) -> None:
    """One bot per run, the variants interleaved ``repeat`` times (so load drift hits all alike);
    then each variant's median PSS and CPU and their ratio to the first variant's."""
    runs: dict[str, list[dict]] = {label: [] for label, _ in variants}
    for _ in range(repeat):
        for label, env in variants:
            r = await run_round(1, wavs, url, out, env, platform)
            runs[label].append(r)
            print(
                json.dumps(
                    {
                        "variant": label,
                        "pss_mib": r["pss_mib_per_bot_peak"],
                        "uss_mib": r["uss_mib_per_bot_peak"],
                        "alone_mib": r["bot0_mib_alone_peak"],
                        "cpu_pct": r["cpu_pct_per_bot_avg"],
                        "cpu_pct_in_meeting": r["cpu_pct_in_meeting_per_bot_avg"],
                        "startup_cpu_s": r["startup_cpu_s_per_bot_avg"],
                        "capture_ok": r["sustained"],
                        "window_correlation_min": r.get("window_correlation_min"),
                        "windows_2s_matching": r.get("windows_2s_matching"),
                        "realtime_ratio_min": r.get("realtime_ratio_min"),
                        "low_windows": r.get("low_windows"),
                        "offset_steps": r.get("offset_steps"),
                        "capture_problems": r.get("capture_problems"),
                        "load_avg_1m": r["load_avg_1m"],
                        "pss_by_process": r["bot0_pss_mib_by_process"],
                        "cpu_by_process": r["bot0_cpu_pct_by_process"],
                        "cpu_by_thread": r.get("bot0_threads_in_meeting"),
                    }
                ),
                flush=True,
            )

    def medians(rs: list[dict]) -> dict[str, float | None]:
        """Medians over the runs whose bot ran at all: a bot that never started measures zeros,
        which are not figures (its capture failure is in `capture_ok_runs`)."""
        ran = [r for r in rs if r["pss_mib_per_bot_peak"] > 0]
        keys = {
            "pss": "pss_mib_per_bot_peak",
            "uss": "uss_mib_per_bot_peak",
            "alone": "bot0_mib_alone_peak",
            "cpu": "cpu_pct_per_bot_avg",
            "meeting": "cpu_pct_in_meeting_per_bot_avg",
        }
        return {k: float(np.median([r[f] or 0.0 for r in ran])) if ran else None for k, f in keys.items()}

    def ratio(value: float | None, base: float | None) -> float | None:
        return round(value / base, 3) if value is not None and base else None

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    base_label = variants[0][0]
    base = medians(runs[base_label])
    print("# medians over", repeat, "run(s) each; ratios against", repr(base_label))
    for label, rs in runs.items():
        m = medians(rs)
        print(
            json.dumps(
                {
                    "variant": label,
                    "pss_mib_median": rounded(m["pss"]),
                    "pss_vs_first": ratio(m["pss"], base["pss"]),
                    "uss_mib_median": rounded(m["uss"]),
                    "uss_vs_first": ratio(m["uss"], base["uss"]),
                    "alone_mib_median": rounded(m["alone"]),
                    "alone_vs_first": ratio(m["alone"], base["alone"]),
                    "cpu_pct_median": rounded(m["cpu"]),
                    "cpu_vs_first": ratio(m["cpu"], base["cpu"]),
                    "cpu_pct_in_meeting_median": rounded(m["meeting"]),
                    "cpu_in_meeting_vs_first": ratio(m["meeting"], base["meeting"]),
                    "capture_ok_runs": f"{sum(r['sustained'] for r in rs)}/{len(rs)}",
                }
            ),
            flush=True,
        )


def flag_variants() -> list[tuple[str, dict[str, str]]]:
    """Capture flags only, each candidate alone on top, then the lean default."""
    variants: list[tuple[str, dict[str, str]]] = [("capture flags only", {"BOT_CHROMIUM_LEAN": "false"})]
    variants += [
        (" ".join(flags), {"BOT_CHROMIUM_LEAN": "false", "BOT_CHROMIUM_EXTRA_ARGS": json.dumps(flags)})
        for flags in FLAG_CANDIDATES
    ]
    variants.append(("LEAN (default)", {"BOT_CHROMIUM_LEAN": "true"}))
    return variants


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-bots", type=int, default=8)
    parser.add_argument("--speech-s", type=float, default=20.0, help="seconds of speech per participant")
    parser.add_argument(
        "--platform",
        choices=list(PATHS),
        default="google_meet",
        help="simulated page: google_meet (a stream per participant) or teams/zoom (one mixed stream)",
    )
    parser.add_argument("--transcription", choices=["standin", "real", "auto"], default="standin")
    parser.add_argument("--out", type=Path, default=Path("/tmp/vexa-bench-bots"))
    parser.add_argument(
        "--flags", action="store_true", help="measure each Chromium flag alone (one bot per run) instead"
    )
    parser.add_argument(
        "--compare",
        metavar="SRC",
        help="one bot per run: the bot of another source tree (e.g. /work/main/src) against this one",
    )
    parser.add_argument(
        "--env",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="one bot per run: the defaults against a variant with these bot environment variables "
        "(repeatable), e.g. --env BOT_AUDIO_SOCKET=false or --env 'NODE_OPTIONS=--jitless'",
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="walk up to --max-bots even past a round that was not sustained (a shared machine's load "
        "can garble one window at any N); the ceiling printed is then the first N that failed",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant with --flags/--compare")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    wavs = {
        "Alice": make_wav(ALICE, "en-us", args.speech_s, args.out / "alice.wav"),
        "Bob": make_wav(BOB, "en-us+m3", args.speech_s, args.out / "bob.wav"),
    }
    use_real = args.transcription == "real" or (
        args.transcription == "auto" and importlib.util.find_spec("vexa.transcription.main") is not None
    )
    service = None
    url = None
    if use_real:
        from vexa.testing.processes import ServiceProcess

        port, health = free_port(), free_port()
        service = ServiceProcess(
            "transcription",
            port,
            # The bench's bots are not started by a bot-manager (no bot tokens): standalone mode.
            {
                "HEALTH_PORT": str(health),
                "REDIS_URL": os.environ.get("REDIS_URL", ""),
                "WL_STANDALONE": "true",
            },
            health_url=f"http://127.0.0.1:{health}/health",
            log_path=args.out / "transcription.log",
        ).start(timeout=120)
        url = f"ws://127.0.0.1:{port}"
    kind = "real" if use_real else "recording stand-in"
    print(f"# bots bench: {psutil.cpu_count()} CPUs, transcription={kind}, platform={args.platform}")
    try:
        if args.flags or args.compare or args.env:
            if args.flags:
                variants = flag_variants()
            elif args.compare:
                variants = [
                    (f"before ({args.compare})", {"PYTHONPATH": args.compare}),
                    ("after (this tree)", {}),
                ]
            else:
                env = dict(item.split("=", 1) for item in args.env)
                variants = [("defaults", {}), (" ".join(args.env), env)]
            await compare(variants, wavs, url, args.out, args.repeat, args.platform)
            return
        failed: list[int] = []
        for n in range(1, args.max_bots + 1):
            result = await run_round(n, wavs, url, args.out, platform=args.platform)
            print(json.dumps(result), flush=True)
            if n == 1 and result.get("capture_problems"):
                # One bot alone on the machine must deliver every voice: if not, the bench (or the
                # bot) is broken, and a "ceiling" of 0 would hide it.
                raise SystemExit(
                    f"bench/bots.py: one bot's capture did not match: {result['capture_problems']}"
                )
            if not result["sustained"]:
                failed.append(n)
                if not args.keep_going:
                    break
        sustained = [n for n in range(1, args.max_bots + 1) if n not in failed]
        print(
            json.dumps(
                {
                    "ceiling_first_failed_n": failed[0] if failed else None,
                    "sustained_up_to": (failed[0] - 1) if failed else args.max_bots,
                    "rounds_failed": failed,
                    "rounds_sustained": sustained if args.keep_going else None,
                }
            ),
            flush=True,
        )
    finally:
        if service is not None:
            service.stop()


if __name__ == "__main__":
    asyncio.run(main())
