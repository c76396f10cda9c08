// The meetings list's request, shared by the page and by boot.js, which sends it before the rest of
// the dashboard has loaded (the list then arrives while the modules are still being evaluated).
import { ACTIVE_STATUSES, api } from "./api.js";

export const PAGE_SIZE = 25;

export function listFilters(query) {
  return {
    status: query.get("status") || "",
    platform: query.get("platform") || "",
    page: Math.max(1, Number.parseInt(query.get("page") || "1", 10) || 1),
  };
}

function listQuery(filters) {
  return {
    status: filters.status === "live" ? ACTIVE_STATUSES.join(",") : filters.status,
    platform: filters.platform,
    limit: PAGE_SIZE,
    offset: (filters.page - 1) * PAGE_SIZE,
  };
}

let early = null;
let asked = false;

/** Send the list request now and keep the answer for the page that asks for the same list. */
export function prefetchList(filters) {
  if (asked) return; // the page was quicker: nothing to gain
  const query = listQuery(filters);
  const promise = api("/meetings", { query });
  promise.catch(() => {}); // the page reports errors when it takes the answer
  early = { key: JSON.stringify(query), promise, at: performance.now() };
}

const EARLY_FOR_MS = 5000; // only the first page load uses it: never show a stale list later

/** The list for these filters: the early answer if it was for the same request, else a new one. */
export function fetchList(filters) {
  asked = true;
  const query = listQuery(filters);
  const fresh = early && performance.now() - early.at < EARLY_FOR_MS;
  const mine = fresh && early.key === JSON.stringify(query) ? early.promise : null;
  early = null;
  return mine || api("/meetings", { query });
}
