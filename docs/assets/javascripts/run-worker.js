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

// Runs one example the way `python example.py` would, in a fresh module. The
// page's event loop is already running, so `asyncio.run(x)` in the
// `if __name__ == "__main__":` block becomes `await x` (which works with or
// without WebAssembly stack switching); the rest of that block runs unchanged,
// so `sys.exit(main())` still sets the exit code.
const DRIVER = `
import ast, asyncio, linecache, os, sys, traceback, types

_runs = 0


def _is_main_guard(node):
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


class _AwaitInsteadOfRun(ast.NodeTransformer):
    def visit_Call(self, node):
        self.generic_visit(node)
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr == "run"
                and isinstance(func.value, ast.Name) and func.value.id == "asyncio"
                and len(node.args) == 1 and not node.keywords):
            return ast.copy_location(ast.Await(node.args[0]), node)
        return node


def _exit_code(stop):
    if stop.code is None:
        return 0
    if isinstance(stop.code, int):
        return stop.code
    print(stop.code, file=sys.stderr)
    return 1


async def _cancel_leftover_tasks():
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def edd_run(source, filename):
    global _runs
    _runs += 1
    path = f"/examples/{filename}"
    workdir = f"/work/{_runs}"
    os.makedirs("/examples", exist_ok=True)
    os.makedirs(workdir)
    linecache.clearcache()
    with open(path, "w", encoding="utf-8") as file:
        file.write(source)
    os.chdir(workdir)
    module = types.ModuleType("__main__")
    module.__file__ = path
    previous = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    sys.argv = [path]
    result = {"status": "ok", "code": 0, "error": "", "traceback": ""}
    try:
        tree = ast.parse(source, path)
        for node in tree.body:
            if _is_main_guard(node):
                _AwaitInsteadOfRun().visit(node)
        ast.fix_missing_locations(tree)
        code = compile(tree, path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        pending = eval(code, module.__dict__)
        if pending is not None:
            await pending
    except SystemExit as stop:
        result["code"] = _exit_code(stop)
        result["status"] = "ok" if result["code"] == 0 else "exit"
    except BaseException as error:
        frames = error.__traceback__
        while frames is not None and frames.tb_frame.f_code.co_filename != path:
            frames = frames.tb_next
        result.update(status="error", code=1, error=type(error).__name__,
                      traceback="".join(traceback.format_exception(type(error), error, frames)))
    finally:
        await _cancel_leftover_tasks()
        sys.stdout.flush()
        sys.stderr.flush()
        sys.modules["__main__"] = previous
    return result
`;

const indexURL = new URL("../vendor/pyodide/", import.meta.url).href;
// Names this driver, so a snapshot taken with another version of it is refused.
const DRIVER_ID = [...DRIVER].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619), 2166136261)
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
