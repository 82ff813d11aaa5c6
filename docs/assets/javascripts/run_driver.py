"""The driver of the Run buttons: runs one example in Pyodide as `python example.py` would.

run-worker.js fetches this file and runs it in the interpreter once; the build
(sitebuild.pyodide) imports it too, so the rule for which ``asyncio.run()``
calls the page can run without WebAssembly stack switching is stated once:
``main_guard_awaits``.

The page's event loop is already running, so ``asyncio.run(x)`` directly in the
``if __name__ == "__main__":`` block becomes ``await x`` (which works with or
without stack switching); the rest of that block runs unchanged, so
``sys.exit(main())`` still sets the exit code.
"""

import ast
import asyncio
import linecache
import os
import sys
import traceback
import types

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


def main_guard_awaits(tree):
    """``tree`` with each ``asyncio.run(x)`` of its main guard turned into ``await x``.

    Only a call with one argument and no keywords is turned: ``asyncio.run(main(),
    debug=True)`` stays a call, which needs stack switching in the browser.
    """
    for node in tree.body:
        if _is_main_guard(node):
            _AwaitInsteadOfRun().visit(node)
    return ast.fix_missing_locations(tree)


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
    with open(path, "w", encoding="utf-8") as file:  # noqa: ASYNC230 (an in-memory file system)
        file.write(source)
    os.chdir(workdir)
    module = types.ModuleType("__main__")
    module.__file__ = path
    previous = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    sys.argv = [path]
    result = {"status": "ok", "code": 0, "error": "", "traceback": ""}
    try:
        tree = main_guard_awaits(ast.parse(source, path))
        code = compile(tree, path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        pending = eval(code, module.__dict__)
        if pending is not None:
            await pending
    except SystemExit as stop:
        result["code"] = _exit_code(stop)
        result["status"] = "ok" if result["code"] == 0 else "exit"
    except BaseException as error:  # noqa: BLE001 (the reader sees every error, as python would show it)
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
