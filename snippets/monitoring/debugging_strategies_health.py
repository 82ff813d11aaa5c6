"""Consumer health checks that tell *alive* from *making progress*, served over HTTP.

A consumer can be up, connected and answering ``/livez`` while handling
nothing: its loop is stuck on one message, or the broker stopped delivering.
So the checks watch what the consumer does, not only that it exists:

* ``loop``: the poll loop has polled within ``loop_timeout``, or is inside a
  handler (liveness: a restart fixes a dead loop, nothing else);
* ``progress``: messages are waiting and none was handled for
  ``stall_after`` seconds (the classic silent stall);
* ``handler``: a message has been in its handler for over
  ``handler_timeout`` seconds (stuck on a call with no timeout); with
  several handlers running at once, the oldest one counts;
* ``errors``: ``max_failures`` failures in a row (a dependency is down).

``/livez`` fails only on ``loop``: restarting for a downstream outage helps
nobody. ``/readyz`` fails on anything, and ``/healthz`` returns every check
as JSON. Times come from an injectable monotonic clock.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ConsumerHealth:
    """What the consumer reports as it runs, and the checks computed from it."""

    def __init__(self, *, backlog: Callable[[], int], clock: Callable[[], float] = time.monotonic,
                 loop_timeout: float = 30, stall_after: float = 60, handler_timeout: float = 30,
                 max_failures: int = 5) -> None:
        self.backlog, self.clock = backlog, clock
        self.loop_timeout, self.stall_after = loop_timeout, stall_after
        self.handler_timeout, self.max_failures = handler_timeout, max_failures
        start = clock()
        self.last_poll = self.last_progress = start
        self.in_handler: dict[str, float] = {}  # message id -> when its handler started
        self.failures_in_a_row = 0
        self._lock = threading.Lock()  # the HTTP thread reads what the consumer writes

    def polled(self) -> None:
        with self._lock:
            self.last_poll = self.clock()

    def started(self, message_id: str) -> None:
        with self._lock:
            self.in_handler[message_id] = self.clock()

    def finished(self, message_id: str, ok: bool) -> None:
        with self._lock:
            self.in_handler.pop(message_id, None)
            self.last_progress = self.clock()
            self.failures_in_a_row = 0 if ok else self.failures_in_a_row + 1

    # --8<-- [start:checks]
    def checks(self) -> dict[str, tuple[bool, str]]:
        """Every check as ``{name: (ok, detail)}``."""
        with self._lock:
            now, waiting = self.clock(), self.backlog()
            idle, quiet = now - self.last_poll, now - self.last_progress
            oldest = min(self.in_handler.items(), key=lambda item: item[1], default=None)
            busy = (oldest[0], now - oldest[1]) if oldest else None
            failures = self.failures_in_a_row
        return {
            "loop": (busy is not None or idle <= self.loop_timeout, f"last poll {idle:.0f} s ago"),
            "progress": (waiting == 0 or quiet <= self.stall_after,
                         f"{waiting} waiting, last handled {quiet:.0f} s ago"),
            "handler": (busy is None or busy[1] <= self.handler_timeout,
                        f"in {busy[0]} for {busy[1]:.0f} s" if busy else "idle"),
            "errors": (failures < self.max_failures, f"{failures} failures in a row"),
        }
    # --8<-- [end:checks]


def serve(health: ConsumerHealth, port: int = 0) -> ThreadingHTTPServer:
    """Serve ``/livez``, ``/readyz`` and ``/healthz`` on 127.0.0.1 in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            checks = health.checks()
            failing = sorted(name for name, (ok, _) in checks.items() if not ok)
            if self.path == "/livez":
                ok, body = "loop" not in failing, {"status": "ok" if "loop" not in failing else "dead"}
            elif self.path == "/readyz":
                ok, body = not failing, {"status": "ok" if not failing else "failing", "failing": failing}
            elif self.path == "/healthz":
                ok = not failing
                body = {"status": "ok" if ok else "failing",
                        "checks": {n: {"ok": c, "detail": d} for n, (c, d) in checks.items()}}
            else:
                self.send_error(404, "try /livez, /readyz or /healthz")
                return
            data = json.dumps(body).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:  # keep the demo's output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def get(url: str) -> tuple[int, dict[str, object]]:
    """GET a health endpoint; return the status code and the JSON body."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def main() -> None:
    """A mood agent handles entries, then hangs on a model call while entries pile up."""
    now = [0.0]
    waiting = [3]
    health = ConsumerHealth(backlog=lambda: waiting[0], clock=lambda: now[0],
                            loop_timeout=30, stall_after=60, handler_timeout=30)
    server = serve(health)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        for n in (1, 2, 3):  # three entries handled, one second each
            health.polled()
            health.started(f"m-{n}")
            now[0] += 1
            health.finished(f"m-{n}", ok=True)
            waiting[0] -= 1
        print("t=3   ", get(f"{base}/readyz"))
        health.polled()
        health.started("m-4")  # the model call never returns...
        waiting[0] = 40        # ...while the evening rush arrives
        now[0] = 45
        print("t=45  ", get(f"{base}/readyz"))
        now[0] = 95
        print("t=95  ", get(f"{base}/livez"))  # alive, so a restart is not the answer...
        code, body = get(f"{base}/healthz")   # ...but it is making no progress
        print(f"t=95   {code} {body['status']}")
        for name, check in body["checks"].items():  # type: ignore[union-attr]
            print(f"         {name:<9} {'ok' if check['ok'] else 'FAIL':<4}  {check['detail']}")
        now[0] = 100
        health.finished("m-4", ok=False)  # the call finally raises, and the loop task dies with it
        now[0] = 140
        print("t=140 ", get(f"{base}/livez"))
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
