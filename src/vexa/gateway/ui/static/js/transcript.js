// The transcript as a live list: drafts are replaced in place and settle when committed.
import { formatClock, h } from "./dom.js";

// Text colours with at least 4.5:1 contrast on white.
const PALETTE = ["#1f5fbf", "#b42318", "#146c2e", "#6d28d9", "#8a4b00", "#0e6374", "#a8205d", "#4a5c0f"];

/** The same name always gets the same colour, in every meeting and after a reload. */
export function speakerColour(name) {
  let hash = 0;
  for (const ch of name || "?") hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

const keyOf = (seg) => `${seg.session_uid || ""}:${Number(seg.start).toFixed(3)}`;
const when = (seg) => (seg.absolute_start_time ? Date.parse(seg.absolute_start_time) / 1000 : Number(seg.start));

export class TranscriptView {
  /** follow: keep the newest line in view (a live meeting) until the reader scrolls up;
   * onSeek(segment): each line's time becomes a button that plays the recording from there. */
  constructor({ follow = false, onSeek = null } = {}) {
    this.onSeek = onSeek;
    this.segments = new Map();
    this.rows = new Map();
    this.origin = null;
    this.query = "";
    this.follow = follow;
    this.stick = follow;
    this.list = h("div", {
      class: "transcript", role: "log", "aria-label": "Transcript", tabindex: "0", "aria-live": "off",
    });
    this.empty = h("p", { class: "muted" }, "No speech transcribed yet.");
    this.jump = h("button", { type: "button", class: "secondary jump", hidden: true, onclick: () => this.scrollToEnd() },
      "Jump to latest");
    this.list.append(this.empty, this.jump);
    this.list.addEventListener("scroll", () => {
      if (!this.follow) return;
      const atEnd = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 32;
      this.stick = atEnd;
      this.jump.hidden = atEnd;
    });
    this.matches = 0;
  }

  /** Add or replace segments (from the API or live events, in the order they were sent): the newest
   * version of a segment wins, as in the API, which may mean a revised draft of a committed one. */
  apply(segments) {
    for (const seg of segments) {
      if (!seg || typeof seg.text !== "string") continue;
      const key = keyOf(seg);
      this.segments.set(key, seg);
      if (seg.completed) this.dropCoveredDrafts(seg, key);
    }
    this.render();
  }

  /** A committed segment replaces the drafts of its session that started inside it. */
  dropCoveredDrafts(seg, key) {
    for (const [other, draft] of this.segments) {
      if (other === key || draft.completed || draft.session_uid !== seg.session_uid) continue;
      if (draft.start >= seg.start && draft.start < seg.end) this.segments.delete(other);
    }
  }

  sorted() {
    return [...this.segments.entries()].sort((a, b) => when(a[1]) - when(b[1]) || a[1].start - b[1].start);
  }

  render() {
    const entries = this.sorted().filter(([, s]) => s.text.trim());
    this.origin = entries.length ? Math.min(...entries.map(([, s]) => when(s))) : null;
    const keep = new Set(entries.map(([k]) => k));
    for (const [key, row] of this.rows) {
      if (!keep.has(key)) {
        row.remove();
        this.rows.delete(key);
      }
    }
    let previous = null;
    for (const [key, seg] of entries) {
      let row = this.rows.get(key);
      if (!row) {
        const time = this.onSeek
          ? h("button", { type: "button", class: "time seek", onclick: () => this.onSeek(this.segments.get(key)) })
          : h("span", { class: "time" });
        row = h("div", { class: "seg" }, time, h("span", { class: "speaker" }), h("span", { class: "text" }));
        this.rows.set(key, row);
      }
      const [time, speaker, text] = row.children;
      const name = seg.speaker || "Unknown speaker";
      time.textContent = formatClock(when(seg) - this.origin);
      if (this.onSeek) time.setAttribute("aria-label", `Play the recording from ${time.textContent}`);
      speaker.textContent = name;
      speaker.style.color = speakerColour(name);
      row.classList.toggle("draft", seg.completed === false);
      row.dataset.speaker = name;
      row.dataset.state = seg.completed === false ? "draft" : "final";
      this.highlight(text, seg.text.trim());
      row.hidden = Boolean(this.query) && !seg.text.toLowerCase().includes(this.query);
      const anchor = previous ? previous.nextSibling : this.list.firstChild;
      if (anchor !== row) this.list.insertBefore(row, anchor);
      previous = row;
    }
    this.empty.hidden = entries.length > 0;
    this.matches = this.query ? entries.filter(([, s]) => s.text.toLowerCase().includes(this.query)).length : 0;
    this.list.append(this.jump);
    if (this.stick) this.scrollToEnd();
  }

  highlight(el, text) {
    if (!this.query) {
      if (el.textContent !== text || el.children.length) el.textContent = text;
      return;
    }
    el.replaceChildren();
    const lower = text.toLowerCase();
    let at = 0;
    for (let i = lower.indexOf(this.query); i >= 0; i = lower.indexOf(this.query, at)) {
      el.append(text.slice(at, i), h("mark", {}, text.slice(i, i + this.query.length)));
      at = i + this.query.length;
    }
    el.append(text.slice(at));
  }

  search(query) {
    this.query = (query || "").trim().toLowerCase();
    this.render();
    return this.matches;
  }

  scrollToEnd() {
    this.list.scrollTop = this.list.scrollHeight;
    this.stick = true;
    this.jump.hidden = true;
  }
}
