"""NATS subject routing against a real server."""

from __future__ import annotations

import pytest

from snippets.messaging.message_routing_nats import amqp_to_nats, connect, main
from tests.engines import free_port
from tests.messaging.conftest import run


def test_the_demo_translates_routes_and_refuses_an_uncaptured_subject(nats_server, monkeypatch,
                                                                      capsys):
    monkeypatch.setenv("NATS_URL", nats_server.url)
    run(main())
    assert capsys.readouterr().out == (
        "coaching.goals.*   -> coaching.goals.*\n"
        "coaching.entries.* -> coaching.entries.*\n"
        "coaching.#         -> coaching.>\n"
        "audit      got ['coaching.entries.created', 'coaching.goals.set', "
        "'coaching.goals.set.v2']\n"
        "goal-coach got ['coaching.goals.set']\n"
        "mood-agent got ['coaching.entries.created']\n"
        "durable publish: no stream captures subject 'billing.invoice.paid'\n")


@pytest.mark.parametrize(("amqp", "nats"), [("coaching.*", "coaching.*"), ("#", ">"),
                                            ("*.goals.#", "*.goals.>"), ("a.b", "a.b")])
def test_patterns_translate_where_nats_can_express_them(amqp, nats):
    assert amqp_to_nats(amqp) == nats


def test_a_server_that_is_down_is_named_in_the_error():
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match=f"cannot reach NATS at {url}"):
        run(connect(url), timeout=20)
