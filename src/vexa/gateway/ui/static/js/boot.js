// Loaded async, ahead of main.js: asks for the meetings list at once when that is the page to show.
import { prefetchList, listFilters } from "./meetings-query.js";
import { session } from "./session.js";

const [path, search = ""] = (location.hash.replace(/^#/, "") || "/meetings").split("?");
if (session.apiKey && path === "/meetings") prefetchList(listFilters(new URLSearchParams(search)));
