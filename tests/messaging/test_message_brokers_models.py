"""Queue versus log: what each keeps, and who can read it again."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from snippets.messaging.message_brokers_models import LogBroker, QueueBroker, main


def test_the_demo_shows_a_queue_forgetting_and_a_log_replaying(capsys):
    main()
    assert capsys.readouterr().out == (
        "queue: coaches handled ['entry-1', 'entry-2', 'entry-3', 'entry-4']; "
        "left for a new reader: []\n"
        "log  : coaches read ['entry-2', 'entry-3', 'entry-4']; offsets below 1 are past retention\n"
        "log  : a new group 'insights' reads ['entry-2', 'entry-3', 'entry-4']\n"
        "log  : coaches replay after a fix: ['entry-2', 'entry-3', 'entry-4']\n")


def test_a_nacked_message_goes_back_to_the_front_of_the_queue():
    queue = QueueBroker()
    for message in ("a", "b"):
        queue.publish(message)
    tag, first = queue.take()
    queue.nack(tag)
    assert queue.take()[1] == first == "a"


@given(st.lists(st.text(max_size=3), max_size=30), st.integers(1, 10))
def test_each_log_group_reads_every_retained_record_in_order_independently(records, retention):
    log = LogBroker(retention=retention)
    offsets = [log.publish(r) for r in records]
    assert offsets == list(range(len(records)))
    kept = records[-retention:] if records else []
    for group in ("coaches", "insights"):
        assert [r for _, r in log.read(group)] == kept
    if records:
        log.commit("coaches", offsets[-1] + 1)
        assert log.read("coaches") == [] and [r for _, r in log.read("insights")] == kept


def test_a_group_behind_retention_resumes_at_the_oldest_record_kept():
    log = LogBroker(retention=2)
    log.publish("a")
    log.commit("slow", 0)
    for message in ("b", "c", "d"):
        log.publish(message)
    assert log.read("slow") == [(2, "c"), (3, "d")]  # a and b were lost to retention
