"""A real Tansu broker for the test session (pytest plugin)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One Tansu broker on a free port; tests isolate themselves with their own topics."""
    log = Path(tmp_path_factory.mktemp("tansu")) / "tansu.log"
    with EmbeddedBroker(log=log) as broker:
        yield broker


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A Tansu broker of this test alone, for tests that stop and restart it.

    ``kill()`` then ``start()`` brings it back on the same port -- empty: Tansu keeps
    topics, data and committed offsets in memory only.
    """
    with EmbeddedBroker(log=tmp_path / "tansu.log") as broker:
        yield broker


@pytest.fixture
def topics() -> dict[str, str]:
    """Unique topic names and group id for one test, as `streamer run` flag values."""
    tag = uuid.uuid4().hex[:8]
    return {
        "items-topic": f"items-{tag}",
        "label-requests-topic": f"label-requests-{tag}",
        "labels-topic": f"labels-{tag}",
        "predictions-topic": f"predictions-{tag}",
        "dead-letters-topic": f"dead-letters-{tag}",
        "group-id": f"streamer-{tag}",
    }
