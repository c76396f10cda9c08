// Vexa bot: the capture worker. The page (capture.js) hands it the ReadableStream of a
// MediaStreamTrackProcessor per remote audio track; it turns every chunk into 16 kHz mono 16-bit
// PCM on its tap's timeline and posts whole frames back: {number, buffer, endMs}, the buffer with
// the header's bytes free in front for the page to write the frame header into.
//
// Why not an AudioWorklet in a 16 kHz AudioContext (the fallback, capture.js): such a context
// pulls each track through a FIFO on its own clock, waking a timer and an audio thread every
// render (100 times a second at 10 ms), and when it pulls before a chunk arrived Chromium
// zeroes 10 ms of the speech. Here every chunk the track delivers arrives as it is, once, with
// its capture timestamp, and the worker reads them in batches, once per tick (see pump()).
//
// What the worker does itself that the audio graph did before:
// - resampling to 16 kHz: a windowed-sinc low-pass read from a table of PHASES fractional
//   positions (a track comes at whatever rate its source runs: 48 kHz WebRTC, 44.1 kHz here);
// - the timeline: a track's chunks are laid end to end, and jitter in their timestamps is not a
//   gap (a chunk rendered late is followed by the rest of the speech, not by a pause). Only when
//   the tap's clock has passed a track by LATE_MS (a page's stream that delivers nothing while
//   nobody speaks, as Chromium's Web Audio streams do) does its next chunk go where its
//   timestamp says, so a word after a pause is dated where it was said;
// - mixing: tracks of one tap (one participant's, or everything unattributed) add up on the
//   tap's timeline;
// - silence on time: a frame goes out when all its tracks have covered it, or at the latest
//   LATE_MS after its end (as zeros where nothing came), so the transcription service hears
//   the pause that ends an utterance even from a stream that went quiet.
"use strict";

const OUT_RATE = 16000;
const TAPS = 32; // filter length, input samples
const PHASES = 256; // fractional positions in the filter table
const DELAYS = 128; // chunks whose delivery delay the clock mapping looks back on
const LATE_MS = 150; // how long a frame waits for slow tracks
const TICK_MS = 100; // the clock that sends such frames, and that the pumps read their tracks on
const BACKLOG_S = 2; // audio a tap holds ahead of its next frame at most

const now = () => performance.timeOrigin + performance.now();
const filters = new Map(); // input rate -> Float32Array((PHASES + 1) * TAPS)
const taps = new Map(); // tap number -> Tap

// Low-pass at 90% of 8 kHz (Blackman window), one row of TAPS weights per fractional position,
// each row summing to 1 (no change of level).
function filterFor(rate) {
  let table = filters.get(rate);
  if (table) return table;
  table = new Float32Array((PHASES + 1) * TAPS);
  const fc = 0.5 * Math.min(1, OUT_RATE / rate) * 0.9;
  const half = TAPS / 2;
  for (let p = 0; p <= PHASES; p++) {
    let sum = 0;
    for (let k = 0; k < TAPS; k++) {
      const x = k - half + 1 - p / PHASES;
      const w = 0.42 + 0.5 * Math.cos((Math.PI * x) / half) + 0.08 * Math.cos((2 * Math.PI * x) / half);
      const h = x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
      table[p * TAPS + k] = h * Math.max(0, w);
      sum += table[p * TAPS + k];
    }
    for (let k = 0; k < TAPS; k++) table[p * TAPS + k] /= sum;
  }
  filters.set(rate, table);
  return table;
}

// One track's input side: its samples (mono, at the track's rate) not yet resampled, and where
// its next output sample goes on the tap's timeline.
class Track {
  constructor(tap) {
    this.tap = tap;
    this.rate = 0;
    this.plane = new Float32Array(1024);
    this.out = new Float32Array(1024);
    this.pos = null; // tap sample index of the next output sample; null until the first chunk
    // Arrival minus timestamp of the latest chunks: the smallest is the timestamps' offset from
    // the wall clock (a chunk cannot arrive before it was captured; late ones say nothing).
    this.delays = new Float64Array(DELAYS).fill(Infinity);
    this.chunks = 0;
    this.delay = 0; // of the latest chunk
  }

