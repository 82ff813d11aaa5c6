// Learning-path checklist: the task-list boxes inside `.ed-checklist` become
// real checkboxes whose state is kept in this browser's localStorage. Nothing
// leaves the browser. The script is deferred, so it sets the lists up once the
// page is parsed.
(function () {
  "use strict";

  function storageKey(list) {
    return "edd-checklist:" + (list.dataset.checklist || location.pathname);
  }

  function load(key) {
    try {
      var value = JSON.parse(localStorage.getItem(key) || "{}");
      return value && typeof value === "object" ? value : {};
    } catch (error) {
      return {};
    }
  }

  function save(key, state) {
    try {
      localStorage.setItem(key, JSON.stringify(state));
    } catch (error) {
      /* Storage full or disabled: the boxes still work for this visit. */
    }
  }

  function itemId(item) {
    var link = item.querySelector("a[href]");
    return link ? link.getAttribute("href") : item.textContent.trim().slice(0, 80);
  }

  function setUp(list) {
    var key = storageKey(list);
    var state = load(key);
    var boxes = Array.prototype.slice.call(
      list.querySelectorAll("li.task-list-item input[type=checkbox]"));
    var progress = list.querySelector(".ed-checklist-progress");

    function report() {
      var done = boxes.filter(function (box) { return box.checked; }).length;
      if (progress) {
        progress.textContent = "Your progress: " + done + " of " + boxes.length + " steps done.";
      }
    }

    boxes.forEach(function (box) {
      var item = box.closest("li");
      var id = itemId(item);
      var label = item.querySelector("a") ? item.querySelector("a").textContent : id;
      box.disabled = false;
      box.removeAttribute("disabled");
      box.dataset.item = id;
      box.setAttribute("aria-label", "Done: " + label);
      box.checked = Boolean(state[id]);
      box.addEventListener("change", function () {
        state = load(key);
        if (box.checked) {
          state[id] = true;
        } else {
          delete state[id];
        }
        save(key, state);
        report();
      });
    });

    var reset = list.querySelector(".ed-checklist-reset");
    if (reset) {
      reset.addEventListener("click", function () {
        try {
          localStorage.removeItem(key);
        } catch (error) {
          /* nothing stored */
        }
        state = {};
        boxes.forEach(function (box) { box.checked = false; });
        report();
      });
    }
    report();
  }

  function init() {
    document.querySelectorAll(".ed-checklist").forEach(setUp);
  }

  document.addEventListener("DOMContentLoaded", init);
})();
