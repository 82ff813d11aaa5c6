// The Python interpreter behind the Run buttons (see run.js): Pyodide, served by
// this site, in a module Worker so a long run never freezes the page and Stop can
// end it by terminating the worker.
//
// Messages in: first {type: "start", snapshot}, then {type: "run", job, source,
// filename}. Out: {type: "ready", python, pyodide, snapshot} or {type: "failed",
// message}; {type: "stdout" | "stderr", job, text} as the program writes; and
// {type: "done", job, status: "ok" | "exit" | "error", code, error, traceback}.
//
// Starting Python from scratch costs seconds of CPU, mostly compiling the standard
// library. So a worker started without a snapshot takes a memory snapshot of the
// interpreter right after start-up, before any example ran, and hands it to the
// page; later workers start from that snapshot in a fraction of a second, each
// in exactly the state of a freshly started interpreter.
import { loadPyodide } from "../vendor/pyodide/pyodide.mjs";

// Runs one example the way `python example.py` would, in a fresh module
// (run_driver.py says how; the build reads the same file to decide what can run).
const DRIVER_URL = new URL("run_driver.py", import.meta.url);
const indexURL = new URL("../vendor/pyodide/", import.meta.url).href;
// Names a driver, so a snapshot taken with another version of it is refused.
const driverId = (text) => [...text].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619), 2166136261)
  .toString(16);
let job = null;

function stream(type) {
  const decoder = new TextDecoder();
  return {
    write(bytes) {
      self.postMessage({ type, job, text: decoder.decode(bytes, { stream: true }) });
      return bytes.length;
    },
  };
}

async function start(snapshot) {
  const response = await fetch(DRIVER_URL);
  if (!response.ok) throw new Error(`the runner's driver could not be loaded (HTTP ${response.status})`);
  const DRIVER = await response.text();
  const DRIVER_ID = driverId(DRIVER);
  // packageBaseUrl: any package request would stay on this site, never go to a CDN.
  const options = { indexURL, packageBaseUrl: indexURL };
  const pyodide = await loadPyodide(snapshot
    ? { ...options, _loadSnapshot: snapshot }
    : { ...options, _makeSnapshot: true });
  let made = null;
  if (snapshot && pyodide.globals.get("EDD_DRIVER") !== DRIVER_ID) {
    throw new Error("the interpreter snapshot was made by another version of this page's runner");
  }
  if (!snapshot) {
    pyodide.runPython(DRIVER);
    pyodide.globals.set("EDD_DRIVER", DRIVER_ID);
    try {
      made = pyodide.makeMemorySnapshot();
      if (made.byteOffset !== 0 || made.byteLength !== made.buffer.byteLength) made = made.slice();
    } catch (error) {
      console.warn("Run: no interpreter snapshot, every run will start Python from scratch", error);
    }
  }
  pyodide.setStdout(stream("stdout"));
  pyodide.setStderr(stream("stderr"));
  const run = pyodide.globals.get("edd_run");
  const python = pyodide.runPython("import sys; sys.version.split()[0]");
  const snapshotBuffer = made ? made.buffer : null;
  self.postMessage({ type: "ready", python, pyodide: pyodide.version, snapshot: snapshotBuffer },
                   snapshotBuffer ? [snapshotBuffer] : []);
  return run;
}

let started = null;
let queue = Promise.resolve();
self.onmessage = ({ data }) => {
  if (data.type === "start") {
    started = start(data.snapshot);
    started.catch((error) => self.postMessage({ type: "failed", message: String(error?.message ?? error) }));
    return;
  }
  queue = queue.then(async () => {
    const run = await started;
    job = data.job;
    const proxy = await run(data.source, data.filename);
    const result = proxy.toJs({ dict_converter: Object.fromEntries });
    proxy.destroy();
    self.postMessage({ type: "done", job: data.job, ...result });
    job = null;
  }).catch((error) => {
    self.postMessage({ type: "done", job: data.job, status: "error", code: 1, error: "InternalError",
                       traceback: String(error?.message ?? error) });
  });
};
