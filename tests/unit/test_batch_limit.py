"""--max-delay-ms: an items micro-batch takes no more items than are decided in that long."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.runtime.consume import BatchLimit
from streamer.runtime.memory_bus import MemoryBus
from tests.unit.test_runtime_bus import _items, _running, _until


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    max_batch=st.integers(1, 100_000),
    max_delay_s=st.floats(1e-4, 10.0),
    batches=st.lists(st.tuples(st.integers(0, 100_000), st.floats(0.0, 5.0)), max_size=30),
)
def test_the_limit_stays_between_its_floor_and_the_largest_batch(
    max_batch: int, max_delay_s: float, batches: list[tuple[int, float]]
) -> None:
    limit = BatchLimit(max_batch, max_delay_s)
    for records, seconds in batches:
        limit.observe(records, seconds)
        assert min(16, max_batch) <= limit.records <= max_batch


def test_a_vanishing_cost_gives_the_largest_batch() -> None:
    """Found by the property test in a fresh clone: a denormal cost made the quotient infinite."""
    limit = BatchLimit(1, max_delay_s=1.0)
    limit.observe(2, 1.1125369292536007e-308)
    assert limit.records == 1
    limit = BatchLimit(1024, max_delay_s=0.02)
    limit.observe(100, 0.0)
    assert limit.records == 1024


def test_a_steady_cost_per_item_sizes_batches_to_the_delay() -> None:
    limit = BatchLimit(1024, max_delay_s=0.020)
    for _ in range(40):  # 100 us per item: 200 items are decided in 20 ms
        limit.observe(limit.records, limit.records * 100e-6)
    assert 195 <= limit.records <= 205
    for _ in range(40):  # a cheap model again: back to the largest batch
        limit.observe(limit.records, limit.records * 1e-6)
    assert limit.records == 1024


def test_without_a_delay_the_limit_is_the_largest_batch() -> None:
    limit = BatchLimit(512)
    limit.observe(512, 10.0)
    assert limit.records == 512


async def test_a_slow_model_gets_batches_it_decides_within_the_delay() -> None:
    """A model that takes at least 1 ms per item, --max-delay-ms 20: after the first batch
    (taken before any cost was known), no batch has more than 20 items."""
    bus = MemoryBus()
    service, _, stop, task = await _running(bus, max_delay_ms=20, max_batch=1024)
    sizes: list[int] = []
    decide = service.sampler.decide

    def slow_decide(X: Any, **kwargs: Any) -> Any:
        sizes.append(len(X))
        time.sleep(0.001 * len(X))  # sleeps at least this long: the bound below holds on any machine
        return decide(X, **kwargs)

    service.sampler.decide = slow_decide  # type: ignore[method-assign]
    _items(bus, 0, 100)
    await _until(lambda: service.counts["items"] == 100, timeout=30.0)
    first = len(sizes)
    _items(bus, 100, 300)  # a backlog: it waits in the consumer's buffer, not in one batch
    await _until(lambda: service.counts["items"] == 400, timeout=30.0)
    stop.set()
    await task
    assert sum(sizes) == 400
    assert sizes[0] > 20  # the first batch took what was there: no cost was known yet
    assert max(sizes[first:]) <= 20, sizes
