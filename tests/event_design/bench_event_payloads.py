"""Size and speed of one coaching entry in JSON, MessagePack and Avro (fastavro).

Every codec encodes and decodes the same events in the same run, so the
ratios hold even on a noisy machine. The encoders are the snippet's own, so
the figures are for exactly the code the page shows.
"""

from __future__ import annotations

from snippets.event_design.event_payloads_serialization import CODECS, sample_entry
from tests.bench import support

EVENTS = 20_000
SIZES = ((12, "short entry (12 words)"), (400, "long entry (400 words)"))


def per_event_microseconds(run, blobs_or_events: list) -> float:
    def once() -> None:
        for item in blobs_or_events:
            run(item)

    return support.median_seconds(once, repeats=5) / len(blobs_or_events) * 1e6


def main() -> None:
    rows = []
    for words, label in SIZES:
        events = [sample_entry(words) for _ in range(EVENTS)]
        json_size = len(CODECS["JSON"][0](events[0]))
        for name, (encode, decode) in CODECS.items():
            blobs = [encode(event) for event in events]
            assert decode(blobs[0]) == events[0], name
            encode_us = per_event_microseconds(encode, events)
            decode_us = per_event_microseconds(decode, blobs)
            rows.append([label, name, len(blobs[0]), f"{len(blobs[0]) / json_size:.0%}",
                         f"{encode_us:.2f}", f"{decode_us:.2f}"])
            print(rows[-1], flush=True)
    path = support.write(
        "event_design/event_payloads",
        columns=["Event", "Format", "Bytes", "Size vs JSON", "Encode (µs/event)",
                 "Decode (µs/event)"],
        rows=rows,
        command="make bench BENCH=event_design",
        note=f"{EVENTS:,} events per run, median of 5 runs after 1 warm-up; JSON is the "
             "standard library's json, MessagePack is msgpack, Avro is fastavro's schemaless "
             "writer and reader with a parsed schema.",
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
