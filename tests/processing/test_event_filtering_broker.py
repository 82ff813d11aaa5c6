"""Broker-side vs consumer-side filtering against a real NATS server (tests/engines.py)."""

from __future__ import annotations

import asyncio
import json

from snippets.processing.event_filtering_broker import compare, journal, main
from tests.engines import free_port


def test_the_journal_spreads_entries_evenly_and_deterministically():
    entries = journal(9)
    assert entries == journal(9)
    assert [s for s, _ in entries[:4]] == ["coaching.entries.en.low", "coaching.entries.fr.low",
                                           "coaching.entries.de.low", "coaching.entries.en.ok"]


def test_the_broker_delivers_only_matching_subjects_and_the_consumer_filter_pays_for_all(
        nats_server):
    tallies = {t.name: t for t in asyncio.run(compare(nats_server.url, count=270))}
    broker, consumer = tallies["coaching.entries.fr.*"], tallies["coaching.entries.> + if"]
    assert (broker.received, broker.kept) == (90, 90)
    assert (consumer.received, consumer.kept) == (270, 90)  # 180 crossed the wire for nothing
    assert consumer.bytes > 2.5 * broker.bytes
    assert (tallies["coaching.entries.*.low"].received, tallies["coaching.entries.*.low"].kept) == (
        90, 90)
    words = tallies["coaching.entries.> + words>=200"]
    long_entries = sum(1 for _, body in journal(270) if json.loads(body)["words"] >= 200)
    assert (words.received, words.kept) == (270, long_entries) and 0 < long_entries < 270
    stored = tallies["JetStream filter_subject fr.*"]
    assert (stored.received, stored.kept, stored.bytes) == (90, 90, broker.bytes)


def test_the_demo_reads_the_server_address_from_the_environment(nats_server, monkeypatch, capsys):
    monkeypatch.setenv("NATS_URL", nats_server.url)
    asyncio.run(main())
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["subscription", "filtered", "by", "received", "kept", "bytes", "in"]
    rows = {line[:34].strip(): line[34:].split() for line in lines[1:]}
    assert rows["coaching.entries.fr.*"][:3] == ["broker", "180", "180"]
    assert rows["coaching.entries.> + if"][:3] == ["consumer", "540", "180"]
    assert rows["coaching.entries.*.low"][:3] == ["broker", "180", "180"]
    assert rows["JetStream filter_subject fr.*"][:3] == ["broker", "180", "180"]


def test_without_a_server_the_demo_says_how_to_start_one_instead_of_hanging(monkeypatch, capsys):
    url = f"nats://127.0.0.1:{free_port()}"
    monkeypatch.setenv("NATS_URL", url)
    assert asyncio.run(asyncio.wait_for(main(), timeout=10)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"no NATS server at {url}: start one with `nats-server -js` or set NATS_URL\n")
