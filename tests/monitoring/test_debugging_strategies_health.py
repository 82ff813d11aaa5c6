"""Tests of the consumer health checks and their HTTP endpoints."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import pytest

from snippets.monitoring.debugging_strategies_health import (
    ConsumerHealth,
    get,
    main,
    serve,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def consumer():
    clock, backlog = Clock(), [0]
    health = ConsumerHealth(backlog=lambda: backlog[0], clock=clock, loop_timeout=30,
                            stall_after=60, handler_timeout=30, max_failures=3)
    server = serve(health)
    yield health, clock, backlog, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def failing(health):
    return sorted(name for name, (ok, _) in health.checks().items() if not ok)


def test_a_fresh_idle_consumer_is_healthy_everywhere(consumer):
    health, clock, _backlog, base = consumer
    clock.now = 1000  # idle for long, but nothing is waiting and it keeps polling
    health.polled()
    assert failing(health) == []
    assert get(f"{base}/livez") == (200, {"status": "ok"})
    assert get(f"{base}/readyz") == (200, {"status": "ok", "failing": []})


def test_a_consumer_that_polls_but_handles_nothing_while_work_waits_is_stalled(consumer):
    health, clock, backlog, base = consumer
    backlog[0] = 12
    clock.now = 61
    health.polled()  # the loop runs: the broker just delivers nothing, say
    assert failing(health) == ["progress"]
    assert get(f"{base}/livez")[0] == 200
    code, body = get(f"{base}/healthz")
    assert code == 503
    assert body["checks"]["progress"] == {"ok": False, "detail": "12 waiting, last handled 61 s ago"}


def test_a_handler_stuck_past_its_timeout_fails_readiness_but_not_liveness(consumer):
    health, clock, _backlog, base = consumer
    health.polled()
    health.started("m-4")
    clock.now = 31
    assert failing(health) == ["handler"]
    assert health.checks()["handler"] == (False, "in m-4 for 31 s")
    assert get(f"{base}/livez")[0] == 200
    assert get(f"{base}/readyz") == (503, {"status": "failing", "failing": ["handler"]})


def test_a_loop_that_stopped_polling_outside_a_handler_fails_liveness(consumer):
    health, clock, _backlog, base = consumer
    clock.now = 31
    assert failing(health) == ["loop"]
    assert get(f"{base}/livez") == (503, {"status": "dead"})


def test_failures_in_a_row_fail_readiness_and_one_success_resets_them(consumer):
    health, _clock, _backlog, _base = consumer
    for _ in range(3):
        health.started("m")
        health.finished("m", ok=False)
    assert failing(health) == ["errors"]
    health.started("m")
    health.finished("m", ok=True)
    assert failing(health) == []


def test_an_unknown_path_is_a_404_that_names_the_endpoints(consumer):
    *_, base = consumer
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{base}/metrics", timeout=5)
    assert error.value.code == 404
    assert "try /livez, /readyz or /healthz" in error.value.read().decode()


def test_concurrent_probes_while_the_consumer_works_always_get_a_consistent_answer(consumer):
    health, _clock, _backlog, base = consumer
    stop = threading.Event()

    def work():
        while not stop.is_set():
            health.polled()
            health.started("m")
            health.finished("m", ok=True)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        answers = {get(f"{base}/readyz")[0] for _ in range(50)}
    finally:
        stop.set()
        worker.join(5)
    assert answers == {200}


def test_one_stuck_handler_among_concurrent_ones_still_fails_the_handler_check(consumer):
    health, clock, backlog, _base = consumer
    backlog[0] = 5
    health.polled()
    health.started("m-1")  # hangs on a call with no timeout
    clock.now = 1
    health.started("m-2")
    clock.now = 2
    health.finished("m-2", ok=True)  # its neighbour is done
    clock.now = 31
    assert health.checks()["handler"] == (False, "in m-1 for 31 s")
    health.started("m-3")
    clock.now = 32
    assert health.checks()["handler"] == (False, "in m-1 for 32 s")  # the oldest counts
    assert failing(health) == ["handler"]
    health.finished("m-1", ok=False)
    assert health.checks()["handler"] == (True, "in m-3 for 1 s")
    health.finished("m-3", ok=True)
    health.finished("m-3", ok=True)  # a second report of the same message changes nothing
    assert health.checks()["handler"] == (True, "idle")
    assert health.failures_in_a_row == 0


def test_the_demo_tells_alive_from_making_progress(capsys):
    main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "t=3    (200, {'status': 'ok', 'failing': []})"
    assert lines[1] == "t=45   (503, {'status': 'failing', 'failing': ['handler']})"
    assert lines[2] == "t=95   (200, {'status': 'ok'})"
    assert lines[3] == "t=95   503 failing"
    assert "progress  FAIL  40 waiting, last handled 92 s ago" in lines[5]
    assert lines[-1] == "t=140  (503, {'status': 'dead'})"
