"""How often does the bot's capture put a gap into the audio: the capture worker, and the AudioWorklet
by how much its context renders at a time?

The bot's fallback capture taps remote audio with a Web Audio context that has no output device
(src/vexa/bot/capture.js).
Chromium feeds each tapped track into that context through a FIFO, and when the context pulls before
the track's next 10 ms chunk has arrived, it plays 10 ms of zeros instead (and the audio after it
comes 10 ms later). The larger the context's render size (its ``latencyHint``), the fewer times a
second Chromium wakes to render it — the bot's CPU — so this measures what a render size costs in
gaps, all sizes at once on the same track:

- a page on 127.0.0.1 plays seeded white-noise bursts (0.4-1.6 s, with 0.3-1.5 s of digital
  silence between them) into a MediaStream, as a meeting page's remote audio, also on an ``<audio>``;
- one capture context per ``--render-s`` value (16 kHz, ``sinkId: none``, an output-less recording
  AudioWorklet, as the bot's) taps that stream for ``--seconds``, and so does the bot's own capture
  worker (src/vexa/bot/capture_worker.js, a MediaStreamTrackProcessor; its default path) unless
  ``--no-track``: it reads every chunk the track delivers, so it should show none;
- a gap is a run of 50-2,000 exact zeros inside a burst (noise is never exactly zero; silences
  between bursts are longer).

    .venv/bin/python bench/capture_gaps.py --runs 12 --seconds 20
    .venv/bin/python bench/capture_gaps.py --runs 5 --seconds 60 --load 2   # two busy processes beside it
"""

from __future__ import annotations

import argparse
import http.server
import json
import subprocess
import sys
import tempfile
import threading
import urllib.parse

import numpy as np

from vexa.bot.platforms.base import CAPTURE_WORKER_JS
from vexa.bot.settings import BotSettings

PAGE = """<html><body><audio id="a" autoplay></audio><script>
(async () => {
  const q = new URLSearchParams(location.search);
  const sizes = JSON.parse(q.get("sizes")), seconds = +q.get("seconds");
  let seed = +q.get("seed");
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const gen = new AudioContext();
  const rate = gen.sampleRate;
  const buffer = gen.createBuffer(1, Math.round(rate * seconds), rate);
  const data = buffer.getChannelData(0);
  for (let t = 0.8; t < seconds - 2; ) {
    const len = 0.4 + rnd() * 1.2;
    for (let i = Math.round(t * rate); i < Math.round((t + len) * rate); i++) data[i] = (rnd() * 2 - 1) * 0.3;
    t += len + 0.3 + rnd() * 1.2;
  }
  const dest = gen.createMediaStreamDestination();
  document.getElementById("a").srcObject = dest.stream;
  const track = dest.stream.getAudioTracks()[0];
  const code = `class Rec extends AudioWorkletProcessor {
    constructor() { super(); this.b = new Float32Array(16000); this.n = 0; }
    process(inputs) {
      const x = inputs[0];
      if (x && x.length) for (const v of x[0]) {
        this.b[this.n++] = v;
        if (this.n < this.b.length) continue;
        this.port.postMessage(this.b.buffer, [this.b.buffer]);
        this.b = new Float32Array(16000);
        this.n = 0;
      }
      return true;
    }
  }
  registerProcessor("rec", Rec);`;
  const url = URL.createObjectURL(new Blob([code], { type: "application/javascript" }));
  const captures = [];
  if (q.get("track") === "1") {
    const worker = new Worker(URL.createObjectURL(new Blob([await (await fetch("/worker")).text()])));
    const chunks = [];
    const float = (pcm) => Float32Array.from(pcm, (v) => v / 32768);
    worker.onmessage = (e) => chunks.push(float(new Int16Array(e.data.buffer, 12)));
    const { readable } = new MediaStreamTrackProcessor({ track, maxBufferSize: 100 });
    worker.postMessage({ number: 0, frame: 1600, header: 12, readable }, [readable]);
    captures.push({ size: "track", chunks });
  }
  for (const size of sizes) {
    const ctx = new AudioContext({ sampleRate: 16000, sinkId: { type: "none" }, latencyHint: size });
    await ctx.audioWorklet.addModule(url);
    const options = { numberOfOutputs: 0, channelCount: 1, channelCountMode: "explicit" };
    const node = new AudioWorkletNode(ctx, "rec", options);
    const chunks = [];
    node.port.onmessage = (e) => chunks.push(new Float32Array(e.data));
    ctx.createMediaStreamSource(new MediaStream([track])).connect(node);
    captures.push({ size, chunks });
  }
  await new Promise((r) => setTimeout(r, 1500));
  const source = gen.createBufferSource();
  source.buffer = buffer;
  source.connect(dest);
  source.start(gen.currentTime + 0.1);
  await new Promise((r) => setTimeout(r, (seconds + 1.5) * 1000));
  for (const c of captures) {
    await fetch("/capture?size=" + c.size, { method: "POST", body: new Blob(c.chunks) });
  }
  await fetch("/done", { method: "POST" });
})();
</script></body></html>"""


