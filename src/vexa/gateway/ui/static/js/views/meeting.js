import {
  api, isLive, meetingPath, platformName, reasonWords, statusClass, statusWords,
} from "../api.js";
import { field, formatDate, h, setError, toast } from "../dom.js";
import { EXPORTS, download } from "../exports.js";
import { LiveFeed } from "../live.js";
import { finalState, mixedTrack, offsetIn, recordingPanel } from "../recording.js";
import { TranscriptView } from "../transcript.js";

/** One meeting: live while its bot runs, then the past-meeting tools (search, edit, export, delete). */
export async function meetingView(main, platform, nativeId) {
  const path = meetingPath(platform, nativeId);
  const heading = h("h1", {}, nativeId);
  const loading = h("p", { class: "muted", role: "status" }, "Loading the meeting…");
  main.append(heading, loading);

  let meeting;
  try {
    meeting = (await api(`/transcripts${path}`)).data;
  } catch (err) {
    loading.textContent = err.status === 404 ? "This meeting does not exist, or is not yours." : err.message;
    loading.classList.add("error");
    return undefined;
  }
  loading.remove();

  const track = isLive(meeting.status) ? null : mixedTrack(meeting);
  const player = track ? recordingPanel(track) : null;
  const view = new TranscriptView({
    follow: isLive(meeting.status),
    onSeek: player ? (seg) => player.seek(offsetIn(track, seg)) : null,
  });
  view.apply(meeting.segments || []);
  const finalNote = h("p", { class: "muted", "data-testid": "final-state" }, finalState(meeting));

  // --- status ------------------------------------------------------------------------------
  const badge = h("span", { class: "badge live" }, "LIVE");
  const statusText = h("strong");
  const reasonText = h("span", { class: "muted" });
  const statusLine = h("p", { class: "status-line", role: "status", "aria-live": "polite", "data-testid": "status" },
    badge, " ", statusText, " ", reasonText);
  const timeline = h("ol", { class: "timeline", "aria-label": "Status history" });
  const connection = h("span", { class: "muted" });
  const stopButton = h("button", { type: "button", class: "danger" }, "Stop the bot");
  const facts = h("p", { class: "muted" });

  const showStatus = (status, reason) => {
    meeting.status = status;
    statusText.textContent = statusWords(status);
    statusText.className = statusClass(status);
    reasonText.textContent = reason ? `(${reasonWords(reason)})` : "";
    badge.hidden = !isLive(status);
    stopButton.hidden = !isLive(status) || status === "stopping";
    deleteButton.hidden = isLive(status);
    statusLine.dataset.status = status;
  };
  const showTimeline = (transitions) => {
    timeline.replaceChildren(...(transitions || []).map((t) =>
      h("li", {}, `${statusWords(t.to)} · ${formatDate(t.timestamp)}`)));
  };
  const showFacts = () => {
    const data = meeting.data || {};
    const who = Array.isArray(data.participants) && data.participants.length ? data.participants.join(", ") : "—";
    facts.textContent = `${platformName(meeting.platform)} · ${nativeId} · started ${formatDate(meeting.start_time)}`
      + ` · ended ${formatDate(meeting.end_time)} · participants: ${who}`;
    heading.textContent = data.name || nativeId;
    document.title = `${heading.textContent} · Vexa`;
  };

  stopButton.addEventListener("click", async () => {
    stopButton.disabled = true;
    try {
      await api(`/bots${path}`, { method: "DELETE" });
      toast("The bot is leaving the meeting.");
    } catch (err) {
      toast(err.message);
    } finally {
      stopButton.disabled = false;
    }
  });

  // --- search --------------------------------------------------------------------------------
  const search = field({ label: "Search the transcript", name: "search", type: "search", attrs: { autocomplete: "off" } });
  const found = h("p", { class: "muted", role: "status", "aria-live": "polite" });
  search.input.addEventListener("input", () => {
    const n = view.search(search.input.value);
    found.textContent = search.input.value.trim() ? `${n} matching ${n === 1 ? "segment" : "segments"}` : "";
  });

  // --- exports -------------------------------------------------------------------------------
  const exportsGroup = h("div", { class: "toolbar", role: "group", "aria-label": "Export the transcript" },
    h("span", { class: "label" }, "Export:"),
    EXPORTS.map(([format, label]) => h("button", {
      type: "button", class: "secondary", "data-format": format,
      "aria-label": `Export as ${label}`,
      onclick: async () => {
        try { await download(platform, nativeId, format); } catch (err) { toast(err.message); }
      },
    }, label)));

  // --- name and notes ------------------------------------------------------------------------
  const name = field({ label: "Name", name: "name", value: meeting.data?.name || "", attrs: { maxlength: 500 } });
  const notes = field({ label: "Notes", name: "notes", type: "textarea", value: meeting.data?.notes || "" });
  const saveButton = h("button", { type: "submit" }, "Save");
  const editForm = h("form", { class: "panel", "aria-label": "Name and notes", novalidate: true },
    h("h2", {}, "Name and notes"), name.wrap, notes.wrap, saveButton);
  editForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    setError(name, "");
    setError(notes, "");
    saveButton.disabled = true;
    try {
      const { data } = await api(`/meetings${path}`, {
        method: "PATCH", body: { data: { name: name.input.value.trim(), notes: notes.input.value } },
      });
      meeting.data = data.data;
      showFacts();
      toast("Saved.");
    } catch (err) {
      const byField = err.fieldErrors();
      setError(name, byField.name || (byField.notes ? "" : err.message));
      setError(notes, byField.notes || "");
    } finally {
      saveButton.disabled = false;
    }
  });

  // --- delete --------------------------------------------------------------------------------
  const deleteButton = h("button", { type: "button", class: "danger" }, "Delete this meeting");
  const confirmYes = h("button", { type: "button", class: "danger" }, "Delete");
  const confirmNo = h("button", { type: "button", class: "secondary" }, "Cancel");
  const dialog = h("dialog", { "aria-labelledby": "confirm-title" },
    h("h2", { id: "confirm-title" }, "Delete this meeting?"),
    h("p", {}, "Its transcript is deleted for good and the meeting is anonymised. This cannot be undone."),
    h("div", { class: "toolbar" }, confirmYes, confirmNo));
  deleteButton.addEventListener("click", () => dialog.showModal());
  confirmNo.addEventListener("click", () => dialog.close());
  confirmYes.addEventListener("click", async () => {
    confirmYes.disabled = true;
    try {
      await api(`/meetings${path}`, { method: "DELETE" });
      dialog.close();
      toast("Meeting deleted.");
      location.hash = "#/meetings";
    } catch (err) {
      dialog.close();
      toast(err.message);
    } finally {
      confirmYes.disabled = false;
    }
  });

  main.append(
    h("div", { class: "meeting-head" }, h("div", {}, statusLine, connection), h("div", { class: "toolbar" }, stopButton)),
    facts, timeline,
    player ? player.panel : "",
    h("h2", {}, "Transcript"),
    finalNote,
    h("div", { class: "row" }, search.wrap, found),
    view.list,
    h("div", { class: "panel spaced" }, exportsGroup),
    editForm,
    h("div", { class: "toolbar" }, deleteButton),
    dialog,
  );
  showStatus(meeting.status, meeting.data?.completion_reason);
  showTimeline(meeting.data?.status_transition);
  showFacts();

  // --- live updates --------------------------------------------------------------------------
  let feed = null;
  let settle = null;
  const refresh = async () => {
    try {
      const fresh = (await api(`/transcripts${path}`)).data;
      view.apply(fresh.segments || []);
      meeting.data = fresh.data;
      meeting.start_time = fresh.start_time;
      meeting.end_time = fresh.end_time;
      showFacts();
    } catch { /* the live events keep coming; the next refresh will try again */ }
  };
  if (isLive(meeting.status) || (meeting.segments || []).some((s) => s.completed === false)) {
    feed = new LiveFeed(platform, nativeId, {
      onState: (state) => {
        connection.textContent = state === "open" ? "" : state === "denied"
          ? "Live updates refused: sign in again." : "Reconnecting to live updates…";
      },
      onEvent: (event) => {
        if (event.type === "subscribed") {
          refresh(); // anything that happened between the first load and the subscription
        } else if (event.type === "meeting.status") {
          const p = event.payload || {};
          if (p.meeting) {
            meeting.data = p.meeting.data;
            meeting.start_time = p.meeting.start_time;
            meeting.end_time = p.meeting.end_time;
          }
          showStatus(p.status, p.reason);
          showTimeline(meeting.data?.status_transition);
          showFacts();
          if (!isLive(p.status)) {
            clearInterval(settle);
            settle = setInterval(refresh, 3000); // drafts settle a few seconds after the end
            setTimeout(() => clearInterval(settle), 60000);
          }
        } else if (event.type === "transcript.mutable" || event.type === "transcript.finalized") {
          view.apply((event.payload || {}).segments || []);
        }
      },
    });
  }
  return () => {
    if (feed) feed.close();
    clearInterval(settle);
    if (dialog.open) dialog.close();
  };
}
