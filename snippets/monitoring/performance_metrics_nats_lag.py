"""JetStream consumer lag from consumer info, exported as Prometheus gauges.

A JetStream consumer reports three numbers worth a gauge each:

* ``num_pending``: messages in the stream that the consumer has not been
  given yet (its lag);
* ``num_ack_pending``: messages given out and not acknowledged yet (in
  flight, or held by a stuck or crashed worker);
* ``num_redelivered``: messages given out more than once (failures, naks,
  ack timeouts): a rising value is the early sign of a poison message.

The delivered and ack-floor sequences show where the consumer is; the gap
between them is the work in flight. Point it at your own NATS server with
``NATS_URL``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

import nats
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry, Gauge, generate_latest


@dataclass(frozen=True, slots=True)
class ConsumerLag:
    """One sample of a JetStream consumer's position and backlog."""

    stream: str
    consumer: str
    num_pending: int
    num_ack_pending: int
    num_redelivered: int
    delivered_stream_seq: int
    ack_floor_stream_seq: int


# --8<-- [start:read]
async def read_lag(js: JetStreamContext, stream: str, consumer: str) -> ConsumerLag:
    """Ask the server for the consumer's info and keep the numbers that matter."""
    info = await js.consumer_info(stream, consumer)
    return ConsumerLag(
        stream=stream, consumer=consumer, num_pending=info.num_pending or 0,
        num_ack_pending=info.num_ack_pending or 0, num_redelivered=info.num_redelivered or 0,
        delivered_stream_seq=info.delivered.stream_seq if info.delivered else 0,
        ack_floor_stream_seq=info.ack_floor.stream_seq if info.ack_floor else 0)
# --8<-- [end:read]


class LagGauges:
    """Prometheus gauges for :class:`ConsumerLag` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["stream", "consumer"]
        self.pending = Gauge("coaching_jetstream_pending_messages",
                             "Messages not yet delivered to the consumer", labels, registry=registry)
        self.ack_pending = Gauge("coaching_jetstream_ack_pending_messages",
                                 "Messages delivered and not acknowledged", labels, registry=registry)
        self.redelivered = Gauge("coaching_jetstream_redelivered_messages",
                                 "Messages delivered more than once", labels, registry=registry)

    def update(self, sample: ConsumerLag) -> None:
        """Set the gauges from one sample."""
        key = (sample.stream, sample.consumer)
        self.pending.labels(*key).set(sample.num_pending)
        self.ack_pending.labels(*key).set(sample.num_ack_pending)
        self.redelivered.labels(*key).set(sample.num_redelivered)


async def main() -> None:
    """Ten entries; the mood agent takes four, acks two, naks one and sits on one."""
    url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")

    async def quiet(error: Exception) -> None:  # the client reports each failed try here
        pass

    try:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1,
                                reconnect_time_wait=0.2, error_cb=quiet)
    except (OSError, nats.errors.Error) as error:
        print(f"No NATS at {url}: set NATS_URL ({error!r})", file=sys.stderr)
        return
    js = nc.jetstream()
    stream = "DEMO_COACHING_LAG"
    try:
        await js.delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass
    await js.add_stream(name=stream, subjects=["demo.lag.entries"])
    for n in range(1, 11):
        await js.publish("demo.lag.entries", f"entry-{n}".encode())
    sub = await js.pull_subscribe("demo.lag.entries", durable="mood-agent", stream=stream)
    first = await sub.fetch(4, timeout=5)
    await first[0].ack_sync()
    await first[1].ack_sync()
    await nc.request(first[2].reply, b"-NAK", timeout=5)  # a nak the server confirms
    again = await sub.fetch(1, timeout=5)  # the nak-ed entry comes back first
    sample = await read_lag(js, stream, "mood-agent")
    print(f"redelivered: {again[0].data.decode()} (delivery {again[0].metadata.num_delivered})")
    print(f"num_pending={sample.num_pending} num_ack_pending={sample.num_ack_pending} "
          f"num_redelivered={sample.num_redelivered} delivered_seq={sample.delivered_stream_seq} "
          f"ack_floor_seq={sample.ack_floor_stream_seq}")
    registry = CollectorRegistry()
    LagGauges(registry).update(sample)
    print("\n".join(line for line in generate_latest(registry).decode().splitlines()
                    if not line.startswith("#")))
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main())
