/* The site's behaviour in the browser, in place of Material for MkDocs' script bundle.
 *
 * Material's bundle (RxJS, 40 KB gzipped) sets up a page in one block of work: on
 * the phone Lighthouse simulates, 300-500 ms during which the page cannot answer a
 * tap. This script does what the site uses of it, and does nearly nothing as a
 * page loads: what can be decided when the site is built is in the HTML already
 * (docs/_hooks/speed.py: copy buttons, table wrappers), the rest waits for the
 * reader (a scroll, a key, a click, the pointer over the search field).
 *
 * - search: the search field and its results, with Material's own search worker
 *   (lunr, the same ranking); the index (2.8 MB, 0.64 MB gzipped) is fetched when
 *   the reader reaches for search, not on every page load;
 * - keyboard: "/", "s" or "f" opens search, arrows move through the results, Enter
 *   follows the best one, Escape closes; "p" and "n" go to the previous and next
 *   page; Enter on a focused section label opens it;
 * - the colour palette switch, the "Copied" message of the copy buttons;
 * - while scrolling: the table of contents marks the section in view (and keeps it
 *   in view, and in the address bar), the header shows the page title and a shadow,
 *   the tabs fold away, the back-to-top button shows when scrolling up;
 * - content tabs with the same label switch together, on this page and the next;
 * - a code block or table too wide for the page can be focused, to scroll it with
 *   the keyboard (checked when it comes into view).
 *
 * The class names, attributes and storage keys are Material's, so its stylesheets
 * and the inline script that restores the palette before the page is drawn work
 * as they are.
 */
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("__config").textContent);
  const base = new URL(config.base, location.href);
  const text = (key, count) => (config.translations[key] || "").replace("#", String(count));
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const toggle = (name) => $(`[data-md-toggle="${name}"]`);
  const isOn = (name) => Boolean(toggle(name)?.checked);
  const tablet = matchMedia("(min-width: 60em)");

  function setToggle(name, value) {
    const input = toggle(name);
    if (input && input.checked !== value) {
      input.checked = value;
      input.dispatchEvent(new Event("change"));
    }
  }

  // --- Messages ("Copied to clipboard") -----------------------------------------

  const dialog = $("[data-md-component=dialog]");
  let dialogTimer = 0;
  function say(message) {
    if (!dialog) return;
    $(".md-dialog__inner", dialog).textContent = message;
    dialog.classList.add("md-dialog--active");
    clearTimeout(dialogTimer);
    dialogTimer = setTimeout(() => dialog.classList.remove("md-dialog--active"), 2000);
  }

  // --- Copy buttons (in the HTML since the build) --------------------------------

  function copyText(code) {
    // Material's rule: what the block shows (innerText), without the prompts and
    // output of a console session, which the stylesheet hides while copying.
    code.setAttribute("data-md-copying", "");
    const copy = code.closest("[data-copy]");
    const value = copy ? copy.getAttribute("data-copy") : code.innerText;
    code.removeAttribute("data-md-copying");
    return value.trimEnd();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest?.("[data-clipboard-target], [data-clipboard-text]");
    if (!button) return;
    const target = button.getAttribute("data-clipboard-target");
    const code = target && document.querySelector(target);
    const value = button.getAttribute("data-clipboard-text") || (code ? copyText(code) : "");
    navigator.clipboard.writeText(value).then(() => {
      button.focus();
      say(text("clipboard.copied"));
    }, () => {});
  });

  // --- Colour palette -------------------------------------------------------------

  function palette() {
    const form = $("[data-md-component=palette]");
    if (!form) return;
    const inputs = $$("input", form);
    const attr = (input, key) => input.getAttribute(`data-md-color-${key}`);
    const saved = __md_get("__palette");
    let index = saved && Number.isInteger(saved.index) ? saved.index
      : inputs.findIndex((input) => matchMedia(attr(input, "media")).matches);
    index = Math.max(0, Math.min(index, inputs.length - 1));

    function apply(store) {
      const chosen = inputs[index];
      let source = chosen;
      if (attr(chosen, "media") === "(prefers-color-scheme)") {
        const light = matchMedia("(prefers-color-scheme: light)").matches;
        source = $(`[data-md-color-media="(prefers-color-scheme: ${light ? "light" : "dark"})"]`, form);
      }
      const color = { media: attr(chosen, "media"), scheme: attr(source, "scheme"),
                      primary: attr(source, "primary"), accent: attr(source, "accent") };
      for (const [key, value] of Object.entries(color)) {
        if (document.body.getAttribute(`data-md-color-${key}`) !== value)
          document.body.setAttribute(`data-md-color-${key}`, value);
      }
      inputs.forEach((input, i) => {
        const label = input.nextElementSibling;
        if (label instanceof HTMLElement) label.hidden = i !== index;
      });
      if (store) __md_set("__palette", { index, color });
    }

    inputs.forEach((input, i) => input.addEventListener("change", () => { index = i; apply(true); }));
    form.addEventListener("keydown", (event) => {  // Enter switches too, like Space
      if (event.key !== "Enter") return;
      event.preventDefault();
      const next = inputs[(index + 1) % inputs.length];
      next.click();
      next.focus();
    });
    matchMedia("(prefers-color-scheme: light)").addEventListener("change", () => apply(false));
    apply(false);
  }

  // The page canvas (around the body, and the scroll bar) follows the palette.
  function canvas() {
    const dark = document.body.getAttribute("data-md-color-scheme") === "slate";
    if (dark || document.documentElement.style.colorScheme)
      document.documentElement.style.colorScheme = dark ? "dark" : "";
  }

  // --- Search -----------------------------------------------------------------------

  const search = {
    el: $("[data-md-component=search]"),
    worker: null,
    ready: false,
    sent: null,
    items: [],
    shown: 0,
  };

  function startSearch() {
    if (search.worker || !search.el) return;
    search.worker = new Worker(new URL(config.search, base));
    search.worker.onmessage = ({ data: message }) => {
      if (message.type === 1) {  // ready
        search.ready = true;
        query();
      } else if (message.type === 3) {  // results
        showResults(message.data.items);
      }
    };
    fetch(new URL("search/search_index.json", base))
      .then((response) => response.json())
      .then(({ config: index, docs }) => search.worker.postMessage({
        type: 0, data: { config: index, docs, options: { suggest: false } } }));
  }

  function query() {
    const value = $(".md-search__input").value;
    if (!search.ready || value === search.sent) return;
    search.sent = value;
    search.worker.postMessage({ type: 2, data: value });
  }

  function renderDocument(doc, parent, teaser) {
    const url = new URL(doc.location, base);
    const link = document.createElement("a");
    link.href = url.href;
    link.className = "md-search-result__link";
    link.tabIndex = -1;
    const article = document.createElement("article");
    article.className = "md-search-result__article md-typeset";
    article.setAttribute("data-md-score", doc.score.toFixed(2));
    // The worker marks the matched words with <mark> in HTML it escapes itself.
    let html = parent ? `<div class="md-search-result__icon md-icon"></div><h1>${doc.title}</h1>`
      : `<h2>${doc.title}</h2>`;
    if (teaser && doc.text.length) html += doc.text;
    article.innerHTML = html;
    if (doc.tags) {
      const tags = document.createElement("nav");
      tags.className = "md-tags";
      tags.setAttribute("role", "none");
      for (const tag of doc.tags) {
        const span = document.createElement("span");
        span.className = "md-tag";
        span.textContent = tag;
        tags.append(span);
      }
      article.append(tags);
    }
    const missing = Object.keys(doc.terms).filter((term) => !doc.terms[term]);
    if (teaser && missing.length) {
      const p = document.createElement("p");
      p.className = "md-search-result__terms";
      p.append(`${text("search.result.term.missing")}: `);
      missing.forEach((term, i) => {
        const del = document.createElement("del");
        del.textContent = term;
        p.append(...(i ? [" ", del] : [del]));
      });
      article.append(p);
    }
    link.append(article);
    return link;
  }

  function renderItem(result) {
    const docs = [...result];
    const threshold = docs[0].score;
    const at = docs.findIndex((doc) => !new URL(doc.location, base).hash);
    const [page] = docs.splice(Math.max(at, 0), 1);
    let split = docs.findIndex((doc) => doc.score < threshold);
    if (split === -1) split = docs.length;
    const item = document.createElement("li");
    item.className = "md-search-result__item";
    item.append(renderDocument(page, true, at === 0 && split === 0));
    for (const doc of docs.slice(0, split)) item.append(renderDocument(doc, false, true));
    const more = docs.slice(split);
    if (more.length) {
      const details = document.createElement("details");
      details.className = "md-search-result__more";
      const summary = document.createElement("summary");
      summary.tabIndex = -1;
      summary.innerHTML = "<div></div>";
      summary.firstChild.textContent = more.length === 1 ? text("search.result.more.one")
        : text("search.result.more.other", more.length);
      details.append(summary, ...more.map((doc) => renderDocument(doc, false, true)));
      item.append(details);
    }
    return item;
  }

  function showResults(items) {
    const meta = $(".md-search-result__meta");
    const list = $(".md-search-result__list");
    const value = $(".md-search__input").value;
    meta.textContent = items.length === 0
      ? text(value.length ? "search.result.none" : "search.result.placeholder")
      : items.length === 1 ? text("search.result.one") : text("search.result.other", items.length);
    list.replaceChildren();
    search.items = items;
    search.shown = 0;
    more(10);
  }

  function more(count) {
    const list = $(".md-search-result__list");
    const next = search.items.slice(search.shown, search.shown + count);
    search.shown += next.length;
    list.append(...next.map(renderItem));
  }

  function setUpSearch() {
    if (!search.el) return;
    const input = $(".md-search__input");
    const list = $(".md-search-result__list");
    const wrap = $(".md-search__scrollwrap");
    const want = (event) => {
      if (event.target.closest?.(".md-search, label[for='__search']")) startSearch();
    };
    for (const type of ["pointerover", "touchstart", "focusin"])
      document.addEventListener(type, want, { capture: true, passive: true });
    toggle("search").addEventListener("change", () => {
      const open = isOn("search");
      if (open) startSearch();
      list.setAttribute("role", open ? "list" : "presentation");
      list.hidden = !open;
      if (!tablet.matches) lockScroll(open);
    });
    input.addEventListener("input", query);
    input.addEventListener("focus", () => setToggle("search", true));
    input.form.addEventListener("reset", () => setTimeout(() => { input.focus(); query(); }));
    input.form.addEventListener("submit", (event) => event.preventDefault());
    $("header [for=__search]")?.addEventListener("click", () => input.focus());
    search.el.addEventListener("click", (event) => {
      if (event.target.closest?.("a")) setToggle("search", false);
    });
    wrap.addEventListener("scroll", () => {  // results beyond the first ten, four at a time
      if (wrap.scrollTop + wrap.clientHeight >= wrap.scrollHeight - 16) more(4);
    }, { passive: true });
    const asked = new URLSearchParams(location.search).get("q");
    if (asked !== null) {  // a link to a search: ?q=...
      setToggle("search", true);
      input.value = asked;
      input.focus();
      toggle("search").addEventListener("change", () => {
        const url = new URL(location.href);
        url.searchParams.delete("q");
        history.replaceState(history.state, "", url);
      }, { once: true });
    }
  }

  // While search covers a phone's screen, the page behind it stays where it was.
  function lockScroll(lock) {
    setTimeout(() => {
      if (lock) {
        document.body.style.top = `-${scrollY}px`;
        document.body.setAttribute("data-md-scrolllock", "");
      } else if (document.body.hasAttribute("data-md-scrolllock")) {
        const y = -parseInt(document.body.style.top, 10);
        document.body.removeAttribute("data-md-scrolllock");
        document.body.style.top = "";
        if (y) scrollTo(0, y);
      }
    }, lock ? 400 : 100);
  }

  // --- Keyboard ---------------------------------------------------------------------

  function typingIn(el, key) {
    if (el instanceof HTMLInputElement) return el.type !== "radio" || /^Arrow/.test(key);
    return el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement || el.isContentEditable;
  }

  let composing = false;
  addEventListener("compositionstart", () => { composing = true; });
  addEventListener("compositionend", () => { composing = false; });

  addEventListener("keydown", (event) => {
    if (event.metaKey || event.ctrlKey || event.altKey || composing) return;
    const input = $(".md-search__input");
    const active = document.activeElement;
    const claim = () => { event.preventDefault(); event.stopPropagation(); };
    if (input && isOn("search")) {
      const links = () => $$(".md-search-result__list :not(details) > [href], " +
        ".md-search-result__list summary, .md-search-result__list details[open] [href]");
      switch (event.key) {
        case "Enter":
          if (active === input) {
            const best = $$(".md-search-result__link").sort((a, b) =>
              parseFloat(b.firstElementChild.getAttribute("data-md-score")) -
              parseFloat(a.firstElementChild.getAttribute("data-md-score")))[0];
            if (best) best.click();
            claim();
          }
          break;
        case "Escape":
        case "Tab":
          setToggle("search", false);
          input.blur();
          break;
        case "ArrowUp":
        case "ArrowDown": {
          const els = [input, ...links()];
          const at = Math.max(0, els.indexOf(active));
          els[(at + els.length + (event.key === "ArrowUp" ? -1 : 1)) % els.length].focus();
          claim();
          break;
        }
        default:
          if (active !== input) input.focus();
      }
      return;
    }
    if (active && active !== document.body && typingIn(active, event.key)) return;
    switch (event.key) {
      case "f":
      case "s":
      case "/":
        if (!input) break;
        input.focus();
        input.select();
        claim();
        break;
      case "p":
      case ",":
      case "n":
      case ".": {
        const link = $(`link[rel=${"p,".includes(event.key) ? "prev" : "next"}]`);
        if (link) location.href = link.href;
        break;
      }
      case "Enter":
        if (active instanceof HTMLLabelElement) active.click();
    }
  });

  // --- Navigation: the sections of the sidebar -------------------------------------

  function sections() {
    // Material's template leaves these toggles checked for readers without scripts;
    // with scripts they start half-open (sections shown on large screens, folded in
    // the phone's drawer) until the reader opens or closes one.
    for (const input of $$(".md-toggle--indeterminate")) {
      input.indeterminate = true;
      input.checked = false;
      input.addEventListener("change", () => {
        if (!input.classList.contains("md-toggle--indeterminate")) return;
        input.classList.remove("md-toggle--indeterminate");
        if (tablet.matches) input.checked = false;
      });
    }
  }

  addEventListener("hashchange", () => setTimeout(() => {
    setToggle("drawer", false);
    setToggle("search", false);
    openTarget();
  }, 125));

  function openTarget() {  // a link to a section inside a collapsed block opens it
    const id = decodeURIComponent(location.hash.slice(1));
    const target = id && document.getElementById(id);
    for (let node = target; node; node = node.parentElement)
      if (node.tagName === "DETAILS") node.open = true;
  }
  addEventListener("beforeprint", () => $$("details").forEach((details) => { details.open = true; }));

  // --- Scrolling: table of contents, header, tabs, back-to-top -----------------------

  const header = $("[data-md-component=header]");
  const headerTitle = $("[data-md-component=header-title]");
  const tabs = $("[data-md-component=tabs]");
  const top = $("[data-md-component=top]");
  const main = $("[data-md-component=main]");
  const heading = $(".md-content .md-typeset h1");
  // The page's table of contents, twice: in the right sidebar and, for small
  // screens, inside the navigation drawer.
  const tocs = $$("[data-md-component=toc]").map((toc) => $$("a.md-nav__link", toc));
  const tocTargets = (tocs[0] || []).map((link) =>
    document.getElementById(decodeURIComponent(link.hash.slice(1))));
  const follow = config.features.includes("toc.follow");
  const track = config.features.includes("navigation.tracking");
  let lastY = 0;  // not read at load: reading the scroll position makes Chromium lay the page out
  let activeSection = -1;
  let queued = false;

  // Everything is measured first, then changed, so that the browser lays the page
  // out once per frame at most.
  function onScroll() {
    queued = false;
    const y = scrollY;
    const headerHeight = header.offsetHeight;
    const pastMain = main.getBoundingClientRect().top <= headerHeight;
    const pastTitle = heading ? heading.getBoundingClientRect().bottom <= headerHeight : false;
    const bottom = y > 0 && y + innerHeight >= document.documentElement.scrollHeight - 2;
    let current = -1;
    tocTargets.forEach((target, i) => {
      if (target && target.getBoundingClientRect().top <= headerHeight + 8) current = i;
    });
    if (bottom && tocTargets.length) current = tocTargets.length - 1;  // the last sections may never reach the top

    header.classList.toggle("md-header--shadow", pastMain);
    headerTitle?.classList.toggle("md-header__title--active", pastTitle);
    if (tabs && tabs.hidden !== y >= 10) tabs.hidden = y >= 10;
    if (top) {
      const hidden = !(pastMain && y < lastY && y > 0);
      if (top.hidden !== hidden) {
        top.hidden = hidden;
        if (hidden) { top.setAttribute("tabindex", "-1"); top.blur(); } else top.removeAttribute("tabindex");
      }
    }
    lastY = y;
    if (current !== activeSection) markSection(current);
  }

  function markSection(current) {
    activeSection = current;
    for (const links of tocs) {
      links.forEach((link, i) => {
        link.classList.toggle("md-nav__link--passed", i < current);
        link.classList.toggle("md-nav__link--active", i === current);
      });
      const link = links[current];
      const wrap = link?.closest(".md-sidebar__scrollwrap");
      if (follow && wrap && wrap.scrollHeight > wrap.clientHeight && link.offsetParent) {
        const offset = link.getBoundingClientRect().top - wrap.getBoundingClientRect().top + wrap.scrollTop;
        wrap.scrollTo({ top: offset - wrap.clientHeight / 2, behavior: "smooth" });
      }
    }
    if (track) {
      const url = new URL(location.href);
      url.hash = current >= 0 ? tocs[0][current].hash : "";
      const href = url.href.replace(/#$/, "");
      if (href !== location.href) history.replaceState(history.state, "", href);
    }
  }

  addEventListener("scroll", () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(onScroll);
  }, { passive: true });

  top?.addEventListener("click", (event) => {
    event.preventDefault();
    scrollTo({ top: 0 });
  });

  // --- Content tabs: the same label switches every set, here and on later pages ----

  function tabbed() {
    const sets = $$(".tabbed-set");
    if (!sets.length) return;
    const labelOf = (input) => $(`label[for="${CSS.escape(input.id)}"]`, input.parentElement)?.textContent.trim();
    const select = (label) => {
      for (const set of sets)
        for (const input of $$(":scope > input", set))
          if (!input.checked && labelOf(input) === label) input.checked = true;
    };
    for (const set of sets) {
      for (const input of $$(":scope > input", set)) {
        input.addEventListener("change", () => {
          const label = labelOf(input);
          if (!label) return;
          select(label);
          const saved = (__md_get("__tabs") || []).filter((each) => each !== label);
          __md_set("__tabs", [...saved, label].slice(-10));
        });
      }
    }
    for (const label of __md_get("__tabs") || []) select(label);
  }

  // --- Wide code blocks and tables can be focused to scroll them -------------------
  // Checked when one comes into view. A code block far from view is not laid out
  // (extra.css) and cannot be measured until it is: it is checked when it comes
  // into view if laid out by then, or else when the browser lays it out. Checked
  // again, for those seen, when the window is resized.

  const seen = new Set();
  function checkWidth(el) {
    seen.add(el);
    if (el.scrollWidth > el.clientWidth) el.setAttribute("tabindex", "0");
    else if (el.hasAttribute("tabindex")) el.removeAttribute("tabindex");
  }
  const laidOut = (el) => !el.firstElementChild || !el.firstElementChild.checkVisibility ||
    el.firstElementChild.checkVisibility({ contentVisibilityAuto: true });
  document.addEventListener("contentvisibilityautostatechange", (event) => {
    if (!event.skipped && event.target.matches("pre > code")) checkWidth(event.target);
  }, true);
  const inView = new IntersectionObserver((entries) => {
    for (const { target, isIntersecting } of entries)
      if (isIntersecting && laidOut(target)) checkWidth(target);
  });
  function watchWidths() {
    for (const el of $$(".md-content pre > code, .md-typeset__scrollwrap")) inView.observe(el);
  }
  let resized = 0;
  addEventListener("resize", () => {
    clearTimeout(resized);
    resized = setTimeout(() => seen.forEach(checkWidth), 250);
  });

  // --- Focus rings for the keyboard ------------------------------------------------
  // Material's stylesheets draw a focus ring only on elements with the class
  // "focus-visible" (from the polyfill its bundle carries): the browser's own
  // :focus-visible decides it here.
  addEventListener("focus", ({ target }) => {
    if (target instanceof Element && target.matches(":focus-visible")) target.classList.add("focus-visible");
  }, true);
  addEventListener("blur", ({ target }) => {
    if (target instanceof Element) target.classList.remove("focus-visible");
  }, true);

  // The page's own entry in a long sidebar is scrolled into view, once the page is drawn.
  function showCurrentPage() {
    const link = $(".md-sidebar--primary .md-nav__link--active");
    const wrap = link?.closest(".md-sidebar__scrollwrap");
    if (!wrap || wrap.scrollHeight <= wrap.clientHeight) return;
    const offset = link.getBoundingClientRect().top - wrap.getBoundingClientRect().top;
    if (offset > wrap.clientHeight - link.offsetHeight) wrap.scrollTop = offset - wrap.clientHeight / 2;
  }

  // The nested lists of the table of contents are <nav>s named after their
  // heading, and two modules of a code-reference page can both have a class
  // "Broker": each nested name gets its parents' names in front, so that every
  // navigation landmark of the page has a name of its own (axe: landmark-unique).
  function nameSections() {
    for (const nav of $$(".md-nav--secondary nav.md-nav")) {
      const names = [nav.getAttribute("aria-label")];
      for (let up = nav.parentElement.closest("nav.md-nav"); up && !up.matches(".md-nav--secondary");
           up = up.parentElement.closest("nav.md-nav"))
        names.unshift(up.getAttribute("data-ed-label") || up.getAttribute("aria-label"));
      nav.setAttribute("data-ed-label", names[names.length - 1]);
      nav.setAttribute("aria-label", names.join(" / "));
    }
  }

  palette();
  canvas();
  nameSections();
  new MutationObserver(canvas).observe(document.body, { attributes: true, attributeFilter: ["data-md-color-scheme"] });
  setUpSearch();
  sections();
  tabbed();
  watchWidths();
  if (location.hash) openTarget();
  (window.requestIdleCallback || setTimeout)(showCurrentPage);
})();
