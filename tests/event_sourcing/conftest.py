"""Backends for the Event Sourcing tests: one parametrized fixture, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.event_sourcing.workers import Backend


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path) -> Iterator[Backend]:
    """Where a store lives; ``backend.open()`` gives a new store on the same data."""
    if request.param == "sqlite":
        yield Backend("sqlite", str(tmp_path / "events.db"))
    else:
        yield Backend("postgres", request.getfixturevalue("postgres_db"))


@pytest.fixture
def store(backend: Backend):
    """A store on a fresh, empty backend."""
    opened = backend.open()
    yield opened
    opened.close()
