"""How often does the bot's capture context put a gap into the audio, by how much it renders at a time?

The bot taps remote audio with a Web Audio context that has no output device (src/vexa/bot/capture.js).
Chromium feeds each tapped track into that context through a FIFO, and when the context pulls before
the track's next 10 ms chunk has arrived, it plays 10 ms of zeros instead (and the audio after it
comes 10 ms later). The larger the context's render size (its ``latencyHint``), the fewer times a
second Chromium wakes to render it — the bot's CPU — so this measures what a render size costs in
gaps, all sizes at once on the same track:

- a page on 127.0.0.1 plays seeded white-noise bursts (0.4-1.6 s, with 0.3-1.5 s of digital
  silence between them) into a MediaStream, as a meeting page's remote audio, also on an ``<audio>``;
- one capture context per ``--render-s`` value (16 kHz, ``sinkId: none``, an output-less recording
  AudioWorklet, as the bot's) taps that stream for ``--seconds``;
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


def one_run(chromium: str, sizes: list[float], seconds: float, seed: int) -> dict[float, list[float]]:
    captures: dict[float, np.ndarray] = {}
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
            self._reply(PAGE.encode(), "text/html")

        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers["Content-Length"]))
            url = urllib.parse.urlparse(self.path)
            if url.path == "/capture":
                size = float(urllib.parse.parse_qs(url.query)["size"][0])
                captures[size] = np.frombuffer(data, np.float32)
            else:
                done.set()
            self._reply()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    query = urllib.parse.urlencode({"sizes": json.dumps(sizes), "seconds": seconds, "seed": seed})
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
    return {size: gaps(captures[size]) for size in sizes}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--render-s", type=float, nargs="+", default=[0.01, 0.032, 0.05, 0.1, 0.2])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--load", type=int, default=0, help="busy processes to run beside the browser")
    parser.add_argument("--chromium", default=BotSettings().chromium_path)
    args = parser.parse_args()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    totals: dict[float, list[int]] = {size: [] for size in args.render_s}
    try:
        for seed in range(1, args.runs + 1):
            found = one_run(args.chromium, args.render_s, args.seconds, seed)
            starts = {str(size): times for size, times in found.items()}
            print(json.dumps({"run": seed, "gap_starts_s": starts}), flush=True)
            for size, starts in found.items():
                totals[size].append(len(starts))
    finally:
        for hog in hogs:
            hog.kill()
    for size, counts in totals.items():
        print(json.dumps({
            "render_s": size,
            "runs": len(counts),
            "gaps": sum(counts),
            "runs_with_a_gap": sum(1 for c in counts if c),
            "seconds_each": args.seconds,
            "load": args.load,
        }))  # fmt: skip


if __name__ == "__main__":
    main()
