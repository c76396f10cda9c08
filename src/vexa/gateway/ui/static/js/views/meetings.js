import { PLATFORMS, isLive, meetingPath, platformName, reasonWords, statusClass, statusWords } from "../api.js";
import { field, formatDate, h } from "../dom.js";
import { PAGE_SIZE, fetchList, listFilters } from "../meetings-query.js";
const STATUS_FILTERS = [
  ["", "All statuses"],
  ["live", "Live (joining, waiting, active)"],
  ["completed", "Completed"],
  ["failed", "Failed"],
];

function hashFor(filters) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v && !(k === "page" && v === 1)) q.set(k, v);
  const text = q.toString();
  return `#/meetings${text ? `?${text}` : ""}`;
}

function meetingRow(m) {
  const data = m.data || {};
  const live = isLive(m.status);
  const reason = reasonWords(data.completion_reason);
  const title = data.name || m.native_meeting_id || `Meeting ${m.id}`;
  const link = m.native_meeting_id
    ? h("a", { href: `#/meetings${meetingPath(m.platform, m.native_meeting_id)}` }, title)
    : h("span", {}, title, h("span", { class: "muted" }, " (deleted)"));
  const participants = Array.isArray(data.participants) ? data.participants.join(", ") : "";
  return h("tr", { dataset: { meetingId: m.id, status: m.status } },
    h("td", { "data-label": "Meeting" }, link,
      data.name && m.native_meeting_id ? h("div", { class: "muted" }, m.native_meeting_id) : null),
    h("td", { "data-label": "Platform" }, platformName(m.platform)),
    h("td", { "data-label": "Status" },
      live ? h("span", { class: "badge live" }, "LIVE") : null, live ? " " : null,
      h("span", { class: statusClass(m.status) }, statusWords(m.status)),
      reason ? h("div", { class: "muted" }, reason) : null),
    h("td", { "data-label": "Started" }, formatDate(m.start_time || m.created_at)),
    h("td", { "data-label": "Ended" }, formatDate(m.end_time)),
    h("td", { "data-label": "Participants" }, participants || "—"));
}

export async function meetingsView(main, query) {
  const filters = listFilters(query);
  const answered = fetchList(filters);
  const status = field({ label: "Status", name: "status", type: "select", value: filters.status, options: STATUS_FILTERS });
  const platform = field({
    label: "Platform", name: "platform", type: "select", value: filters.platform,
    options: [["", "All platforms"], ...PLATFORMS],
  });
  const go = (changes) => { location.hash = hashFor({ ...filters, ...changes }); };
  status.input.addEventListener("change", () => go({ status: status.input.value, page: 1 }));
  platform.input.addEventListener("change", () => go({ platform: platform.input.value, page: 1 }));

  const summary = h("p", { class: "muted", role: "status" }, "Loading meetings…");
  const tbody = h("tbody");
  const table = h("table", { "aria-describedby": "meetings-summary" },
    h("caption", { class: "visually-hidden" }, "Your meetings, newest first"),
    h("thead", {}, h("tr", {}, ["Meeting", "Platform", "Status", "Started", "Ended", "Participants"]
      .map((t) => h("th", { scope: "col" }, t)))),
    tbody);
  summary.id = "meetings-summary";
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  main.append(
    h("div", { class: "meeting-head" }, h("h1", {}, "Meetings"), h("a", { class: "button", href: "#/new" }, "Start a bot")),
    h("form", { class: "row", role: "search", "aria-label": "Filter meetings", onsubmit: (e) => e.preventDefault() },
      status.wrap, platform.wrap),
    summary, table, pager,
  );

  let answer;
  try {
    answer = await answered;
  } catch (err) {
    summary.textContent = err.message;
    summary.classList.add("error");
    return;
  }
  const meetings = answer.data.meetings || [];
  const total = Number.parseInt(answer.headers.get("X-Total-Count") || String(meetings.length), 10);
  tbody.append(...meetings.map(meetingRow));
  const first = (filters.page - 1) * PAGE_SIZE + 1;
  summary.textContent = total === 0
    ? (filters.status || filters.platform ? "No meetings match these filters." : "No meetings yet: start a bot to record one.")
    : `Showing ${first}–${first + meetings.length - 1} of ${total} meetings`;
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  if (pages > 1) {
    const prev = filters.page > 1
      ? h("a", { class: "button secondary", href: hashFor({ ...filters, page: filters.page - 1 }), rel: "prev" }, "Previous")
      : null;
    const next = filters.page < pages
      ? h("a", { class: "button secondary", href: hashFor({ ...filters, page: filters.page + 1 }), rel: "next" }, "Next")
      : null;
    pager.append(prev || "", h("span", {}, `Page ${filters.page} of ${pages}`), next || "");
  }
  table.dataset.ready = "true";
  return undefined;
}
