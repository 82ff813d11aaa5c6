/* The site's behaviour in the browser. Material for MkDocs' script bundle is not
 * loaded (overrides/main.html says why); this script does what the site uses of
 * it, and does nearly nothing as a page loads: the rest waits for the reader (a
 * scroll, a key, a click, the pointer over the search field).
 *
 * - search: the search field and its results, run by Material's own search worker
 *   (lunr, the same ranking); the index is large, so it is fetched only when the
 *   reader reaches for search;
 * - keyboard: "/", "s" or "f" opens search, arrows move through the results, Enter
 *   follows the best one, Escape closes; "p" and "n" go to the previous and next
 *   page; Enter on a focused section label opens it;
 * - the colour palette switch, the "Copied" message of the copy buttons (the build
 *   writes the buttons into the HTML);
 * - while scrolling: the table of contents marks the section in view (and keeps it
 *   in view, and in the address bar), the header shows the page title and a shadow,
 *   the tabs fold away, the back-to-top button shows when scrolling up;
 * - content tabs with the same label switch together, on this page and the next;
 * - a code block or table too wide for the page can be focused, to scroll it with
 *   the keyboard (checked when it comes into view).
 *
 * It works on Material's markup and stylesheets, so it must use Material's names:
 * all of them are in the adapter below, and nowhere else.
 */
