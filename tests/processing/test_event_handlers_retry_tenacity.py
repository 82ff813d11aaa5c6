"""The tenacity consumer: its wait is tenacity's ceiling with our jitter, its demo matches.

The behavioural contract (delays, dead letters, hostile payloads, poison
messages, cancellation) runs on both implementations in
``test_event_handlers_retry.py``.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from tenacity import RetryCallState, wait_random_exponential

from snippets.processing import event_handlers_retry
from snippets.processing.event_handlers_retry_tenacity import (
    Backoff,
    decode,
    full_jitter,
    main,
)


def state(attempt: int) -> RetryCallState:
    retry_state = RetryCallState(None, None, (), {})
    retry_state.attempt_number = attempt
    return retry_state


@pytest.mark.parametrize("attempt", range(1, 9))
def test_the_wait_draws_the_same_delays_as_tenacitys_own_full_jitter_with_the_same_seed(
        attempt, monkeypatch):
    ours = full_jitter(Backoff(base=0.5, cap=8.0), random.Random(11))(state(attempt))
    seeded = random.Random(11)
    monkeypatch.setattr("tenacity.wait.random.uniform", seeded.uniform)
    theirs = wait_random_exponential(multiplier=0.5, max=8.0)(state(attempt))
    assert ours == theirs


def test_decode_refuses_a_non_object():
    with pytest.raises(ValueError, match="must be a JSON object, not int"):
        decode(b"42")


def test_the_demo_prints_exactly_what_the_hand_written_version_prints(capsys):
    asyncio.run(event_handlers_retry.main())
    hand_written = capsys.readouterr().out
    asyncio.run(main())
    assert capsys.readouterr().out == hand_written
