import { api } from "../api.js";
import { field, formatDate, h, setError, toast } from "../dom.js";
import { session } from "../session.js";

function adminSignIn(main, rerender) {
  const key = field({
    label: "Admin API key", name: "admin-key", type: "password",
    hint: "The ADMIN_API_TOKEN of this installation (vexa up keeps it in VEXA_HOME/admin_token).",
    attrs: { autocomplete: "off", spellcheck: "false" },
  });
  const form = h("form", { class: "panel", novalidate: true }, key.wrap, h("button", { type: "submit" }, "Sign in as admin"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = key.input.value.trim();
    if (!value) {
      setError(key, "Enter the admin API key.");
      key.input.focus();
      return;
    }
    try {
      await api("/admin/users", { admin: true, key: value, query: { limit: 1 } });
      session.adminKey = value;
      rerender();
    } catch (err) {
      setError(key, err.status === 403 || err.status === 401 ? "This admin key is not valid." : err.message);
      key.input.focus();
    }
  });
  main.append(h("h1", {}, "Administration"), form);
  key.input.focus();
}

export async function adminView(main) {
  const rerender = () => { main.replaceChildren(); adminView(main); };
  if (!session.adminKey) {
    adminSignIn(main, rerender);
    return undefined;
  }

  // --- create a user -------------------------------------------------------------------------
  const email = field({ label: "Email", name: "email", type: "email", attrs: { autocomplete: "off" } });
  const name = field({ label: "Name (optional)", name: "name" });
  const maxBots = field({ label: "Concurrent bots", name: "max_concurrent_bots", type: "number", value: "1",
    attrs: { min: 0, max: 1000 } });
  const createForm = h("form", { class: "panel", novalidate: true, "aria-label": "Create a user" },
    h("h2", {}, "Create a user"), h("div", { class: "grid2" }, email.wrap, name.wrap, maxBots.wrap),
    h("button", { type: "submit" }, "Create user"));
  createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const f of [email, name, maxBots]) setError(f, "");
    const body = { email: email.input.value.trim(), max_concurrent_bots: Number(maxBots.input.value || 1) };
    if (name.input.value.trim()) body.name = name.input.value.trim();
    if (!body.email) {
      setError(email, "Enter an email address.");
      email.input.focus();
      return;
    }
    try {
      const { data, status } = await api("/admin/users", { admin: true, method: "POST", body });
      toast(status === 201 ? `Created ${data.email}.` : `${data.email} already exists.`);
      await loadUsers(data.id);
    } catch (err) {
      const byField = err.fieldErrors();
      setError(email, byField.email || (Object.keys(byField).length ? "" : err.message));
      setError(maxBots, byField.max_concurrent_bots || "");
      setError(name, byField.name || "");
    }
  });

  // --- users and tokens ----------------------------------------------------------------------
  const users = h("tbody");
  const tokensPanel = h("section", { class: "panel", "aria-labelledby": "tokens-title" });
  const usersTable = h("table", {},
    h("caption", { class: "visually-hidden" }, "Users"),
    h("thead", {}, h("tr", {}, ["Email", "Name", "Bots", "Created", "Tokens"].map((t) => h("th", { scope: "col" }, t)))),
    users);

  async function showTokens(user) {
    tokensPanel.replaceChildren(h("h2", { id: "tokens-title" }, `API keys of ${user.email}`));
    let tokens;
    try {
      tokens = (await api(`/admin/users/${user.id}/tokens`, { admin: true })).data;
    } catch (err) {
      tokensPanel.append(h("p", { class: "error" }, err.message));
      return;
    }
    const secret = h("div");
    const issue = h("button", { type: "button" }, "Issue a new API key");
    issue.addEventListener("click", async () => {
      try {
        const { data } = await api(`/admin/users/${user.id}/tokens`, { admin: true, method: "POST" });
        await showTokens(user);
        const box = h("input", { class: "secret", readonly: true, id: "new-token", "aria-describedby": "new-token-hint" });
        box.value = data.token;
        const copy = h("button", { type: "button", class: "secondary" }, "Copy");
        copy.addEventListener("click", async () => {
          box.select();
          try { await navigator.clipboard.writeText(data.token); toast("Copied."); } catch { toast("Select the key and copy it."); }
        });
        tokensPanel.querySelector("[data-slot=secret]").replaceChildren(
          h("label", { for: "new-token", class: "label" }, "New API key"),
          h("p", { class: "hint", id: "new-token-hint" }, "Shown once: copy it now. Only its hash is stored."),
          h("div", { class: "row" }, box, copy));
        box.focus();
        box.select();
      } catch (err) {
        toast(err.message);
      }
    });
    const rows = tokens.map((t) => {
      const revoke = h("button", { type: "button", class: "danger", "aria-label": `Revoke key ${t.token_prefix}…` }, "Revoke");
      revoke.disabled = t.revoked;
      revoke.addEventListener("click", async () => {
        try {
          await api(`/admin/tokens/${t.id}`, { admin: true, method: "DELETE" });
          toast(`Key ${t.token_prefix}… revoked.`);
          await showTokens(user);
        } catch (err) {
          toast(err.message);
        }
      });
      return h("tr", { dataset: { tokenId: t.id } },
        h("td", { "data-label": "Key" }, h("code", {}, `${t.token_prefix}…`)),
        h("td", { "data-label": "Created" }, formatDate(t.created_at)),
        h("td", { "data-label": "Last used" }, formatDate(t.last_used_at)),
        h("td", { "data-label": "State" }, t.revoked ? "revoked" : "active"),
        h("td", { "data-label": "Action" }, t.revoked ? "—" : revoke));
    });
    secret.dataset.slot = "secret";
    tokensPanel.append(
      tokens.length
        ? h("table", {}, h("thead", {}, h("tr", {}, ["Key", "Created", "Last used", "State", "Action"]
          .map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows))
        : h("p", { class: "muted" }, "No API keys yet."),
      h("p", {}, issue), secret);
  }

  async function loadUsers(selectId) {
    let list;
    try {
      list = (await api("/admin/users", { admin: true, query: { limit: 1000 } })).data;
    } catch (err) {
      if (err.status === 403) {
        session.adminKey = null;
        rerender();
        return;
      }
      users.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "error" }, err.message)));
      return;
    }
    users.replaceChildren(...list.map((u) => h("tr", { dataset: { userId: u.id } },
      h("td", { "data-label": "Email" }, u.email),
      h("td", { "data-label": "Name" }, u.name || "—"),
      h("td", { "data-label": "Bots" }, String(u.max_concurrent_bots)),
      h("td", { "data-label": "Created" }, formatDate(u.created_at)),
      h("td", { "data-label": "Tokens" }, h("button", {
        type: "button", class: "secondary", "aria-label": `API keys of ${u.email}`, onclick: () => showTokens(u),
      }, "API keys")))));
    const selected = list.find((u) => u.id === selectId);
    if (selected) await showTokens(selected);
  }

  tokensPanel.append(h("h2", { id: "tokens-title" }, "API keys"), h("p", { class: "muted" }, "Choose a user to see and manage their keys."));
  main.append(h("h1", {}, "Administration"), createForm, usersTable, tokensPanel);
  await loadUsers();
  return undefined;
}
