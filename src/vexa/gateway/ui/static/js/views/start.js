import { PLATFORMS, api, meetingPath } from "../api.js";
import { field, h, setError } from "../dom.js";
import { idProblem, parseMeetingLink, passcodeProblem } from "../links.js";

const LANGUAGES = [
  ["", "Detect automatically"], ["en", "English"], ["de", "German"], ["es", "Spanish"], ["fr", "French"],
  ["it", "Italian"], ["pt", "Portuguese"], ["nl", "Dutch"], ["pl", "Polish"], ["ru", "Russian"],
  ["uk", "Ukrainian"], ["tr", "Turkish"], ["ar", "Arabic"], ["hi", "Hindi"], ["ja", "Japanese"],
  ["ko", "Korean"], ["zh", "Chinese"],
];

/** "Acme, Kubernetes\nVexa" -> ["Acme", "Kubernetes", "Vexa"] */
export function vocabulary(text) {
  const seen = new Set();
  return (text || "").split(/[\n,]/).map((t) => t.trim()).filter((t) => t && !seen.has(t) && seen.add(t));
}

export function startView(main) {
  const link = field({
    label: "Meeting link", name: "meeting-link",
    hint: "Paste a Google Meet, Microsoft Teams or Zoom link; the platform, id and passcode are filled in from it.",
    attrs: { autocomplete: "off", spellcheck: "false", inputmode: "url" },
  });
  const platform = field({
    label: "Platform", name: "platform", type: "select", value: "google_meet", options: PLATFORMS,
  });
  const nativeId = field({
    label: "Meeting id", name: "native_meeting_id", hint: "e.g. abc-defg-hij for Google Meet",
    attrs: { autocomplete: "off", spellcheck: "false" },
  });
  const passcode = field({ label: "Passcode (optional)", name: "passcode", attrs: { autocomplete: "off" } });
  const botName = field({ label: "Bot name", name: "bot_name", value: "Vexa Notetaker", attrs: { maxlength: 100 } });
  const language = field({ label: "Language", name: "language", type: "select", value: "", options: LANGUAGES });
  const vocab = field({
    label: "Custom vocabulary (optional)", name: "custom_vocabulary", type: "textarea",
    hint: "Names and terms to recognise, one per line or separated by commas.",
  });
  const formError = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit" }, "Send the bot");

  const fields = { platform, native_meeting_id: nativeId, passcode, bot_name: botName, language, custom_vocabulary: vocab };
  const clearErrors = () => {
    for (const f of [link, ...Object.values(fields)]) setError(f, "");
    formError.textContent = "";
  };

  // While typing or pasting, a link that parses fills the fields below; what is wrong with one that
  // does not is said on submit (an error appearing on blur would move the button under the pointer).
  const fillFromLink = ({ report }) => {
    if (!link.input.value.trim()) return true;
    const parsed = parseMeetingLink(link.input.value);
    if (parsed.error) {
      if (report) setError(link, parsed.error);
      return false;
    }
    setError(link, "");
    platform.input.value = parsed.platform;
    nativeId.input.value = parsed.nativeId;
    passcode.input.value = parsed.passcode;
    return true;
  };
  link.input.addEventListener("input", () => fillFromLink({ report: false }));

  const form = h("form", { class: "panel", novalidate: true },
    link.wrap,
    h("fieldset", { class: "grid2 plain" },
      h("legend", { class: "label legend" }, "Or choose the platform and id"),
      platform.wrap, nativeId.wrap, passcode.wrap),
    h("div", { class: "grid2" }, botName.wrap, language.wrap),
    vocab.wrap, formError, submit);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    if (!fillFromLink({ report: true })) {
      link.input.focus();
      return;
    }
    const body = {
      platform: platform.input.value,
      native_meeting_id: nativeId.input.value.trim(),
    };
    const idError = idProblem(body.platform, body.native_meeting_id);
    if (idError) {
      setError(link.input.value.trim() ? link : nativeId, idError);
      (link.input.value.trim() ? link : nativeId).input.focus();
      return;
    }
    const pass = passcode.input.value.trim();
    if (passcodeProblem(pass)) {
      setError(passcode, passcodeProblem(pass));
      passcode.input.focus();
      return;
    }
    if (pass) body.passcode = pass;
    if (botName.input.value.trim()) body.bot_name = botName.input.value.trim();
    if (language.input.value) body.language = language.input.value;
    const terms = vocabulary(vocab.input.value);
    if (terms.length) body.custom_vocabulary = terms; // only when given: older servers ignore nothing else
    submit.disabled = true;
    try {
      await api("/bots", { method: "POST", body });
      location.hash = `#/meetings${meetingPath(body.platform, body.native_meeting_id)}`;
    } catch (err) {
      showError(err);
    } finally {
      submit.disabled = false;
    }
  });

  function showError(err) {
    const where = link.input.value.trim() ? link : nativeId;
    if (err.status === 409) {
      setError(where, `${err.message} Open it from your meetings, or stop that bot first.`);
      where.input.focus();
    } else if ((err.status === 403 || err.status === 429) && /limit/i.test(err.message)) {
      formError.textContent = `${err.message} Stop one of your running bots first.`;
      submit.focus();
    } else if (err.status === 422) {
      const byField = err.fieldErrors();
      let focused = false;
      for (const [name, message] of Object.entries(byField)) {
        const target = name === "native_meeting_id" || name === "platform" ? where : fields[name];
        if (target) {
          setError(target, message);
          if (!focused) { target.input.focus(); focused = true; }
        } else {
          formError.textContent = message;
        }
      }
      if (!focused && !formError.textContent) formError.textContent = err.message;
    } else {
      formError.textContent = err.message;
    }
  }

  main.append(h("h1", {}, "Start a bot"), form);
  link.input.focus();
}
