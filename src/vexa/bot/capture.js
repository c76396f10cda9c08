// Vexa bot: in-page audio capture and speaker watching (run in every document by the bot, vexa/bot/page.py).
//
// Remote audio reaches a meeting page as MediaStreams: from RTCPeerConnection 'track'
// events and on <audio>/<video> elements' srcObject. We find them (track events,
// a MutationObserver and a periodic scan), map each element to its participant tile
// when the page lets us, and tap each one: by default with a MediaStreamTrackProcessor read in
// the capture worker (capture_worker.js: every chunk as delivered, resampled to 16 kHz there),
// else (cfg.path "worklet", or a page without the processor or that refuses the worker) with an
// AudioWorklet running in an AudioContext at 16 kHz (Chromium resamples). Frames go to Python as
// binary messages on a loopback WebSocket (cfg.ingress_url; layout in vexa/bot/audio_ingress.py),
// or, when the page cannot open it, through the exposed binding
// __vexaAudio([key, name, participantId, base64Int16LE, captureEndMs] as JSON).
// Streams we cannot attribute are mixed into one "mixed" stream. Nothing is captured
// until Python calls __vexaStartCapture(cfg) after admission.
(() => {
  if (window.__vexaInstalled) return;
  window.__vexaInstalled = true;

  // Samples per message: cfg.frame_samples (BOT_AUDIO_FRAME_MS x 16 at 16 kHz); each message costs a
  // hop through the page, the loopback socket (or the binding and the DevTools pipe) and Python,
  // so fewer, larger frames save CPU, and a frame's length is the most it delays audio on its way
  // to the server.
  const DEFAULT_FRAME = 1600;
  // How much audio the worklet's capture context renders at a time (its latencyHint, seconds):
  // cfg.render_s (BOT_CAPTURE_RENDER_MS). Chromium wakes its timer and audio thread once per this
  // much, so 0.1 s instead of 0.01 s cuts the bot's CPU ~0.8x (bench/bots.py), but then more
  // tracks get a 10 ms gap (bench/capture_gaps.py), and frames, dated when they leave the page,
  // are dated up to a render late (README "Figures", Bots round 5).
  const DEFAULT_RENDER_S = 0.01;
  // All per-sample work stays in the AudioWorklet (the audio thread): down-mix to mono and convert
  // to 16-bit PCM, then hand the buffer over without copying (transfer). Each buffer keeps HEADER
  // bytes free in front, so the main thread writes the frame's header there and sends the very
  // same buffer on the socket.
  const HEADER = 12;
  const workletSource = (FRAME) => `
    class VexaTap extends AudioWorkletProcessor {
      constructor() { super(); this.fresh(); }
      fresh() { this.buf = new Int16Array(new ArrayBuffer(${HEADER} + 2 * ${FRAME}), ${HEADER}, ${FRAME}); this.n = 0; }
      process(inputs) {
        const input = inputs[0];
        if (input && input.length) {
          const ch0 = input[0];
          const chans = input.length;
          for (let i = 0; i < ch0.length; i++) {
            let v = 0;
            for (let c = 0; c < chans; c++) v += input[c][i];
            v /= chans;
            this.buf[this.n++] = v >= 1 ? 32767 : v <= -1 ? -32768 : Math.round(v * 32767);
            if (this.n === this.buf.length) {
              this.port.postMessage(this.buf.buffer, [this.buf.buffer]);
              this.fresh();
            }
          }
        }
        return true;
      }
    }
    registerProcessor('vexa-tap', VexaTap);`;

  const S = {
    started: false,
    cfg: null,
    ctx: null,
    ready: null,
    taps: new Map(), // key -> {node, name, pid, number, announced}
    ws: null, // the loopback socket to Python, while open
    seenTracks: new Set(),
    pcStreams: [], // streams from RTCPeerConnection not (yet) seen on an element
    mixed: null,
    path: null, // "track" (the capture worker) or "worklet", once capture started
    worker: null,
    byNumber: [], // tap number -> tap
  };
  window.__vexaState = S;

  // ---- RTCPeerConnection hook: remember remote audio streams as they arrive ----
  const NativePC = window.RTCPeerConnection;
  if (NativePC && !NativePC.__vexaWrapped) {
    const Wrapped = function (...args) {
      const pc = new NativePC(...args);
      pc.addEventListener("track", (ev) => {
        if (ev.track && ev.track.kind === "audio") {
          S.pcStreams.push({ stream: ev.streams[0] || new MediaStream([ev.track]), at: Date.now() });
          scan();
        }
      });
      return pc;
    };
    Wrapped.prototype = NativePC.prototype;
    Object.setPrototypeOf(Wrapped, NativePC);
    Wrapped.__vexaWrapped = true;
    window.RTCPeerConnection = Wrapped;
  }

  // The bot's bindings (vexa/bot/page.py expose) take one string: the call's arguments as JSON.
  function report(binding, ...args) {
    const fn = window[binding];
    if (typeof fn === "function") fn(JSON.stringify(args));
  }

  function b64(buffer) {
    const bytes = new Uint8Array(buffer, HEADER);
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }

  const frameSamples = () => (S.cfg && S.cfg.frame_samples) || DEFAULT_FRAME;
  const scriptUrl = (source) => URL.createObjectURL(new Blob([source], { type: "application/javascript" }));

  async function ensureContext() {
    if (S.ready) return S.ready;
    S.ready = (async () => {
      // No output device (sinkId "none"): nobody listens to this context, and one with a device
      // whose output stays silent is moved by Chromium to a silent sink after 30 s, which put 10-30
      // ms of zeros into the speech there (bench/bots.py); this one renders on a silent sink from
      // the start, and its rendering stays out of the audio service (utility CPU 3.7 -> 2.4%).
      const latencyHint = (S.cfg && S.cfg.render_s) || DEFAULT_RENDER_S;
      const ctx = new AudioContext({ sampleRate: 16000, sinkId: { type: "none" }, latencyHint });
      await ctx.audioWorklet.addModule(scriptUrl(workletSource(frameSamples())));
      if (ctx.state === "suspended") await ctx.resume().catch(() => {});
      S.ctx = ctx;
      return ctx;
    })();
    return S.ready;
  }

  // The participant's display name now: people get renamed mid-meeting, and their words
  // from then on belong to the new name.
  function currentName(pid, fallback) {
    const cfg = S.cfg;
    if (!pid || !cfg || !cfg.tile) return fallback;
    const tile = document.querySelector(`${cfg.tile}[${cfg.tile_id_attr}="${CSS.escape(pid)}"]`);
    const nameEl = tile && cfg.tile_name ? tile.querySelector(cfg.tile_name) : null;
    return ((nameEl && nameEl.textContent) || "").trim() || fallback;
  }

  // Resolves to the open socket, or to null within 3 s (the page's Content-Security-Policy refuses
  // it, nothing listening): frames then go through the binding. A socket that opens after those
  // 3 s is closed again.
  function openIngress(url) {
    if (!url) return Promise.resolve(null);
    return new Promise((resolve) => {
      let waiting = true;
      const settle = (ws) => {
        if (!waiting) {
          if (ws) ws.close();
          return;
        }
        waiting = false;
        clearTimeout(timer);
        resolve(ws);
      };
      const timer = setTimeout(() => settle(null), 3000);
      let ws;
      try {
        ws = new WebSocket(url);
      } catch (e) {
        settle(null);
        return;
      }
      ws.binaryType = "arraybuffer";
      ws.onopen = () => settle(ws);
      ws.onerror = () => settle(null);
      ws.onclose = () => { if (S.ws === ws) S.ws = null; };
    });
  }

  // `endMs` dates the frame's last sample: the worker's timeline gives it; a worklet frame is dated
  // as it leaves the page.
  function send(tap, buffer, endMs = Date.now()) {
    const ws = S.ws;
    if (ws && ws.readyState === 1) {
      if (tap.announced !== tap.name) {
        ws.send(JSON.stringify({ tap: tap.number, key: tap.key, name: tap.name, pid: tap.pid }));
        tap.announced = tap.name;
      }
      const header = new DataView(buffer, 0, HEADER);
      header.setFloat64(0, endMs, true);
      header.setUint32(8, tap.number, true);
      ws.send(buffer);
    } else {
      report("__vexaAudio", tap.key, tap.name, tap.pid, b64(buffer), endMs);
    }
  }

  function deliver(tap, buffer, endMs) {
    if (!S.started) return;
    try {
      tap.name = currentName(tap.pid, tap.name);
      send(tap, buffer, endMs);
    } catch (e) {}
  }

  // The capture worker, running (it answered a ping within 2 s), or null: no
  // MediaStreamTrackProcessor here, or the page's Content-Security-Policy refuses a worker from a
  // blob: URL (Chromium may refuse it only after the constructor returned).
  function startWorker(source) {
    if (typeof MediaStreamTrackProcessor !== "function" || !source) return Promise.resolve(null);
    let worker;
    try {
      worker = new Worker(scriptUrl(source));
    } catch (e) {
      return Promise.resolve(null);
    }
    return new Promise((resolve) => {
      const giveUp = () => {
        clearTimeout(timer);
        worker.terminate();
        resolve(null);
      };
      const timer = setTimeout(giveUp, 2000);
      worker.onerror = giveUp;
      worker.onmessage = (ev) => {
        if (ev.data !== "pong") return;
        clearTimeout(timer);
        worker.onmessage = (msg) => {
          const tap = S.byNumber[msg.data.number];
          if (tap) deliver(tap, msg.data.buffer, msg.data.endMs);
        };
        resolve(worker);
      };
      worker.postMessage("ping");
    });
  }

  function makeTap(key, name, pid) {
    const tap = { node: null, key, name, pid, number: S.byNumber.length, announced: null };
    S.taps.set(key, tap);
    S.byNumber.push(tap);
    if (S.worker) return tap;
    // No output and connected to nothing: Chromium pulls an output-less worklet node by itself
    // (an "automatic pull node"), so the context's destination has no input. It used to get one
    // (the tap through a zero gain), and a destination fed only silence is watched: after 30 s of
    // it Chromium's SilentSinkSuspender swaps the context's output for a timer-driven fake sink.
    // The tracks reach the taps through a FIFO paced by that output, so at the swap it ran dry
    // (10 ms of zeros inside the speech, 30 s into most captures of bench/bots.py) and on the
    // timer's clock it later overflowed (30-50 ms of speech dropped).
    tap.node = new AudioWorkletNode(S.ctx, "vexa-tap", {
      numberOfOutputs: 0,
      channelCount: 1,
      channelCountMode: "explicit",
    });
    tap.node.port.onmessage = (ev) => deliver(tap, ev.data);
    return tap;
  }

  function participantOf(el) {
    const cfg = S.cfg;
    if (!cfg || !cfg.per_participant || !cfg.tile) return null;
    const tile = el.closest(cfg.tile);
    if (!tile) return null;
    const pid = tile.getAttribute(cfg.tile_id_attr) || "";
    const nameEl = cfg.tile_name ? tile.querySelector(cfg.tile_name) : null;
    const name = ((nameEl && nameEl.textContent) || "").trim();
    if (!pid || !name) return null;
    return { pid, name };
  }

  function attach(track, who) {
    if (S.seenTracks.has(track.id)) return;
    S.seenTracks.add(track.id);
    const key = who ? "p:" + who.pid : "mixed";
    const tap = S.taps.get(key) || makeTap(key, who ? who.name : "", who ? who.pid : "");
    if (S.worker) {
      // A second of chunks may queue before any is dropped: the worker reads them once per tick
      // (100 ms, capture_worker.js), and a busy worker later.
      const { readable } = new MediaStreamTrackProcessor({ track, maxBufferSize: 100 });
      S.worker.postMessage({ number: tap.number, frame: frameSamples(), header: HEADER, readable }, [readable]);
    } else {
      S.ctx.createMediaStreamSource(new MediaStream([track])).connect(tap.node);
    }
    console.log(`[vexa] capturing track ${track.id} as ${who ? who.name : "mixed"} (${S.path})`);
  }

  function scan() {
    if (!S.started || !S.path) return;
    const onElements = new Set();
    document.querySelectorAll("audio, video").forEach((el) => {
      const stream = el.srcObject;
      if (!(stream instanceof MediaStream)) return;
      const tracks = stream.getAudioTracks();
      if (!tracks.length) return;
      const who = participantOf(el);
      tracks.forEach((t) => {
        onElements.add(t.id);
        if (t.readyState === "live") attach(t, who);
      });
    });
    // Peer-connection audio never shown on an element within 2 s: capture it mixed.
    const now = Date.now();
    S.pcStreams = S.pcStreams.filter((item) => {
      const tracks = item.stream.getAudioTracks();
      if (tracks.every((t) => onElements.has(t.id) || S.seenTracks.has(t.id))) return false;
      if (now - item.at < 2000) return true;
      tracks.forEach((t) => t.readyState === "live" && attach(t, null));
      return false;
    });
  }

  window.__vexaStartCapture = async (cfg) => {
    S.cfg = cfg;
    const [worker, ws] = await Promise.all([
      cfg.path === "worklet" ? null : startWorker(cfg.worker_source),
      openIngress(cfg.ingress_url),
    ]);
    S.worker = worker;
    S.ws = ws;
    if (!worker) await ensureContext();
    S.path = worker ? "track" : "worklet";
    S.started = true;
    scan();
    new MutationObserver(() => scan()).observe(document.documentElement, {
      childList: true,
      subtree: true,
    });
    setInterval(scan, 1000);
    return S.ws ? "socket" : "binding";
  };

  window.__vexaStopCapture = () => {
    S.started = false;
    if (S.ctx) S.ctx.close().catch(() => {});
    if (S.worker) S.worker.terminate();
    if (S.ws) S.ws.close();
  };

  // ---- speakers and participants, from the platform's tiles ----
  window.__vexaWatchSpeakers = (cfg) => {
    let last = new Map(); // pid -> {name, speaking}
    const speakingIn = (tile) => {
      if (!cfg.speaking) return false;
      return tile.matches(cfg.speaking) || !!tile.querySelector(cfg.speaking);
    };
    const check = () => {
      const now = new Map();
      document.querySelectorAll(cfg.tile).forEach((tile) => {
        const pid = tile.getAttribute(cfg.tile_id_attr) || "";
        const nameEl = cfg.tile_name ? tile.querySelector(cfg.tile_name) : null;
        const name = ((nameEl && nameEl.textContent) || "").trim();
        if (!pid && !name) return;
        now.set(pid || name, { name, pid, speaking: speakingIn(tile) });
      });
      const t = Date.now();
      now.forEach((p, id) => {
        const before = last.get(id);
        if (p.speaking && !(before && before.speaking)) report("__vexaSpeaker", "SPEAKER_START", p.name, p.pid, t);
        if (!p.speaking && before && before.speaking) report("__vexaSpeaker", "SPEAKER_END", p.name, p.pid, t);
      });
      last.forEach((p, id) => {
        if (p.speaking && !now.has(id)) report("__vexaSpeaker", "SPEAKER_END", p.name, p.pid, t);
      });
      const changed =
        now.size !== last.size || [...now.keys()].some((k) => !last.has(k) || last.get(k).name !== now.get(k).name);
      last = now;
      if (changed) report("__vexaParticipants", [...now.values()].map((p) => ({ name: p.name, id: p.pid })));
    };
    check();
    report("__vexaParticipants", [...last.values()].map((p) => ({ name: p.name, id: p.pid })));
    new MutationObserver(check).observe(document.documentElement, {
      childList: true,
      subtree: true,
      attributes: true,
      attributeFilter: ["class", "data-participant-id", "aria-label"],
    });
    setInterval(check, 250); // fallback when a page re-renders without mutations we observe
    return true;
  };
})();
