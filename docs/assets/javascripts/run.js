/* Run buttons: run the example shown, in the reader's browser, and print its output.
 *
 * The build (sitebuild/examples.py) puts a bar `.ed-run[data-snippet]` under
 * each example the browser can run, shown by run.css wherever scripts run (and
 * replaced there by a note where a module needs WebAssembly stack switching that
 * the browser lacks). This script does nothing to the page when it loads, which
 * on a long page would cost a long task on a phone: one listener on the document
 * handles the bars' buttons, setting a bar up on its first press.
 * Nothing heavy loads until a reader presses Run: then a Worker
 * (run-worker.js) starts Pyodide from this site's assets/vendor/pyodide/.
 * Every run gets a fresh interpreter in a new worker, so nothing from an
 * earlier run (a leftover task, a changed module) can leak into the next. The
 * first start also yields a memory snapshot of the pristine interpreter, from
 * which later runs start in well under a second; a copy is kept in IndexedDB
 * for the next pages. Stop terminates the worker, whatever the code is doing.
 *
 * window.eddRun.run(source, {filename, onOutput}) runs code the same way and
 * returns {ready, done, stop}; window.eddRun.session() gives one interpreter for
 * many runs (the tests use it to run every example on one page load).
 */
(() => {
  "use strict";

  const scope = typeof __md_scope !== "undefined" ? __md_scope : new URL(".", location.href);
  const WORKER = new URL("assets/javascripts/run-worker.js", scope);
  const OUTPUT_LIMIT = 200000; // characters kept in the page from one run

  // A memory snapshot of a freshly started interpreter (ArrayBuffer, about 30 MB),
  // made by the first worker of the page or found in IndexedDB, where a copy is kept
  // per Pyodide version so that the first run on the next page starts quickly too.
  let snapshot = null;
  let savedUnusable = false;

  function pyodideVersion() {
    return document.querySelector(".ed-run[data-pyodide]")?.dataset.pyodide ?? null;
  }

  function snapshots(mode, use) {
    return new Promise((resolve, reject) => {
      const open = indexedDB.open("edd-run", 1);
      open.onupgradeneeded = () => open.result.createObjectStore("snapshots");
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const db = open.result;
        const request = use(db.transaction("snapshots", mode).objectStore("snapshots"));
        request.onsuccess = () => { db.close(); resolve(request.result); };
        request.onerror = () => { db.close(); reject(request.error); };
      };
    });
  }

  async function savedSnapshot() {
    const version = pyodideVersion();
    if (savedUnusable || !version) return null;
    try {
      const blob = await snapshots("readonly", (store) => store.get(version));
      return blob ? await blob.arrayBuffer() : null;
    } catch {
      return null; // no IndexedDB here (private window, file://): start from scratch
    }
  }

  async function saveSnapshot(buffer) {
    const version = pyodideVersion();
    if (!version) return;
    try {
      await snapshots("readwrite", (store) => store.clear());
      await snapshots("readwrite", (store) => store.put(new Blob([buffer]), version));
    } catch {
      // storage full or unavailable: later pages start from scratch
    }
  }

  function forgetSnapshot() {
    snapshot = null;
    savedUnusable = true;
    snapshots("readwrite", (store) => store.clear()).catch(() => {});
  }

  class Interpreter {
    constructor() {
      this.jobs = new Map();
      this.next = 0;
      this.info = null;
      this.restored = false;
      this.ready = new Promise((resolve, reject) => {
        this.abandon = reject;
        this.start(resolve, reject);
      });
      this.ready.catch(() => this.terminate());
    }

    async start(resolve, reject) {
      const from = snapshot ?? await savedSnapshot();
      if (this.stopped) return;
      this.restored = from !== null;
      this.worker = new Worker(WORKER, { type: "module", name: "python" });
      this.worker.onmessage = ({ data }) => {
        if (data.type === "ready") {
          if (data.snapshot) {
            snapshot = data.snapshot;
            saveSnapshot(data.snapshot);
          } else if (from && !snapshot) {
            snapshot = from;
          }
          this.info = { python: data.python, pyodide: data.pyodide, restored: this.restored };
          resolve(this);
        } else if (data.type === "failed") {
          reject(new Error(data.message));
        } else {
          this.receive(data);
        }
      };
      this.worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(event.message || "the Python worker could not start"));
      };
      this.worker.postMessage({ type: "start", snapshot: from });
    }

    receive(data) {
      const job = this.jobs.get(data.job);
      if (!job) return;
      if (data.type === "done") {
        this.jobs.delete(data.job);
        job.resolve(data);
      } else {
        job.onOutput?.(data.type, data.text);
      }
    }

    /** Run source as the module `filename`; resolves with how it ended. */
    async run(source, filename = "example.py", onOutput = null) {
      await this.ready;
      const id = ++this.next;
      return new Promise((resolve) => {
        this.jobs.set(id, { resolve, onOutput });
        this.worker.postMessage({ type: "run", job: id, source, filename });
      });
    }

    terminate() {
      this.stopped = true;
      this.worker?.terminate();
      this.abandon?.(new Error("stopped before Python had started"));
      for (const job of this.jobs.values()) job.resolve({ status: "stopped", code: null });
      this.jobs.clear();
    }
  }

  /** Run source in a fresh interpreter, which is discarded afterwards. */
  function run(source, { filename = "example.py", onOutput = null } = {}) {
    let python = new Interpreter();
    let stopped = false;
    const ready = python.ready.catch((error) => {
      if (stopped || !python.restored) throw error;
      forgetSnapshot(); // a snapshot that cannot start (stale, damaged): start from scratch
      python = new Interpreter();
      return python.ready;
    });
    const done = ready.then(() => python.run(source, filename, onOutput)).then(
      (result) => {
        python.terminate();
        return { ...result, ...python.info };
      },
      (error) => ({ status: stopped ? "stopped" : "failed", code: null, error: error.message }),
    );
    return {
      ready,
      done,
      stop() {
        stopped = true;
        python.terminate();
      },
    };
  }

  window.eddRun = { run, session: () => new Interpreter() };

  // --- The bars under the examples ------------------------------------------

  const bars = new WeakMap(); // bar -> its state, made on the first press of Run

  function codeOf(block) {
    return block.querySelector("pre > code").textContent;
  }

  function builtOutput(snippet) {
    const code = document.querySelector(
      `.ed-output:not(.ed-recorded)[data-snippet="${CSS.escape(snippet)}"] pre > code`);
    return code ? code.textContent.replace(/\n+$/, "") : null;
  }

  function seconds(since) {
    return `${((performance.now() - since) / 1000).toFixed(2)} s`;
  }

  function stateOf(bar) {
    let state = bars.get(bar);
    if (state) return state;
    const block = bar.previousElementSibling;
    if (!block || !block.querySelector("pre > code")) return null;
    state = { block, panel: null, runs: 0, job: null };
    bars.set(bar, state);
    return state;
  }

  function outputPanel(bar, state) {
    if (state.panel) return state.panel;
    const panel = document.createElement("div");
    panel.className = "ed-run__output language-text highlight";
    panel.innerHTML = '<span class="filename"></span><pre><code></code></pre>';
    panel.querySelector(".filename").textContent =
      `Output of ${bar.dataset.filename}, run in your browser`;
    bar.after(panel);
    return (state.panel = panel);
  }

  function start(bar, state) {
    const startButton = bar.querySelector(".ed-run__start");
    const stopButton = bar.querySelector(".ed-run__stop");
    const status = bar.querySelector(".ed-run__status");
    const filename = bar.dataset.filename;
    const runNumber = ++state.runs;
    const source = codeOf(state.block);
    const out = outputPanel(bar, state);
    const code = out.querySelector("code");
    const pre = out.querySelector("pre");
    code.replaceChildren();
    let stdout = "";
    let shown = 0;
    let pending = [];
    let frame = 0;

    const flush = () => {
      frame = 0;
      const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      for (const [type, text] of pending) {
        if (shown >= OUTPUT_LIMIT) break;
        const part = text.slice(0, OUTPUT_LIMIT - shown);
        shown += part.length;
        if (type === "stdout") {
          code.append(part);
        } else {
          const span = document.createElement("span");
          span.className = `ed-run__${type}`;
          span.textContent = part;
          code.append(span);
        }
        if (shown >= OUTPUT_LIMIT) {
          const cut = document.createElement("span");
          cut.className = "ed-run__stderr";
          cut.textContent = "\n[output cut here: over 200,000 characters]\n";
          code.append(cut);
        }
      }
      pending = [];
      if (stick) pre.scrollTop = pre.scrollHeight;
    };
    const onOutput = (type, text) => {
      if (type === "stdout") stdout += text;
      pending.push([type, text]);
      frame ||= requestAnimationFrame(flush);
    };

    const set = (name, message) => {
      bar.dataset.state = name;
      status.textContent = message;
    };
    const job = run(source, { filename, onOutput });
    state.job = job;
    startButton.disabled = true;
    stopButton.disabled = false;
    out.setAttribute("aria-busy", "true");
    delete bar.dataset.match;
    let since = performance.now();
    set("starting", "Starting Python in your browser (the first run loads about 13 MB)…");
    job.ready.then((python) => {
      since = performance.now();
      bar.dataset.started = python.info.restored ? "snapshot" : "scratch";
      out.querySelector(".filename").textContent =
        `Output of ${filename}, run in your browser (Python ${python.info.python}, ` +
        `Pyodide ${python.info.pyodide})`;
      set("running", "Running…");
    }, () => {});

    job.done.then((result) => {
      if (runNumber !== state.runs) return;
      cancelAnimationFrame(frame);
      flush();
      state.job = null;
      startButton.disabled = false;
      stopButton.disabled = true;
      out.removeAttribute("aria-busy");
      if (result.traceback) onOutput("traceback", result.traceback), flush();
      const took = seconds(since);
      if (result.status === "ok") {
        const built = builtOutput(bar.dataset.snippet);
        const same = built !== null && stdout.replace(/\n+$/, "") === built;
        bar.dataset.match = String(same);
        set("done", `Finished in ${took}: ` + (same
          ? "the same output as when this page was built."
          : "the output differs from the one printed when this page was built."));
      } else if (result.status === "exit") {
        set("exited", `Exited with code ${result.code} after ${took}.`);
      } else if (result.status === "error") {
        set("failed", `Failed with ${result.error} after ${took}: the traceback ends the output.`);
      } else if (result.status === "stopped") {
        set("stopped", `Stopped after ${took}.`);
      } else {
        set("unavailable", `Python could not start in this browser: ${result.error}`);
      }
    });
  }

  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element &&
      event.target.closest(".ed-run__start, .ed-run__stop");
    const bar = button && button.closest(".ed-run[data-snippet]");
    const state = bar && stateOf(bar);
    if (!state) return;
    if (button.classList.contains("ed-run__start")) start(bar, state);
    else state.job?.stop();
  });
})();