  reset(rate) {
    this.rate = rate;
    this.filter = filterFor(rate);
    this.step = rate / OUT_RATE;
    this.hist = new Float32Array(Math.ceil(rate) + TAPS); // a second of input is plenty
    this.len = TAPS - 1; // starts on silence, so the first samples have a past
    this.at = TAPS / 2 - 1; // fractional input position of the next output sample
  }

  // The timestamps' offset from the wall clock: the smallest delivery delay of late.
  offsetMs() {
    let offset = Infinity;
    for (const d of this.delays) offset = Math.min(offset, d);
    return offset;
  }

  // How much later than the newest chunks the latest one taken was read: 0 when it was one of them.
  behindMs() {
    return this.delay - this.offsetMs();
  }

  // Place a chunk on the timeline: right after the previous one, unless it is the first, or the
  // tap's clock went past this track (then where its timestamp says; the resampler starts afresh).
  place(audio, arrivedMs) {
    const durMs = (audio.numberOfFrames / audio.sampleRate) * 1000;
    const endStampMs = audio.timestamp / 1000 + durMs;
    this.delay = arrivedMs - endStampMs;
    this.delays[this.chunks++ % DELAYS] = this.delay;
    const tap = this.tap;
    if (this.pos !== null && this.pos >= tap.sent && audio.sampleRate === this.rate) return;
    const startMs = endStampMs + this.offsetMs() - durMs;
    // Never before what was sent: a chunk that late is laid after it rather than cut.
    this.pos = Math.max(tap.sent, Math.round(((startMs - tap.t0) * OUT_RATE) / 1000));
    this.reset(audio.sampleRate);
  }

  // A chunk (AudioData, closed here): down-mix, resample, add into the tap. Every chunk of every
  // track passes here (100 a second each), so the loops keep to locals and one copy per channel.
  take(audio, arrivedMs) {
    this.place(audio, arrivedMs);
    const frames = audio.numberOfFrames;
    const chans = audio.numberOfChannels;
    if (this.len + frames > this.hist.length) {
      const grown = new Float32Array(this.len + frames);
      grown.set(this.hist.subarray(0, this.len));
      this.hist = grown;
    }
    const h = this.hist;
    const base = this.len;
    // Channel 0 straight into the history; the others added to it and averaged.
    const planar = audio.format === "f32-planar" ? {} : { format: "f32-planar" };
    audio.copyTo(h.subarray(base, base + frames), { planeIndex: 0, ...planar });
    if (chans > 1) {
      if (this.plane.length < frames) this.plane = new Float32Array(frames);
      const pl = this.plane;
      for (let c = 1; c < chans; c++) {
        audio.copyTo(pl, { planeIndex: c, ...planar });
        for (let i = 0; i < frames; i++) h[base + i] += pl[i];
      }
      const k = 1 / chans;
      for (let i = base; i < base + frames; i++) h[i] *= k;
    }
    audio.close();
    const len = base + frames;

    const f = this.filter;
    const step = this.step;
    const half = TAPS / 2;
    const most = Math.ceil(frames / step) + 2;
    if (this.out.length < most) this.out = new Float32Array(most);
    const out = this.out;
    let at = this.at;
    let n = 0;
    while (at + half < len) {
      const i0 = Math.floor(at);
      const row = Math.round((at - i0) * PHASES) * TAPS;
      let j = i0 - half + 1;
      let acc = 0;
      for (let k = row; k < row + TAPS; k++) acc += f[k] * h[j++];
      out[n++] = acc;
      at += step;
    }
    const done = Math.floor(at) - half + 1;
    if (done > 0) {
      h.copyWithin(0, done, len);
      this.len = len - done;
      this.at = at - done;
    } else {
      this.len = len;
      this.at = at;
    }
    this.tap.add(this.pos, out, n);
    this.pos += n;
    this.tap.flush();
  }
}

// One tap: a stream to Python (a participant, or the mix). Its timeline starts at t0 (wall
// clock, ms) with sample 0; `sent` samples of it have gone out as frames; `acc` holds what the
// tracks added from there on.
class Tap {
  constructor(number, frame, header, t0) {
    this.number = number;
    this.frame = frame;
    this.header = header;
    this.t0 = t0;
    this.sent = 0;
    this.acc = new Float32Array(BACKLOG_S * OUT_RATE);
    this.tracks = new Set();
  }