(() => {
  "use strict";

  // --- Adapter: every name shared with Material for MkDocs --------------------------
  // Written for the Material version below: its templates write the markup, its
  // stylesheets style these classes and attributes, its inline scripts read the
  // palette and tabs from storage, and its search worker answers these messages.
  // tests/site/test_theme_adapter.py finds each entry in the installed theme, and
  // fails when another version is installed: check every entry against it, then
  // update the version.
  const MD = Object.freeze({
    version: "9.8.1",
    // Classes: the markup's, and the states the stylesheets draw.
    cls: Object.freeze({
      content: "md-content",
      typeset: "md-typeset",
      icon: "md-icon",
      dialogInner: "md-dialog__inner",
      dialogActive: "md-dialog--active",
      headerShadow: "md-header--shadow",
      headerTitleActive: "md-header__title--active",
      nav: "md-nav",
      navSecondary: "md-nav--secondary",
      navLink: "md-nav__link",
      navLinkPassed: "md-nav__link--passed",
      navLinkActive: "md-nav__link--active",
      sidebarPrimary: "md-sidebar--primary",
      sidebarScrollwrap: "md-sidebar__scrollwrap",
      toggleIndeterminate: "md-toggle--indeterminate",
      search: "md-search",
      searchInput: "md-search__input",
      searchScrollwrap: "md-search__scrollwrap",
      resultMeta: "md-search-result__meta",
      resultList: "md-search-result__list",
      resultItem: "md-search-result__item",
      resultLink: "md-search-result__link",
      resultArticle: "md-search-result__article",
      resultIcon: "md-search-result__icon",
      resultTerms: "md-search-result__terms",
      resultMore: "md-search-result__more",
      tags: "md-tags",
      tag: "md-tag",
      tableScrollwrap: "md-typeset__scrollwrap",
      tabbedSet: "tabbed-set",
      focusVisible: "focus-visible",
    }),
    // Values of data-md-component: the parts of the page.
    component: Object.freeze({
      dialog: "dialog",
      palette: "palette",
      search: "search",
      header: "header",
      headerTitle: "header-title",
      tabs: "tabs",
      top: "top",
      main: "main",
      toc: "toc",
    }),
    // Values of data-md-toggle: the checkboxes that open and close the search
    // and the navigation drawer.
    toggle: Object.freeze({
      search: "search",
      drawer: "drawer",
    }),
    // Element ids: the page's settings, the search checkbox.
    id: Object.freeze({
      config: "__config",
      searchToggle: "__search",
    }),
    attr: Object.freeze({
      component: "data-md-component",
      toggle: "data-md-toggle",
      copying: "data-md-copying",  // hides a console session's prompts and output while copying
      copy: "data-copy",  // on a block or around it: the text to copy in place of what it shows
      score: "data-md-score",  // a search result's score
      scrollLock: "data-md-scrolllock",  // fixes the page while search covers a phone's screen
      clipboardTarget: "data-clipboard-target",  // a copy button's code block
      clipboardText: "data-clipboard-text",  // a copy button's own text
    }),
    // The palette's attributes on <body>, which the stylesheets read, keyed by
    // their names in the stored palette.
    color: Object.freeze({
      media: "data-md-color-media",
      scheme: "data-md-color-scheme",
      primary: "data-md-color-primary",
      accent: "data-md-color-accent",
    }),
    palette: Object.freeze({
      systemMedia: "(prefers-color-scheme)",  // the choice that follows the system
      lightMedia: "(prefers-color-scheme: light)",  // the choice whose colours it takes when light
      darkMedia: "(prefers-color-scheme: dark)",  // and when dark
      darkScheme: "slate",  // with it, the page canvas goes dark too
      index: "index",  // stored: the chosen input
      color: "color",  // stored: its colours, restored by the theme before drawing
    }),
    // Storage: the theme's functions (a key per site) and keys.
    storage: Object.freeze({
      get: "__md_get",
      set: "__md_set",
      palette: "__palette",
      tabs: "__tabs",
    }),
    // Keys of the page's settings.
    config: Object.freeze({
      base: "base",
      features: "features",
      translations: "translations",
      worker: "search",  // the search worker's address
    }),
    feature: Object.freeze({
      tocFollow: "toc.follow",
      tracking: "navigation.tracking",
    }),
    // Keys of the translated texts, and the mark a count replaces in them.
    text: Object.freeze({
      copied: "clipboard.copied",
      placeholder: "search.result.placeholder",
      none: "search.result.none",
      one: "search.result.one",
      other: "search.result.other",
      moreOne: "search.result.more.one",
      moreOther: "search.result.more.other",
      missing: "search.result.term.missing",
      count: "#",
    }),
    search: Object.freeze({
      index: "search/search_index.json",
      param: "q",  // a link to a search: ?q=...
    }),
    // Below this width, search covers the screen.
    media: Object.freeze({
      tablet: "(min-width: 60em)",
    }),
    // The search worker's message types.
    message: Object.freeze({
      setup: 0,
      ready: 1,
      query: 2,
      result: 3,
    }),
    // Fields of the search worker's messages and results.
    field: Object.freeze({
      type: "type",
      data: "data",
      config: "config",
      docs: "docs",
      options: "options",
      suggest: "suggest",
      items: "items",
      location: "location",
      score: "score",
      title: "title",
      text: "text",
      tags: "tags",
      terms: "terms",
    }),
  });

  const F = MD.field;
  const settings = JSON.parse(document.getElementById(MD.id.config).textContent);
  const base = new URL(settings[MD.config.base], location.href);
  const features = settings[MD.config.features];
  const text = (key, count) =>
    (settings[MD.config.translations][key] || "").replace(MD.text.count, String(count));
  const load = (key) => window[MD.storage.get](key);
  const store = (key, value) => window[MD.storage.set](key, value);
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const component = (name) => $(`[${MD.attr.component}="${name}"]`);
  const toggle = (name) => $(`[${MD.attr.toggle}="${name}"]`);
  const isOn = (name) => Boolean(toggle(name)?.checked);
  const tablet = matchMedia(MD.media.tablet);

  function setToggle(name, value) {
    const input = toggle(name);
    if (input && input.checked !== value) {
      input.checked = value;
      input.dispatchEvent(new Event("change"));
    }
  }

  // --- Messages ("Copied to clipboard") -----------------------------------------

  const dialog = component(MD.component.dialog);
  let dialogTimer = 0;
  function say(message) {
    if (!dialog) return;
    $(`.${MD.cls.dialogInner}`, dialog).textContent = message;
    dialog.classList.add(MD.cls.dialogActive);
    clearTimeout(dialogTimer);
    dialogTimer = setTimeout(() => dialog.classList.remove(MD.cls.dialogActive), 2000);
  }

  // --- Copy buttons (written into the HTML by the build) ---------------------------

  function copyText(code) {
    // What the block shows (innerText), less the prompts and output of a console
    // session, which the stylesheet hides while the copying attribute is set; or
    // the text a copy attribute on the block or around it gives.
    code.setAttribute(MD.attr.copying, "");
    const copy = code.closest(`[${MD.attr.copy}]`);
    const value = copy ? copy.getAttribute(MD.attr.copy) : code.innerText;
    code.removeAttribute(MD.attr.copying);
    return value.trimEnd();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest?.(`[${MD.attr.clipboardTarget}], [${MD.attr.clipboardText}]`);
    if (!button) return;
    const target = button.getAttribute(MD.attr.clipboardTarget);
    const code = target && document.querySelector(target);
    const value = button.getAttribute(MD.attr.clipboardText) || (code ? copyText(code) : "");
    navigator.clipboard.writeText(value).then(() => {
      button.focus();
      say(text(MD.text.copied));
    }, () => {});
  });

  // --- Colour palette -------------------------------------------------------------

  function palette() {
    const form = component(MD.component.palette);
    if (!form) return;
    const inputs = $$("input", form);
    const saved = load(MD.storage.palette);
    let index = saved && Number.isInteger(saved[MD.palette.index]) ? saved[MD.palette.index]
      : inputs.findIndex((input) => matchMedia(input.getAttribute(MD.color.media)).matches);
    index = Math.max(0, Math.min(index, inputs.length - 1));

    function apply(remember) {
      const chosen = inputs[index];
      let source = chosen;
      if (chosen.getAttribute(MD.color.media) === MD.palette.systemMedia) {
        const light = matchMedia(MD.palette.lightMedia).matches;
        source = $(`[${MD.color.media}="${light ? MD.palette.lightMedia : MD.palette.darkMedia}"]`, form);
      }
      // The media query is the chosen input's; the colours are those it stands for.
      const color = {};
      for (const [key, name] of Object.entries(MD.color))
        color[key] = (name === MD.color.media ? chosen : source).getAttribute(name);
      for (const [key, name] of Object.entries(MD.color)) {
        if (document.body.getAttribute(name) !== color[key]) document.body.setAttribute(name, color[key]);
      }
      inputs.forEach((input, i) => {
        const label = input.nextElementSibling;
        if (label instanceof HTMLElement) label.hidden = i !== index;
      });
      if (remember) store(MD.storage.palette, { [MD.palette.index]: index, [MD.palette.color]: color });
    }

    inputs.forEach((input, i) => input.addEventListener("change", () => { index = i; apply(true); }));
    form.addEventListener("keydown", (event) => {  // Enter switches too, like Space
      if (event.key !== "Enter") return;
      event.preventDefault();
      const next = inputs[(index + 1) % inputs.length];
      next.click();
      next.focus();
    });
    matchMedia(MD.palette.lightMedia).addEventListener("change", () => apply(false));
    apply(false);
  }

  // The page canvas (around the body, and the scroll bar) follows the palette.
  function canvas() {
    const dark = document.body.getAttribute(MD.color.scheme) === MD.palette.darkScheme;
    if (dark || document.documentElement.style.colorScheme)
      document.documentElement.style.colorScheme = dark ? "dark" : "";
  }

  // --- Search -----------------------------------------------------------------------

  const search = {
    el: component(MD.component.search),
    worker: null,
    ready: false,
    sent: null,
    items: [],
    shown: 0,
  };

  function startSearch() {
    if (search.worker || !search.el) return;
    search.worker = new Worker(new URL(settings[MD.config.worker], base));
    search.worker.onmessage = ({ data: message }) => {
      if (message[F.type] === MD.message.ready) {
        search.ready = true;
        query();
      } else if (message[F.type] === MD.message.result) {
        showResults(message[F.data][F.items]);
      }
    };
    fetch(new URL(MD.search.index, base))
      .then((response) => response.json())
      .then((index) => search.worker.postMessage({
        [F.type]: MD.message.setup,
        [F.data]: { [F.config]: index[F.config], [F.docs]: index[F.docs], [F.options]: { [F.suggest]: false } },
      }));
  }

  function query() {
    const value = $(`.${MD.cls.searchInput}`).value;
    if (!search.ready || value === search.sent) return;
    search.sent = value;
    search.worker.postMessage({ [F.type]: MD.message.query, [F.data]: value });
  }

  function renderDocument(doc, parent, teaser) {
    const url = new URL(doc[F.location], base);
    const link = document.createElement("a");
    link.href = url.href;
    link.className = MD.cls.resultLink;
    link.tabIndex = -1;
    const article = document.createElement("article");
    article.className = `${MD.cls.resultArticle} ${MD.cls.typeset}`;
    article.setAttribute(MD.attr.score, doc[F.score].toFixed(2));
    // The worker marks the matched words with <mark> in HTML it escapes itself.
    let html = parent ? `<div class="${MD.cls.resultIcon} ${MD.cls.icon}"></div><h1>${doc[F.title]}</h1>`
      : `<h2>${doc[F.title]}</h2>`;
    if (teaser && doc[F.text].length) html += doc[F.text];
    article.innerHTML = html;
    for (const code of $$("pre > code", article)) trimCode(code);
    // Of a page's tags, those the query matched, marked as the text is: a reader
    // scans three chips, not sixteen.
    const matched = (doc[F.tags] || []).filter((tag) => tag.includes("<mark>")).slice(0, 3);
    if (matched.length) {
      const tags = document.createElement("nav");
      tags.className = MD.cls.tags;
      tags.setAttribute("role", "none");
      for (const tag of matched) {
        const span = document.createElement("span");
        span.className = MD.cls.tag;
        span.append(...marked(tag));
        tags.append(span);
      }
      article.append(tags);
    }
    const terms = doc[F.terms];
    const missing = Object.keys(terms).filter((term) => !terms[term]);
    if (teaser && missing.length) {
      const p = document.createElement("p");
      p.className = MD.cls.resultTerms;
      p.append(`${text(MD.text.missing)}: `);
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

  // The worker escapes the text it returns and wraps each word found in <mark>: as
  // nodes, a <mark> element for each of those and text for the rest.
  function marked(escaped) {
    const decode = (part) => new DOMParser().parseFromString(part, "text/html").documentElement.textContent;
    return escaped.split(/(<mark>.*?<\/mark>)/).filter(Boolean).map((part) => {
      if (!part.startsWith("<mark>")) return document.createTextNode(decode(part));
      const mark = document.createElement("mark");
      mark.textContent = decode(part.slice(6, -7));
      return mark;
    });
  }

  // A code block in a result shows the lines where words were found, at most three,
  // with an ellipsis where lines are left out; a block with none is left out.
  function trimCode(code) {
    const lines = code.innerHTML.split("\n");
    const hits = lines.flatMap((line, i) => (line.includes("<mark>") ? [i] : [])).slice(0, 3);
    if (!hits.length) {
      code.parentElement.remove();
      return;
    }
    code.innerHTML = hits.map((i, k) => (k && i > hits[k - 1] + 1 ? "…\n" : "") + lines[i]).join("\n")
      + (hits[hits.length - 1] < lines.length - 1 ? "\n…" : "");
  }

  // One page's results: the page itself first, then its sections that score as
  // high as the best, then the rest folded under "more".
  function renderItem(result) {
    const docs = [...result];
    const threshold = docs[0][F.score];
    const at = docs.findIndex((doc) => !new URL(doc[F.location], base).hash);
    const [page] = docs.splice(Math.max(at, 0), 1);
    let split = docs.findIndex((doc) => doc[F.score] < threshold);
    if (split === -1) split = docs.length;
    const item = document.createElement("li");
    item.className = MD.cls.resultItem;
    item.append(renderDocument(page, true, at === 0 && split === 0));
    for (const doc of docs.slice(0, split)) item.append(renderDocument(doc, false, true));
    const more = docs.slice(split);
    if (more.length) {
      const details = document.createElement("details");
      details.className = MD.cls.resultMore;
      const summary = document.createElement("summary");
      summary.tabIndex = -1;
      summary.innerHTML = "<div></div>";
      summary.firstChild.textContent = more.length === 1 ? text(MD.text.moreOne)
        : text(MD.text.moreOther, more.length);
      details.append(summary, ...more.map((doc) => renderDocument(doc, false, true)));
      item.append(details);
    }
    return item;
  }

  function showResults(items) {
    const meta = $(`.${MD.cls.resultMeta}`);
    const list = $(`.${MD.cls.resultList}`);
    const value = $(`.${MD.cls.searchInput}`).value;
    meta.textContent = items.length === 0
      ? text(value.length ? MD.text.none : MD.text.placeholder)
      : items.length === 1 ? text(MD.text.one) : text(MD.text.other, items.length);
    list.replaceChildren();
    search.items = items;
    search.shown = 0;
    more(10);
  }

  function more(count) {
    const list = $(`.${MD.cls.resultList}`);
    const next = search.items.slice(search.shown, search.shown + count);
    search.shown += next.length;
    list.append(...next.map(renderItem));
  }

  function setUpSearch() {
    if (!search.el) return;
    const input = $(`.${MD.cls.searchInput}`);
    const list = $(`.${MD.cls.resultList}`);
    const wrap = $(`.${MD.cls.searchScrollwrap}`);
    // The worker starts as soon as the reader comes near search.
    const want = (event) => {
      if (event.target.closest?.(`.${MD.cls.search}, label[for='${MD.id.searchToggle}']`)) startSearch();
    };
    for (const type of ["pointerover", "touchstart", "focusin"])
      document.addEventListener(type, want, { capture: true, passive: true });
    toggle(MD.toggle.search).addEventListener("change", () => {
      const open = isOn(MD.toggle.search);
      if (open) startSearch();
      list.setAttribute("role", open ? "list" : "presentation");
      list.hidden = !open;
      if (!tablet.matches) lockScroll(open);
    });
    input.addEventListener("input", query);
    input.addEventListener("focus", () => setToggle(MD.toggle.search, true));
    input.form.addEventListener("reset", () => setTimeout(() => { input.focus(); query(); }));
    input.form.addEventListener("submit", (event) => event.preventDefault());
    $(`header [for=${MD.id.searchToggle}]`)?.addEventListener("click", () => input.focus());
    search.el.addEventListener("click", (event) => {
      if (event.target.closest?.("a")) setToggle(MD.toggle.search, false);
    });
    wrap.addEventListener("scroll", () => {  // results beyond the first ten, four at a time
      if (wrap.scrollTop + wrap.clientHeight >= wrap.scrollHeight - 16) more(4);
    }, { passive: true });
    const asked = new URLSearchParams(location.search).get(MD.search.param);
    if (asked !== null) {  // a link to a search
      setToggle(MD.toggle.search, true);
      input.value = asked;
      input.focus();
      toggle(MD.toggle.search).addEventListener("change", () => {
        const url = new URL(location.href);
        url.searchParams.delete(MD.search.param);
        history.replaceState(history.state, "", url);
      }, { once: true });
    }
  }

  // While search covers a phone's screen, the page behind it stays where it was.
  function lockScroll(lock) {
    setTimeout(() => {
      if (lock) {
        document.body.style.top = `-${scrollY}px`;
        document.body.setAttribute(MD.attr.scrollLock, "");
      } else if (document.body.hasAttribute(MD.attr.scrollLock)) {
        const y = -parseInt(document.body.style.top, 10);
        document.body.removeAttribute(MD.attr.scrollLock);
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
    const input = $(`.${MD.cls.searchInput}`);
    const active = document.activeElement;
    const claim = () => { event.preventDefault(); event.stopPropagation(); };
    if (input && isOn(MD.toggle.search)) {
      const list = `.${MD.cls.resultList}`;
      const links = () => $$(`${list} :not(details) > [href], ${list} summary, ${list} details[open] [href]`);
      switch (event.key) {
        case "Enter":
          if (active === input) {
            const best = $$(`.${MD.cls.resultLink}`).sort((a, b) =>
              parseFloat(b.firstElementChild.getAttribute(MD.attr.score)) -
              parseFloat(a.firstElementChild.getAttribute(MD.attr.score)))[0];
            if (best) best.click();
            claim();
          }
          break;
        case "Escape":
        case "Tab":
          setToggle(MD.toggle.search, false);
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
    // The template leaves these toggles checked for readers without scripts; with
    // scripts they start half-open (sections shown on large screens, folded in the
    // phone's drawer) until the reader opens or closes one.
    for (const input of $$(`.${MD.cls.toggleIndeterminate}`)) {
      input.indeterminate = true;
      input.checked = false;
      input.addEventListener("change", () => {
        if (!input.classList.contains(MD.cls.toggleIndeterminate)) return;
        input.classList.remove(MD.cls.toggleIndeterminate);
        if (tablet.matches) input.checked = false;
      });
    }
  }

  // Following a link within the page closes the drawer and search.
  addEventListener("hashchange", () => setTimeout(() => {
    setToggle(MD.toggle.drawer, false);
    setToggle(MD.toggle.search, false);
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

  const header = component(MD.component.header);
  const headerTitle = component(MD.component.headerTitle);
  const tabs = component(MD.component.tabs);
  const top = component(MD.component.top);
  const main = component(MD.component.main);
  const heading = $(`.${MD.cls.content} .${MD.cls.typeset} h1`);
  // The page's table of contents, twice: in the right sidebar and, for small
  // screens, inside the navigation drawer.
  const tocs = $$(`[${MD.attr.component}="${MD.component.toc}"]`).map((toc) => $$(`a.${MD.cls.navLink}`, toc));
  const tocTargets = (tocs[0] || []).map((link) =>
    document.getElementById(decodeURIComponent(link.hash.slice(1))));
  const follow = features.includes(MD.feature.tocFollow);
  const track = features.includes(MD.feature.tracking);
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

    header.classList.toggle(MD.cls.headerShadow, pastMain);
    headerTitle?.classList.toggle(MD.cls.headerTitleActive, pastTitle);
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
        link.classList.toggle(MD.cls.navLinkPassed, i < current);
        link.classList.toggle(MD.cls.navLinkActive, i === current);
      });
      const link = links[current];
      const wrap = link?.closest(`.${MD.cls.sidebarScrollwrap}`);
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
  // The last ten labels chosen are stored, under the key the theme's inline script
  // reads to choose them again before the page is drawn.

  function tabbed() {
    const sets = $$(`.${MD.cls.tabbedSet}`);
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
          const saved = (load(MD.storage.tabs) || []).filter((each) => each !== label);
          store(MD.storage.tabs, [...saved, label].slice(-10));
        });
      }
    }
    for (const label of load(MD.storage.tabs) || []) select(label);
  }

  // --- Wide code blocks and tables can be focused to scroll them -------------------
  // A keyboard user tabbing down a page must reach every block too wide for it, so
  // each is checked as soon as the page runs, not when it comes into view. A code
  // block far from view is not laid out (extra.css), so its scrolling width is not
  // known yet: it is reckoned from its widest line in characters (--ed-cols, from
  // the build) and the width of a character of its font; once the browser lays it
  // out, it is measured too. A block not shown (a closed <details>, an
  // unselected tab) has no width: it is checked when it is shown. All are checked
  // again when the window is resized or the fonts have loaded.

  const shown = new Set();
  const charWidths = new Map();
  function charWidth(style) {
    const font = `${style.fontStyle} ${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    if (!charWidths.has(font)) {
      const context = document.createElement("canvas").getContext("2d");
      context.font = font;
      charWidths.set(font, context.measureText("0".repeat(100)).width / 100);
    }
    return charWidths.get(font);
  }
  function tooWide(el) {
    if (el.scrollWidth > el.clientWidth) return true;  // laid out, and too wide
    const style = getComputedStyle(el);  // or perhaps not laid out: reckoned
    const columns = parseFloat(style.getPropertyValue("--ed-cols")) || 0;
    const needed = columns * charWidth(style) + parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
    return needed > el.clientWidth - 1;  // a pixel to spare: a stop too many, never one too few
  }
  function checkWidth(el) {
    if (!el.clientWidth) return;  // not shown
    shown.add(el);
    if (tooWide(el)) el.setAttribute("tabindex", "0");
    else if (el.hasAttribute("tabindex")) el.removeAttribute("tabindex");
  }
  const wide = () => $$(`.${MD.cls.content} pre > code, .${MD.cls.tableScrollwrap}`);
  document.addEventListener("contentvisibilityautostatechange", (event) => {
    if (!event.skipped && event.target.matches("pre > code")) checkWidth(event.target);
  }, true);
  document.addEventListener("toggle", (event) => {  // a <details> opened: its blocks are shown
    if (event.target.open) for (const el of wide()) if (event.target.contains(el)) checkWidth(el);
  }, true);
  const inView = new IntersectionObserver((entries) => {  // a tab selected, among others
    for (const { target, isIntersecting } of entries) if (isIntersecting) checkWidth(target);
  });
  function watchWidths() {
    for (const el of wide()) {
      checkWidth(el);
      inView.observe(el);
    }
    document.fonts?.ready.then(() => shown.forEach(checkWidth));
  }
  let resized = 0;
  addEventListener("resize", () => {
    clearTimeout(resized);
    resized = setTimeout(() => shown.forEach(checkWidth), 250);
  });

  // --- Focus rings for the keyboard ------------------------------------------------
  // The stylesheets hide the outline of a focused element without this class: it
  // is set as the browser's own :focus-visible decides, so that the keyboard
  // shows a focus ring and the mouse does not.
  addEventListener("focus", ({ target }) => {
    if (target instanceof Element && target.matches(":focus-visible")) target.classList.add(MD.cls.focusVisible);
  }, true);
  addEventListener("blur", ({ target }) => {
    if (target instanceof Element) target.classList.remove(MD.cls.focusVisible);
  }, true);

  // The page's own entry in a long sidebar is scrolled into view, once the page is drawn.
  function showCurrentPage() {
    const link = $(`.${MD.cls.sidebarPrimary} .${MD.cls.navLinkActive}`);
    const wrap = link?.closest(`.${MD.cls.sidebarScrollwrap}`);
    if (!wrap || wrap.scrollHeight <= wrap.clientHeight) return;
    const offset = link.getBoundingClientRect().top - wrap.getBoundingClientRect().top;
    if (offset > wrap.clientHeight - link.offsetHeight) wrap.scrollTop = offset - wrap.clientHeight / 2;
  }

  // The nested lists of the table of contents are <nav>s named after their
  // heading, and two modules of a code-reference page can both have a class
  // "Broker": each nested name gets its parents' names in front, so that every
  // navigation landmark of the page has a name of its own (axe: landmark-unique).
  function nameSections() {
    const nav = `nav.${MD.cls.nav}`;
    for (const each of $$(`.${MD.cls.navSecondary} ${nav}`)) {
      const names = [each.getAttribute("aria-label")];
      for (let up = each.parentElement.closest(nav); up && !up.matches(`.${MD.cls.navSecondary}`);
           up = up.parentElement.closest(nav))
        names.unshift(up.getAttribute("data-ed-label") || up.getAttribute("aria-label"));
      each.setAttribute("data-ed-label", names[names.length - 1]);
      each.setAttribute("aria-label", names.join(" / "));
    }
  }

  palette();
  canvas();
  nameSections();
  new MutationObserver(canvas).observe(document.body, { attributes: true, attributeFilter: [MD.color.scheme] });
  setUpSearch();
  sections();
  tabbed();
  watchWidths();
  if (location.hash) openTarget();
  (window.requestIdleCallback || setTimeout)(showCurrentPage);
})();
