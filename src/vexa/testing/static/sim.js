// SIMULATED meeting page served by vexa.testing.simulator — NOT a real meeting platform.
// It reproduces the join flow and DOM landmarks of Google Meet, Microsoft Teams and
// Zoom's web client closely enough for the Vexa bot's adapters, and plays each
// simulated participant's WAV through an in-page MediaStream attached to a media
// element's srcObject (no RTCPeerConnection, nothing leaves the machine).
(() => {
  "use strict";
  const CFG = JSON.parse(document.getElementById("sim-config").textContent);
  const app = document.getElementById("app");
  const base = `/_sim/m/${encodeURIComponent(CFG.meeting)}`;
  const report = (event, extra) =>
    fetch(`${base}/event`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ event, ...(extra || {}) }),
    }).catch(() => {});
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  // ---- per-platform markup: the landmarks the bot's selectors look for ----
  const VIEWS = {
    google_meet: {
      launcher: null,
      prejoin: () => `
        <h2>Ready to join?</h2>
        <input type="text" aria-label="Your name" placeholder="Your name">
        <div role="button" class="sim-mic" aria-label="Turn off microphone" data-is-muted="false">mic</div>
        <div role="button" class="sim-cam" aria-label="Turn off camera" data-is-muted="false">cam</div>
        <button class="sim-join"><span>Ask to join</span></button>`,
      micToggle: (el) => { el.setAttribute("aria-label", "Turn on microphone"); el.dataset.isMuted = "true"; },
      camToggle: (el) => { el.setAttribute("aria-label", "Turn on camera"); el.dataset.isMuted = "true"; },
      muted: () => document.querySelector(".sim-mic").dataset.isMuted === "true",
      camOff: () => document.querySelector(".sim-cam").dataset.isMuted === "true",
      name: () => document.querySelector('input[aria-label="Your name"]').value,
      waiting: `<div>Asking to be let in…</div><div>You'll join the call when someone lets you in</div>`,
      rejected: `<h2>You can't join this call</h2><div>Someone in the call denied your request to join</div>`,
      meeting: (tiles) => `<div class="sim-grid" jsname="participants">${tiles}</div>
        <div><button aria-label="Leave call" class="sim-leave">leave</button></div>`,
      tile: (p) => `<div class="sim-tile" data-participant-id="${esc(p.id)}" data-requested-participant-id="${esc(p.id)}">
        <div class="sim-ind gjg47c"></div><span class="notranslate">${esc(p.name)}</span>
        <audio autoplay></audio></div>`,
      speaking: (tile, on) => {
        const ind = tile.querySelector(".sim-ind");
        ind.classList.toggle("Oaajhc", on);
        ind.classList.toggle("gjg47c", !on);
      },
      removed: `<h2>You've been removed from the meeting</h2>`,
      ended: `<h2>The call has ended</h2>`,
      left: `<h2>You left the meeting</h2>`,
    },
    teams: {
      launcher: `<h2>How do you want to join your Teams meeting?</h2>
        <button data-tid="joinOnWeb" class="sim-launch">Continue on this browser</button>`,
      prejoin: () => `
        <h2>Choose your audio and video settings</h2>
        <input data-tid="prejoin-display-name-input" placeholder="Type your name">
        <div role="switch" class="sim-mic" data-tid="toggle-mute" aria-label="Microphone" aria-checked="true">mic</div>
        <div role="switch" class="sim-cam" data-tid="toggle-video" aria-label="Camera" aria-checked="true">cam</div>
        <button data-tid="prejoin-join-button" class="sim-join">Join now</button>`,
      micToggle: (el) => el.setAttribute("aria-checked", el.getAttribute("aria-checked") === "true" ? "false" : "true"),
      camToggle: (el) => el.setAttribute("aria-checked", el.getAttribute("aria-checked") === "true" ? "false" : "true"),
      muted: () => document.querySelector(".sim-mic").getAttribute("aria-checked") === "false",
      camOff: () => document.querySelector(".sim-cam").getAttribute("aria-checked") === "false",
      name: () => document.querySelector('input[data-tid="prejoin-display-name-input"]').value,
      waiting: `<div data-tid="lobby-screen">Someone will let you in shortly</div>`,
      rejected: `<h2>Sorry, but you were denied access to the meeting.</h2>`,
      meeting: (tiles) => `<div class="sim-grid" data-tid="video-gallery">${tiles}</div>
        <div><button id="hangup-button" data-tid="hangup-main-btn" aria-label="Leave" class="sim-leave">Leave</button></div>`,
      tile: (p) => `<div class="sim-tile" data-tid="participant-tile" data-participant-id="${esc(p.id)}">
        <div class="sim-ind" data-tid="voice-level-stream-outline"></div>
        <span data-tid="participant-name">${esc(p.name)}</span><audio autoplay></audio></div>`,
      speaking: (tile, on) =>
        tile.querySelector('[data-tid="voice-level-stream-outline"]').classList.toggle("vdi-frame-occlusion", on),
      removed: `<h2>You've been removed from this meeting</h2>`,
      ended: `<h2>The meeting has ended</h2>`,
      left: `<h2>You left the meeting</h2>`,
    },
    zoom: {
      launcher: `<h2>Click Open Zoom Meetings on the dialog shown by your browser</h2>
        <a role="button" class="sim-launch launch-browser">Join from Your Browser</a>`,
      prejoin: () => `
        <h2>Enter Meeting Info</h2>
        <input id="input-for-name" type="text" placeholder="Your Name">
        <button id="preview-audio-control-button" class="sim-mic" aria-label="Mute">mic</button>
        <button id="preview-video-control-button" class="sim-cam" aria-label="Stop Video">cam</button>
        <button class="preview-join-button sim-join">Join</button>`,
      micToggle: (el) => el.setAttribute("aria-label", el.getAttribute("aria-label") === "Mute" ? "Unmute" : "Mute"),
      camToggle: (el) =>
        el.setAttribute("aria-label", el.getAttribute("aria-label") === "Stop Video" ? "Start Video" : "Stop Video"),
      muted: () => document.querySelector(".sim-mic").getAttribute("aria-label") === "Unmute",
      camOff: () => document.querySelector(".sim-cam").getAttribute("aria-label") === "Start Video",
      name: () => document.querySelector("#input-for-name").value,
      waiting: `<div class="wr-content">Please wait, the meeting host will let you in soon.</div>`,
      rejected: `<h2>The host has removed you from the waiting room</h2>`,
      meeting: (tiles, names) => `<div class="sim-grid gallery-video-container__main-view">${tiles}</div>
        <div class="participants-section-container">${names}</div>
        <div><button class="footer__leave-btn sim-leave" aria-label="Leave">Leave</button></div>
        <div class="sim-confirm" hidden><button class="leave-meeting-options__btn">Leave Meeting</button></div>`,
      tile: (p) => `<div class="sim-tile video-avatar__avatar" data-participant-id="${esc(p.id)}">
        <div class="sim-ind"></div><span class="video-avatar__avatar-name">${esc(p.name)}</span>
        <audio autoplay></audio></div>`,
      panelItem: (p) => `<div class="participants-item" data-participant-id="${esc(p.id)}">
        <span class="participants-item__display-name">${esc(p.name)}</span></div>`,
      speaking: (tile, on) => tile.classList.toggle("video-avatar__avatar--speaking", on),
      removed: `<h2>You have been removed from this meeting by the host</h2>`,
      ended: `<h2>This meeting has been ended by host</h2>`,
      left: `<h2>You left the meeting</h2>`,
    },
  };
  const V = VIEWS[CFG.platform];

  let phase = "";
  let playback = null;
  const show = (next, html) => {
    phase = next;
    app.innerHTML = html;
    app.dataset.simPhase = next;
  };

  function showLauncher() {
    show("launcher", V.launcher);
    app.querySelector(".sim-launch").addEventListener("click", showPrejoin);
  }

  function showPrejoin() {
    show("prejoin", V.prejoin());
    app.querySelector(".sim-mic").addEventListener("click", (e) => V.micToggle(e.currentTarget));
    app.querySelector(".sim-cam").addEventListener("click", (e) => V.camToggle(e.currentTarget));
    app.querySelector(".sim-join").addEventListener("click", () => {
      const name = V.name().trim();
      if (!name) return; // like the real pages: the join button does nothing without a name
      report("ask", { name, mic_muted: V.muted(), camera_off: V.camOff() });
      show("waiting", V.waiting);
      poll();
    });
  }

  // Tiles of the people in the call now; late joiners are added, early leavers removed, by the plan.
  const present = new Set(CFG.participants.map((p, i) => i).filter((i) => !(CFG.plan.joins[i] > 0)));

  function tileOf(i) {
    return app.querySelector(`[data-participant-id="${CSS.escape(CFG.participants[i].id)}"]`);
  }

  function addTile(i) {
    const p = CFG.participants[i];
    app.querySelector(".sim-grid").insertAdjacentHTML("beforeend", V.tile(p));
    if (V.panelItem) app.querySelector(".participants-section-container").insertAdjacentHTML("beforeend", V.panelItem(p));
  }

  function removeTile(i) {
    app.querySelectorAll(`[data-participant-id="${CSS.escape(CFG.participants[i].id)}"]`).forEach((el) => el.remove());
  }

  function rename(i) {
    const p = CFG.participants[i];
    p.name = p.rename_to;
    app.querySelectorAll(`[data-participant-id="${CSS.escape(p.id)}"]`).forEach((el) => {
      const label = el.querySelector("span");
      if (label) label.textContent = p.name;
    });
  }

  // A presenter's screen: a video tile with no audio that is not a participant (the bot must ignore it).
  function screenShareTile() {
    const html = `<div class="sim-screen-share" data-tid="screen-share-tile"><video autoplay muted></video>
      <span class="sim-screen-label">Screen share (SIMULATED)</span></div>`;
    app.querySelector(".sim-grid").insertAdjacentHTML("afterbegin", html);
    const canvas = document.createElement("canvas");
    canvas.width = 160;
    canvas.height = 90;
    const g = canvas.getContext("2d");
    g.fillStyle = "#246";
    g.fillRect(0, 0, 160, 90);
    app.querySelector(".sim-screen-share video").srcObject = canvas.captureStream(1);
  }

  function showMeeting() {
    const people = CFG.participants.filter((p, i) => present.has(i));
    const tiles = people.map(V.tile).join("");
    const names = V.panelItem ? people.map(V.panelItem).join("") : "";
    show("meeting", V.meeting(tiles, names));
    if (CFG.screen_share) screenShareTile();
    const leave = app.querySelector(".sim-leave");
    leave.addEventListener("click", () => {
      const confirm = app.querySelector(".sim-confirm");
      if (confirm) {
        confirm.hidden = false;
        confirm.querySelector("button").addEventListener("click", leaveNow);
      } else {
        leaveNow();
      }
    });
    playback = startPlayback();
  }

  function leaveNow() {
    stopPlayback();
    report("left");
    show("left", V.left);
  }

  function stopPlayback() {
    if (playback) playback.stop();
    playback = null;
  }

  // Remote audio as the platform delivers it: Meet gives each participant a MediaStream on
  // their tile's <audio>; Teams and Zoom web give one mixed MediaStream for everyone, on an
  // element that belongs to no tile. Either way a Web Audio destination is the stream and the
  // plan's turns are scheduled into it on the AudioContext clock; the speaking indicator
  // follows the plan's (late, flickering) timeline on the page clock.
  function startPlayback() {
    const ctx = new AudioContext();
    const mixed = CFG.audio_mode === "mixed";
    let mixDest = null;
    if (mixed) {
      mixDest = ctx.createMediaStreamDestination();
      const el = document.createElement("audio");
      el.id = "sim-remote-audio";
      el.autoplay = true;
      el.srcObject = mixDest.stream;
      document.body.appendChild(el);
      el.play().catch(() => {});
    }
    const dests = new Map();
    const destOf = (i) => {
      if (!dests.has(i)) dests.set(i, ctx.createMediaStreamDestination());
      return dests.get(i);
    };
    const attach = (i) => {
      // Per-participant: the tile's own element carries that person's stream (once they are in).
      if (mixed) return;
      const tile = tileOf(i);
      if (!tile) return;
      const el = tile.querySelector("audio");
      el.srcObject = destOf(i).stream;
      el.play().catch(() => {});
    };
    present.forEach(attach);
    let stopped = false;
    const timers = [];
    const sources = [];
    const at = (s, fn) => timers.push(setTimeout(() => !stopped && fn(), Math.max(0, s * 1000)));
    (async () => {
      if (ctx.state === "suspended") await ctx.resume().catch(() => {});
      const buffers = await Promise.all(
        CFG.participants.map((p) =>
          Promise.all(p.audio.map(async (url) => ctx.decodeAudioData(await (await fetch(url)).arrayBuffer()))),
        ),
      );
      await new Promise((r) => setTimeout(r, CFG.play_delay * 1000));
      if (stopped) return;
      const origin = ctx.currentTime + 0.2;
      const wallOrigin = Date.now() + 200;
      report("origin", { at: wallOrigin / 1000 });
      const plan = CFG.plan;
      const since = () => (Date.now() - wallOrigin) / 1000;
      const lead = (s) => s - since();
      Object.entries(plan.joins).forEach(([i, t]) => at(lead(t), () => { present.add(+i); addTile(+i); attach(+i); report("roster", { names: names() }); }));
      Object.entries(plan.leaves).forEach(([i, t]) => at(lead(t), () => { present.delete(+i); removeTile(+i); report("roster", { names: names() }); }));
      Object.entries(plan.renames).forEach(([i, t]) => at(lead(t), () => { rename(+i); report("roster", { names: names() }); }));
      plan.turns.forEach((turn, n) => {
        const src = ctx.createBufferSource();
        src.buffer = buffers[turn.who][turn.clip];
        src.connect(mixed ? mixDest : destOf(turn.who));
        src.start(origin + turn.at);
        sources.push(src);
        const name = () => CFG.participants[turn.who].name;
        at(lead(turn.at), () => report("speech_start", { name: name(), turn: n }));
        at(lead(turn.at + turn.duration), () =>
          report("speech_end", { name: name(), turn: n, duration: turn.duration, last: n === plan.turns.length - 1 }));
      });
      plan.indicator.forEach((span) => {
        const tile = () => tileOf(span.who);
        at(lead(span.on), () => tile() && V.speaking(tile(), true));
        at(lead(span.off), () => tile() && V.speaking(tile(), false));
      });
      if (!plan.turns.length) report("speech_end", { name: "", duration: 0, last: true });
    })();
    return {
      stop() {
        stopped = true;
        timers.forEach(clearTimeout);
        sources.forEach((src) => { try { src.stop(); } catch (e) {} });
        ctx.close().catch(() => {});
      },
    };
  }

  const names = () => CFG.participants.filter((p, i) => present.has(i)).map((p) => p.name);

  async function poll() {
    while (phase === "waiting" || phase === "meeting") {
      await new Promise((r) => setTimeout(r, 300));
      let s;
      try {
        s = await (await fetch(`${base}/state`)).json();
      } catch (e) {
        continue;
      }
      if (phase !== "waiting" && phase !== "meeting") break;
      if (s.ended) { stopPlayback(); show("ended", V.ended); }
      else if (s.removed && phase === "meeting") { stopPlayback(); show("removed", V.removed); }
      else if (s.rejected && phase === "waiting") show("rejected", V.rejected);
      else if (s.admitted && phase === "waiting") showMeeting();
      else if (phase === "meeting" && s.participants.length === 0 && playback) {
        // Everyone else left but the meeting is still open: their tiles go away.
        stopPlayback();
        app.querySelectorAll("[data-participant-id], .participants-item").forEach((el) => el.remove());
      }
    }
  }

  if (V.launcher) showLauncher();
  else showPrejoin();
})();