  add(pos, samples, n) {
    const from = Math.max(pos, this.sent); // what falls before `sent` came too late: it is dropped
    const to = Math.min(pos + n, this.sent + this.acc.length);
    for (let s = from; s < to; s++) this.acc[s - this.sent] += samples[s - pos];
  }

  // Send every frame that all its tracks have covered, and with `dueMs` (wall clock; the clock's
  // tick) every frame that ended by then, covered or not.
  flush(dueMs) {
    let ready = Infinity;
    for (const t of this.tracks) if (t.pos !== null) ready = Math.min(ready, t.pos);
    if (dueMs !== undefined) {
      const due = Math.floor(((dueMs - this.t0) * OUT_RATE) / 1000);
      ready = ready === Infinity ? due : Math.max(ready, due);
    }
    const F = this.frame;
    while (this.sent + F <= ready) {
      const buffer = new ArrayBuffer(this.header + 2 * F);
      const pcm = new Int16Array(buffer, this.header, F);
      const acc = this.acc;
      for (let i = 0; i < F; i++) {
        const v = acc[i];
        pcm[i] = v >= 1 ? 32767 : v <= -1 ? -32768 : Math.round(v * 32767);
      }
      acc.copyWithin(0, F);
      acc.fill(0, acc.length - F);
      this.sent += F;
      const endMs = this.t0 + (this.sent * 1000) / OUT_RATE;
      postMessage({ number: this.number, buffer, endMs }, [buffer]);
    }
  }
}

// Reading in batches. A read waiting on an empty stream makes Chromium wake the worker for the
// chunk it hands over, 100 times a second per track, and on a small VM those wake-ups cost more
// than the arithmetic. So a pump reads until it has caught up and then sleeps until the next
// tick, while the processor keeps what comes meanwhile (up to a second of it, capture.js).
// Caught up means both: its last read had to wait for Chromium to deliver (a chunk it already
// held settles in well under a millisecond), and that chunk is as fresh as the track's chunks
// get (a read slow only because the worker was busy does not end a batch with chunks queued).
// A chunk is dated by when it was read; a waited-for one, by when Chromium delivered it. The
// worker wakes ~30 times a second for two tracks instead of ~110 (README "Figures", Bots round 7).
const WAITED_MS = 2; // a read that took longer waited for Chromium to deliver
const FRESH_MS = 30; // how much later than the newest chunks a chunk that ends a batch may be read
let waiting = [];
const nextTick = () => new Promise((resolve) => waiting.push(resolve));

async function pump(tap, readable) {
  const track = new Track(tap);
  tap.tracks.add(track);
  const reader = readable.getReader();
  try {
    for (;;) {
      const askedMs = now();
      const { value, done } = await reader.read();
      if (done) break;
      const arrivedMs = now();
      track.take(value, arrivedMs);
      if (arrivedMs - askedMs > WAITED_MS && track.behindMs() < FRESH_MS) await nextTick();
    }
  } catch (e) {
    // the track ended or the page went away: the tap goes on without it
  } finally {
    tap.tracks.delete(track);
  }
}

// {number, frame, header, readable}: a track for tap `number` (frames of `frame` samples, `header`
// bytes free in front); "ping" is answered "pong" (the page's check that the worker runs at all).
onmessage = (ev) => {
  if (ev.data === "ping") {
    postMessage("pong");
    return;
  }
  const { number, frame, header, readable } = ev.data;
  let tap = taps.get(number);
  if (!tap) {
    // The tap's timeline starts now, as the page taps its first track: silence until that track
    // delivers (some pages' streams deliver nothing before the first word).
    tap = new Tap(number, frame, header, now());
    taps.set(number, tap);
  }
  pump(tap, readable);
};

// Frames that waited LATE_MS go out on this clock. It counts from the previous tick, not from
// now: after a stall of the worker, the chunks that piled up meanwhile are read before their
// frames are given up on. The same tick wakes the sleeping pumps; they read after this callback
// returns, which the margin covers too (their chunks wait at most a tick and FRESH_MS).
let lastTick = now();
setInterval(() => {
  const due = lastTick - LATE_MS;
  lastTick = now();
  const woken = waiting;
  waiting = [];
  woken.forEach((resolve) => resolve());
  taps.forEach((tap) => tap.flush(due));
}, TICK_MS);
