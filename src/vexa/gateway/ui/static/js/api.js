// The public API of the gateway that served this page, with the signed-in key.
import { session } from "./session.js";

export class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.status = status;
    this.detail = detail;
  }

  /** Validation problems by field name (the last part of each "loc"), for errors next to fields. */
  fieldErrors() {
    const out = {};
    if (Array.isArray(this.detail)) {
      for (const item of this.detail) {
        const loc = Array.isArray(item.loc) ? item.loc : [];
        const name = loc.length > 1 ? String(loc[loc.length - 1]) : "_form";
        const msg = String(item.msg || "invalid").replace(/^Value error, /, "");
        out[name] = out[name] ? `${out[name]}; ${msg}` : msg;
      }
    }
    return out;
  }
}

/** 401 (missing or expired key), or a 403 about the key itself (a 403 can also mean "outside the key's scope"). */
function keyRefused(error) {
  return error.status === 401 || (error.status === 403 && /invalid or revoked/i.test(error.message));
}

function describe(status, detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => String(d.msg || d).replace(/^Value error, /, "")).join("; ");
  }
  if (status === 0) return "Cannot reach the Vexa API; check that the gateway is running.";
  return `The request failed (HTTP ${status}).`;
}

/**
 * api("/meetings", {method, body, admin, query, raw}) -> {data, headers, status}
 * Throws ApiError with the server's own words on any non-2xx answer.
 */
export async function api(path, { method = "GET", body, admin = false, query, raw = false, key } = {}) {
  const headers = { Accept: raw ? "*/*" : "application/json" };
  const secret = key ?? (admin ? session.adminKey : session.apiKey);
  if (secret) headers[admin ? "X-Admin-API-Key" : "X-API-Key"] = secret;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") params.set(k, v);
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  let response;
  try {
    response = await fetch(url, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "omit",
    });
  } catch {
    throw new ApiError(0, describe(0));
  }
  if (!response.ok) {
    let detail;
    try { detail = (await response.json()).detail; } catch { detail = undefined; }
    const error = new ApiError(response.status, describe(response.status, detail), detail);
    if (!admin && key === undefined && keyRefused(error)) {
      // The signed-in key was revoked meanwhile: forget it and ask for a new one.
      session.apiKey = null;
      location.hash = "#/signin?expired=1";
    }
    throw error;
  }
  if (raw) return { data: await response.blob(), headers: response.headers, status: response.status };
  const data = response.status === 204 ? null : await response.json();
  return { data, headers: response.headers, status: response.status };
}

export const ACTIVE_STATUSES = ["requested", "joining", "awaiting_admission", "active", "stopping"];
export const isLive = (status) => ACTIVE_STATUSES.includes(status);

export const PLATFORMS = [["google_meet", "Google Meet"], ["teams", "Microsoft Teams"], ["zoom", "Zoom"]];
export const platformName = (p) => (PLATFORMS.find(([v]) => v === p) || [p, p])[1];

const STATUS_WORDS = {
  requested: "Requested",
  joining: "Joining",
  awaiting_admission: "Waiting for admission",
  active: "In the meeting, transcribing",
  stopping: "Leaving",
  completed: "Completed",
  failed: "Failed",
};
const REASON_WORDS = {
  stopped: "stopped on request",
  awaiting_admission_timeout: "nobody admitted the bot in time",
  awaiting_admission_rejected: "the host refused the bot",
  left_alone: "everyone else left",
  evicted: "removed by the host",
  meeting_ended: "the meeting ended",
  max_duration: "reached the maximum duration",
  meeting_not_found: "the meeting does not exist",
  bot_crashed: "the bot stopped unexpectedly",
  join_error: "the bot could not join",
};
export const statusWords = (s) => STATUS_WORDS[s] || s;
export const reasonWords = (r) => (r ? REASON_WORDS[r] || String(r).replaceAll("_", " ") : "");
export const statusClass = (s) =>
  s === "completed" ? "status-completed" : s === "failed" ? "status-failed" : s === "active" ? "status-active" : "status-other";

export const meetingPath = (platform, nativeId) =>
  `/${encodeURIComponent(platform)}/${encodeURIComponent(nativeId)}`;
