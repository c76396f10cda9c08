// The meeting's recording beside its transcript: a player, and the final transcript's progress.
import { api } from "./api.js";
import { h } from "./dom.js";

/** The first finished recording's mixed track, if the meeting has one. */
export function mixedTrack(meeting) {
  for (const rec of meeting.data?.recordings || []) {
    if (rec.status !== "completed") continue;
    const media = (rec.media_files || []).find((m) => m.metadata?.track === "mixed");
    if (media) return { recording: rec, media };
  }
  return null;
}

/** Where a segment starts in the recording: final segments count from it; live ones by wall clock. */
export function offsetIn(track, seg) {
  const startedAt = track.media.metadata?.started_at;
  if (seg.session_uid !== "final" && seg.absolute_start_time && startedAt) {
    return Math.max(0, Date.parse(seg.absolute_start_time) / 1000 - startedAt);
  }
  return Math.max(0, Number(seg.start) || 0);
}

const FINAL_WORDS = {
  queued: "The final transcript is queued.",
  processing: "The final transcript is being made",
  completed: "This is the final transcript, made from the recording after the meeting.",
  failed: "The final transcript could not be made; this is the live one.",
};

export function finalState(meeting) {
  const state = meeting.data?.final_transcript;
  if (!state) return "";
  const words = FINAL_WORDS[state.status] || "";
  return state.status === "processing" ? `${words} (${Math.round((state.progress || 0) * 100)}%).` : words;
}

/** The player panel; the audio is fetched with the API key (an <audio> element cannot send it). */
export function recordingPanel(track) {
  const audio = h("audio", { controls: true, preload: "none", "aria-label": "Meeting recording" });
  const note = h("p", { class: "muted", role: "status", "aria-live": "polite" }, "Loading the recording…");
  let loaded = null;
  const load = () => {
    loaded ||= api(`/recordings/${track.recording.id}/media/${track.media.id}/raw`, { raw: true })
      .then(({ data }) => {
        audio.src = URL.createObjectURL(data);
        note.textContent = `Recording · ${Math.round(track.media.duration_seconds)} s · select a time to play from there`;
      })
      .catch((err) => {
        note.textContent = `The recording could not be loaded: ${err.message}`;
        loaded = null;
      });
    return loaded;
  };
  load();
  const panel = h("section", { class: "panel recording", "aria-label": "Recording" }, h("h2", {}, "Recording"), audio, note);
  const seek = async (seconds) => {
    await load();
    audio.currentTime = seconds;
    try { await audio.play(); } catch { /* autoplay refused: the position is set, the user presses play */ }
  };
  return { panel, audio, seek };
}
