// What the Zensical build's pages need beyond Zensical's own theme and script, for
// keyboard and screen-reader users (the MkDocs build gets the same from site.js and
// its templates). Only the Zensical build loads this file (sitebuild/zensical.py).
//
// - A code block or table too wide for the page can be focused, so the arrow keys
//   can scroll it: checked as the page loads, when the window is resized, when a
//   <details> opens and when one comes into view (a tab selected, among others).
// - Every navigation landmark has a name of its own: a section's nested navigation
//   is named after its title (Zensical points it at a label holding only an icon);
//   the nested lists of the table of contents carry their parents' names in front,
//   as two sections of a page may share a title; a code block's toolbar of buttons,
//   a <nav> in Zensical, is not a landmark.
(() => {
  "use strict";

  const WIDE = ".md-content pre > code, .md-typeset__scrollwrap";

  function checkWidth(el) {
    if (!el.clientWidth) return;  // not shown: checked when it is
    if (el.scrollWidth > el.clientWidth) el.setAttribute("tabindex", "0");
    else if (el.hasAttribute("tabindex")) el.removeAttribute("tabindex");
  }
  const checkAll = (root = document) => root.querySelectorAll(WIDE).forEach(checkWidth);
  const inView = new IntersectionObserver((entries) => {
    for (const { target, isIntersecting } of entries) if (isIntersecting) checkWidth(target);
  });

  function nameLandmarks() {
    for (const nav of document.querySelectorAll("nav[aria-labelledby]")) {
      const label = document.getElementById(nav.getAttribute("aria-labelledby"));
      const title = nav.querySelector(":scope > .md-nav__title");
      if (label && !label.textContent.trim() && title && title.textContent.trim()) {
        nav.removeAttribute("aria-labelledby");
        nav.setAttribute("aria-label", title.textContent.trim());
      }
    }
    for (const nav of document.querySelectorAll(".md-nav--secondary nav.md-nav[aria-label]")) {
      if (nav.hasAttribute("data-ed-label")) continue;
      const names = [nav.getAttribute("aria-label")];
      for (let up = nav.parentElement.closest("nav.md-nav"); up && !up.matches(".md-nav--secondary");
           up = up.parentElement.closest("nav.md-nav"))
        names.unshift(up.getAttribute("data-ed-label") || up.getAttribute("aria-label"));
      nav.setAttribute("data-ed-label", names[names.length - 1]);
      nav.setAttribute("aria-label", names.join(" / "));
    }
    for (const toolbar of document.querySelectorAll("nav.md-code__nav:not([role])"))
      toolbar.setAttribute("role", "none");
  }

  function setUp() {
    nameLandmarks();
    checkAll();
    for (const el of document.querySelectorAll(WIDE)) inView.observe(el);
  }

  // Zensical's script adds the code toolbars after the page is parsed, in batches.
  let pending = 0;
  new MutationObserver(() => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(setUp);
  }).observe(document.body, { childList: true, subtree: true });
  document.addEventListener("toggle", (event) => {
    if (event.target.open) checkAll(event.target);
  }, true);
  let resized = 0;
  addEventListener("resize", () => {
    clearTimeout(resized);
    resized = setTimeout(() => checkAll(), 250);
  });
  setUp();
})();
