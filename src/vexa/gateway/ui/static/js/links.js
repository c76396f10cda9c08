// Meeting links pasted by people -> {platform, nativeId, passcode}; the same id formats the API checks.

export const ID_FORMATS = {
  google_meet: [/^[a-z]{3}-[a-z]{4}-[a-z]{3}$/, "a Google Meet code like abc-defg-hij"],
  zoom: [/^\d{9,11}$/, "a Zoom meeting number of 9 to 11 digits"],
  teams: [/^\d{10,15}$/, "a Teams meeting id of 10 to 15 digits"],
};
const PASSCODE = /^[A-Za-z0-9._-]{1,128}$/;

/** Why this id is not valid for the platform, or "" when it is. */
export function idProblem(platform, nativeId) {
  const format = ID_FORMATS[platform];
  if (!format) return "Choose a platform.";
  if (!nativeId) return "Enter the meeting id.";
  return format[0].test(nativeId) ? "" : `Expected ${format[1]}.`;
}

export function passcodeProblem(passcode) {
  return !passcode || PASSCODE.test(passcode) ? "" : "A passcode is 1 to 128 letters, digits, '.', '_' or '-'.";
}

function fail(error) {
  return { error };
}

/**
 * Parse a Meet, Teams or Zoom link (or a bare Meet code).
 * Returns {platform, nativeId, passcode} or {error} saying what is wrong with it.
 */
export function parseMeetingLink(text) {
  const raw = (text || "").trim();
  if (!raw) return fail("Paste a meeting link.");
  const bare = raw.replace(/\s+/g, "").toLowerCase();
  if (ID_FORMATS.google_meet[0].test(bare)) return { platform: "google_meet", nativeId: bare, passcode: "" };
  let url;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `https://${raw}`);
  } catch {
    return fail("That is not a link. Paste the full meeting link, e.g. https://meet.google.com/abc-defg-hij");
  }
  const host = url.hostname.toLowerCase();
  const parts = url.pathname.split("/").filter(Boolean);
  if (host === "meet.google.com") {
    const code = (parts[0] || "").toLowerCase();
    if (ID_FORMATS.google_meet[0].test(code)) return { platform: "google_meet", nativeId: code, passcode: "" };
    return fail("This Google Meet link has no meeting code (expected meet.google.com/abc-defg-hij).");
  }
  if (host === "zoom.us" || host.endsWith(".zoom.us")) {
    // /j/123, /wc/join/123, /wc/123/join, /s/123
    const number = parts.find((p) => /^\d{9,11}$/.test(p));
    if (!number) return fail("This Zoom link has no meeting number (expected zoom.us/j/12345678901).");
    const pwd = url.searchParams.get("pwd") || "";
    if (passcodeProblem(pwd)) return fail("This Zoom link's passcode has characters Vexa cannot use.");
    return { platform: "zoom", nativeId: number, passcode: pwd };
  }
  if (host === "teams.live.com" || host === "teams.microsoft.com") {
    const idx = parts.indexOf("meet");
    const id = idx >= 0 ? parts[idx + 1] || "" : "";
    if (!/^\d{10,15}$/.test(id)) {
      return fail("This Teams link has no numeric meeting id (expected teams.live.com/meet/1234567890123?p=...); choose Teams below and enter the meeting id and passcode.");
    }
    const p = url.searchParams.get("p") || "";
    if (passcodeProblem(p)) return fail("This Teams link's passcode has characters Vexa cannot use.");
    return { platform: "teams", nativeId: id, passcode: p };
  }
  return fail("Not a Google Meet, Microsoft Teams or Zoom link.");
}
