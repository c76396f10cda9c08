// Finds a meeting page's landmarks for the bot (vexa/bot/page.py evaluates this function).
//
// Selector forms, as the platform adapters write them: plain CSS; `text=Some words` (an element
// whose whitespace-normalised text contains the words, case-insensitively; the innermost such
// element); and CSS ending in `:has-text("words")` (CSS matches whose text contains the words).
// A match counts only while it is visible: a box of non-zero size and not `visibility: hidden`.
// Open shadow roots are searched too (as Playwright's selectors did when the bot used it).
//
// (selectors, action) -> for action
//   "visible": the index of the first selector with a visible match, or -1
//   "click":   that match scrolled into view, and the viewport point at its centre {index, x, y},
//              or null (the bot then presses the mouse there: a trusted click, as a person's)
//   "fill":    that match focused with its text selected (true), or false; the bot then types
(selectors, action) => {
  const norm = (s) => (s || "").replace(/\s+/g, " ").trim().toLowerCase();

  let roots = null; // the document and every open shadow root in it, found once per call
  const allRoots = () => {
    if (!roots) {
      roots = [document];
      for (let i = 0; i < roots.length; i++) {
        for (const el of roots[i].querySelectorAll("*")) if (el.shadowRoot) roots.push(el.shadowRoot);
      }
    }
    return roots;
  };
  const queryAll = (css) => allRoots().flatMap((root) => [...root.querySelectorAll(css)]);

  const innermostWithText = (words) => {
    const found = [];
    const visit = (el) => {
      let inChild = false;
      for (const child of el.children) {
        if (norm(child.textContent).includes(words)) {
          inChild = true;
          visit(child);
        }
      }
      if (!inChild) found.push(el);
    };
    for (const root of allRoots()) {
      const top = root === document ? [document.body].filter(Boolean) : [...root.children];
      for (const el of top) if (norm(el.textContent).includes(words)) visit(el);
    }
    return found;
  };

  const HAS_TEXT = /^(.*):has-text\("((?:[^"\\]|\\.)*)"\)$/;
  const matches = (selector) => {
    if (selector.startsWith("text=")) return innermostWithText(norm(selector.slice(5)));
    const hasText = HAS_TEXT.exec(selector);
    if (hasText) {
      const words = norm(JSON.parse(`"${hasText[2]}"`));
      return queryAll(hasText[1]).filter((el) => norm(el.textContent).includes(words));
    }
    return queryAll(selector);
  };

  const visible = (el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== "hidden";
  };

  for (const [index, selector] of selectors.entries()) {
    const el = matches(selector).find(visible);
    if (!el) continue;
    if (action === "visible") return index;
    if (action === "fill") {
      el.focus();
      if (typeof el.select === "function") el.select();
      return true;
    }
    el.scrollIntoView({ block: "center", inline: "center" });
    const box = el.getBoundingClientRect();
    return { index, x: box.left + box.width / 2, y: box.top + box.height / 2 };
  }
  return action === "visible" ? -1 : action === "fill" ? false : null;
};
