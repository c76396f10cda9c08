// Hash routes -> views. Each view renders into <main> and may return a cleanup function.
import { clear, h } from "./dom.js";
import { session } from "./session.js";
import { adminView } from "./views/admin.js";
import { meetingView } from "./views/meeting.js";
import { meetingsView } from "./views/meetings.js";
import { signInView } from "./views/signin.js";
import { startView } from "./views/start.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let cleanup = null;

const ROUTES = [
  [/^\/signin$/, () => signInView(main)],
  [/^\/admin$/, () => adminView(main)],
  [/^\/new$/, (_, q) => startView(main, q)],
  [/^\/meetings\/([a-z_]+)\/([^/]+)$/, (m) => meetingView(main, decodeURIComponent(m[1]), decodeURIComponent(m[2]))],
  [/^\/meetings$/, (_, q) => meetingsView(main, q)],
];

function parseHash() {
  const hash = location.hash.replace(/^#/, "") || "/meetings";
  const [path, search = ""] = hash.split("?");
  return { path, query: new URLSearchParams(search) };
}

function renderNav(path) {
  const link = (href, text) =>
    h("a", { href, "aria-current": path === href.slice(1) || path.startsWith(`${href.slice(1)}/`) ? "page" : null }, text);
  clear(nav);
  if (session.apiKey) nav.append(link("#/meetings", "Meetings"), link("#/new", "Start a bot"));
  nav.append(link("#/admin", "Admin"), h("span", { class: "spacer" }));
  if (session.apiKey || session.adminKey) {
    nav.append(h("button", {
      type: "button", class: "linklike",
      onclick: () => { session.signOut(); location.hash = "#/signin"; },
    }, "Sign out"));
  } else {
    nav.append(link("#/signin", "Sign in"));
  }
}

async function route() {
  const { path, query } = parseHash();
  if (cleanup) {
    try { cleanup(); } catch { /* a view's cleanup must never block the next view */ }
    cleanup = null;
  }
  const needsUser = !["/signin", "/admin"].includes(path);
  if (needsUser && !session.apiKey) {
    location.replace(`#/signin?next=${encodeURIComponent(path)}`);
    return;
  }
  renderNav(path);
  const match = ROUTES.map(([re, view]) => [path.match(re), view]).find(([m]) => m);
  clear(main);
  if (!match) {
    main.append(h("h1", {}, "Page not found"), h("p", {}, h("a", { href: "#/meetings" }, "Back to your meetings")));
    return;
  }
  const [m, view] = match;
  cleanup = (await view(m, query)) || null;
  if (document.activeElement === document.body || !document.activeElement) main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
route();
