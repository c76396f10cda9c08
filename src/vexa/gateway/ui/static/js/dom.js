// Small DOM helpers. Text always goes in through textContent, never through HTML strings.

/** h("a", {href: "#/x", class: "c"}, "text", childNode) -> HTMLElement */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

let uid = 0;
/** A unique element id, for label/aria-describedby pairs. */
export function newId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled form field: returns {wrap, input, error} with the label, hint and error wired up. */
export function field({ label, name, type = "text", hint, value, required, options, attrs = {} }) {
  const id = newId(name);
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  let input;
  if (type === "select") {
    input = h("select", { id, name, ...attrs },
      options.map(([val, text]) => h("option", { value: val, selected: val === value }, text)));
  } else if (type === "textarea") {
    input = h("textarea", { id, name, ...attrs });
    if (value) input.value = value;
  } else {
    input = h("input", { id, name, type, required, ...attrs });
    if (value !== undefined && value !== null) input.value = value;
  }
  input.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  const error = h("p", { class: "error", id: errorId, "aria-live": "polite" });
  const wrap = h("div", { class: "field" },
    h("label", { for: id }, label), hintId ? h("p", { class: "hint", id: hintId }, hint) : null, input, error);
  return { wrap, input, error };
}

export function setError(fieldParts, message) {
  fieldParts.error.textContent = message || "";
  if (message) fieldParts.input.setAttribute("aria-invalid", "true");
  else fieldParts.input.removeAttribute("aria-invalid");
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
export function formatDate(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "—" : dateTime.format(d);
}

/** 75.2 -> "01:15"; 3723 -> "1:02:03" */
export function formatClock(seconds) {
  const total = Math.max(0, Math.floor(seconds || 0));
  const hh = Math.floor(total / 3600);
  const mm = String(Math.floor((total % 3600) / 60)).padStart(2, "0");
  const ss = String(total % 60).padStart(2, "0");
  return hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
}

export function toast(message) {
  const el = document.getElementById("toast");
  el.textContent = message;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.textContent = ""; }, 5000);
}
