import { api } from "../api.js";
import { field, h, setError } from "../dom.js";
import { session } from "../session.js";

export function signInView(main) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const next = params.get("next") || "/meetings";
  const key = field({
    label: "API key", name: "api-key", type: "password",
    hint: "Your Vexa API key. It stays in this browser tab only and is forgotten when the tab closes.",
    attrs: { autocomplete: "off", spellcheck: "false" },
  });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "panel", novalidate: true }, key.wrap, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = key.input.value.trim();
    if (!value) {
      setError(key, "Enter your API key.");
      key.input.focus();
      return;
    }
    submit.disabled = true;
    setError(key, "");
    try {
      await api("/meetings", { key: value, query: { limit: 1 } });
      session.apiKey = value;
      location.hash = `#${next.startsWith("/") && next !== "/signin" ? next : "/meetings"}`;
    } catch (err) {
      const message = err.status === 403 || err.status === 401
        ? "This API key is not valid or has been revoked. Check it, or ask your administrator for a new one."
        : err.message;
      setError(key, message);
      key.input.focus();
    } finally {
      submit.disabled = false;
    }
  });
  main.append(
    h("h1", {}, "Sign in"),
    params.get("expired")
      ? h("p", { class: "error", role: "alert" }, "Your API key is no longer valid (it was revoked). Sign in with a new one.")
      : null,
    form,
    h("p", { class: "muted" }, "Administrators: ", h("a", { href: "#/admin" }, "sign in with the admin key"), "."),
  );
  key.input.focus();
}
