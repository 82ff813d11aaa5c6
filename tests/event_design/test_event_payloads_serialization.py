"""JSON, MessagePack and Avro all round-trip an entry exactly; Avro is the smallest, and bytes
that are not a record of its schema are refused instead of decoded into nonsense."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snippets.event_design.event_payloads_serialization import (
    CODECS,
    avro_decode,
    avro_encode,
    json_encode,
    main,
    msgpack_encode,
    sample_entry,
)

TEXT = st.text(max_size=40)
ENTRIES = st.fixed_dictionaries({
    "entry_id": TEXT, "author_id": TEXT, "text": st.text(max_size=400),
    "mood": st.sampled_from(["awful", "low", "ok", "good", "great"]).flatmap(
        lambda label: st.fixed_dictionaries({"label": st.just(label),
                                             "score": st.integers(-2**31, 2**31 - 1)})),
    "tags": st.lists(TEXT, max_size=5), "word_count": st.integers(0, 2**31 - 1),
    "language": TEXT})


@settings(max_examples=150, deadline=None)
@given(ENTRIES)
@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_round_trips_any_entry_exactly(codec, entry):
    encode, decode = CODECS[codec]
    assert decode(encode(entry)) == entry


def test_avro_is_smallest_and_messagepack_beats_json_on_a_short_entry():
    entry = sample_entry(12)
    sizes = [len(encode(entry)) for encode in (avro_encode, msgpack_encode, json_encode)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[2] / 2


def test_avro_carries_values_but_no_field_names():
    blob = avro_encode(sample_entry())
    assert b"calm" in blob and b"entry_id" not in blob and b"mood" not in blob


@pytest.mark.parametrize("blob", [json_encode(sample_entry()), avro_encode(sample_entry())[:-3],
                                  b"", b"\xff" * 40])
def test_bytes_that_are_not_an_entry_record_are_refused(blob):
    with pytest.raises(ValueError, match="not an EntryWritten record|bytes left after"):
        avro_decode(blob)


def test_trailing_bytes_reveal_a_record_written_with_another_schema():
    with pytest.raises(ValueError, match="2 bytes left after the record"):
        avro_decode(avro_encode(sample_entry()) + b"\x02\x04")


@pytest.mark.parametrize(("change", "message"), [
    ({"author_id": None}, "author_id"),
    ({"mood": {"label": "meh", "score": 1}}, "meh"),
    ({"word_count": "five"}, "an integer is required on field word_count"),
])
def test_avro_refuses_to_write_an_entry_its_schema_does_not_allow(change, message):
    entry = {k: v for k, v in {**sample_entry(), **change}.items() if v is not None}
    with pytest.raises((ValueError, TypeError), match=message):
        avro_encode(entry)


def test_the_demo_prints_sizes_for_a_short_and_a_long_entry(capsys):
    main()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("entry of 12 words: JSON 195 bytes (100%), MessagePack 159 bytes (82%), "
                      "Avro 87 bytes (45%)")
    assert out[1].startswith("entry of 400 words: JSON 2136 bytes")