def gaps(samples: np.ndarray) -> list[float]:
    """Start times (s) of runs of 50-2,000 exact zeros: 10 ms chunks Chromium played as zeros."""
    zero = np.concatenate([[False], samples == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]
    return [round(s / 16000, 2) for s, e in zip(starts, ends, strict=True) if 50 <= e - s < 2000 and s > 0]


def one_run(
    chromium: str, sizes: list[float], seconds: float, seed: int, track: bool
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Gap start times (s) by capture, ``track`` (the capture worker) and each render size; and
    the seconds each captured (a capture that heard nothing has no gaps either)."""
    captures: dict[str, np.ndarray] = {}
    done = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, body: bytes = b"", kind: str = "text/plain") -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/worker":
                self._reply(CAPTURE_WORKER_JS.read_bytes(), "text/javascript")
            else:
                self._reply(PAGE.encode(), "text/html")

        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers["Content-Length"]))
            url = urllib.parse.urlparse(self.path)
            if url.path == "/capture":
                captures[urllib.parse.parse_qs(url.query)["size"][0]] = np.frombuffer(data, np.float32)
            else:
                done.set()
            self._reply()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    query = urllib.parse.urlencode(
        {"sizes": json.dumps(sizes), "seconds": seconds, "seed": seed, "track": int(track)}
    )
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen(
            [chromium, "--headless", "--mute-audio", "--no-sandbox", "--disable-gpu",
             "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={profile}",
             f"http://127.0.0.1:{server.server_address[1]}/?{query}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            if not done.wait(seconds + 60):
                raise SystemExit("capture_gaps: the page sent no captures (is Chromium working?)")
        finally:
            browser.kill()
            browser.wait()
            server.shutdown()
    found = {name: gaps(samples) for name, samples in captures.items()}
    return found, {name: round(len(samples) / 16000, 2) for name, samples in captures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--render-s", type=float, nargs="+", default=[0.01, 0.032, 0.05, 0.1, 0.2])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--load", type=int, default=0, help="busy processes to run beside the browser")
    parser.add_argument("--chromium", default=BotSettings().chromium_path)
    parser.add_argument("--no-track", dest="track", action="store_false", help="only the AudioWorklet")
    args = parser.parse_args()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    totals: dict[str, list[int]] = {}
    try:
        for seed in range(1, args.runs + 1):
            found, lengths = one_run(args.chromium, args.render_s, args.seconds, seed, args.track)
            print(json.dumps({"run": seed, "gap_starts_s": found, "captured_s": lengths}), flush=True)
            for name, starts in found.items():
                totals.setdefault(name, []).append(len(starts))
    finally:
        for hog in hogs:
            hog.kill()
    for name, counts in sorted(totals.items()):
        print(json.dumps({
            "capture": "worker" if name == "track" else f"worklet, {float(name) * 1000:g} ms renders",
            "runs": len(counts),
            "gaps": sum(counts),
            "runs_with_a_gap": sum(1 for c in counts if c),
            "seconds_each": args.seconds,
            "load": args.load,
        }))  # fmt: skip


if __name__ == "__main__":
    main()
