"""The batch-native hot path: bulk encoders, batched histograms, the JSON fast path, and
learning that yields to decisions."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import orjson
import pytest
from aiokafka import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from streamer.config import Settings
from streamer.core.sampler import Sampler
from streamer.kafka.produce import encode_predictions
from streamer.metrics import observe_many
from streamer.models import build_model
from streamer.runtime import Service
from streamer.store.memory import MemoryPendingStore
from streamer.wire import ItemDecoder, encode_label, encode_prediction


def test_bulk_prediction_encoder_writes_the_same_bytes_as_the_per_item_one() -> None:
    ids = ["a", "b", "c", "d"]
    predictions = [np.int64(1), "cat", None, True]
    confidence = np.array([0.5, 1.0, 0.0, 0.25])
    expected = [
        encode_prediction(i, p, c, 7) for i, p, c in zip(ids, predictions, confidence, strict=True)
    ]
    assert encode_predictions(ids, predictions, confidence, np.int64(7)) == expected


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(
    st.tuples(
        st.text(min_size=1, max_size=30) | st.sampled_from(['},{"id":', '"}', "\\", 'a\\"},{"id":"b']),
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20)
        | st.sampled_from(['},{"id":"x', "{}"]),
        st.floats(0.0, 1.0),
    ),
    max_size=40,
))
def test_the_batch_encoder_cuts_exactly_the_records_of_any_ids_and_classes(
    rows: list[tuple[str, object, float]]
) -> None:
    """Issue 19: the batch is one orjson call cut between records; no id or class, however
    it is written, moves a cut."""
    ids = [r[0] for r in rows]
    predictions = [r[1] for r in rows]
    confidence = np.array([r[2] for r in rows], dtype=np.float64)
    expected = [encode_prediction(i, p, c, 3) for i, p, c in rows]
    assert encode_predictions(ids, predictions, confidence, 3) == expected


def test_observe_many_fills_the_same_buckets_as_observe_one_by_one() -> None:
    values = np.random.default_rng(0).exponential(0.01, size=500)
    values[:3] = [0.0, 0.001, 100.0]  # exactly on a bound, and beyond the last
    one, many = (
        Histogram("h", "h", buckets=(0.001, 0.005, 0.01, 0.05), registry=CollectorRegistry())
        for _ in range(2)
    )
    for v in values.tolist():
        one.observe(v)
    observe_many(many, values)
    samples = [{(s.name, s.labels.get("le")): s.value for s in h.collect()[0].samples} for h in (one, many)]
    assert samples[0].keys() == samples[1].keys()
    for key, value in samples[0].items():
        assert samples[1][key] == pytest.approx(value, rel=1e-12), key


def test_json_fast_path_and_record_by_record_path_agree() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 4))
    X[3, 2] = 1e300  # out of range: refused on both paths
    plain = [orjson.dumps({"id": f"i{k}", "features": row}) for k, row in enumerate(X.tolist())]
    odd = [*plain[:10], b'{"id": "s", "features": [1, 2, 3, 4], "stream": "cam"}', *plain[10:]]
    fast, _ = ItemDecoder(n_features=4).decode_batch(plain, [None] * len(plain))
    slow, _ = ItemDecoder(n_features=4).decode_batch(odd, [None] * len(odd))
    keep = [i for i, item_id in enumerate(slow.ids) if item_id != "s"]
    assert fast.ids == [slow.ids[i] for i in keep] and "i3" not in fast.ids
    np.testing.assert_array_equal(fast.X, slow.X[keep])
    bools = [orjson.dumps({"id": "b", "features": [True, 1, 2, 3]}), *plain[:5]]
    batch, errors = ItemDecoder(n_features=4).decode_batch(bools, [None] * len(bools))
    assert [(i, e.reason) for i, e in errors] == [(0, "bad_features"), (4, "out_of_range")]
    assert batch.ids == ["i0", "i1", "i2", "i4"]


class _SlowModel:
    """A model whose learn takes ``seconds`` per row (a wide river model, say)."""

    def __init__(self, seconds: float) -> None:
        self.inner = build_model("StandardScaler | LogisticRegression")
        self.seconds = seconds

    def __getattr__(self, name: str):  # classes, n_features, version, predict_proba...
        return getattr(self.inner, name)

    def learn(self, X: np.ndarray, y: list) -> None:
        time.sleep(self.seconds * len(y))
        self.inner.learn(X, y)


async def test_a_slow_learn_yields_to_the_items_loop() -> None:
    store = MemoryPendingStore()
    n = 100
    ids = [f"i{k}" for k in range(n)]
    X = np.random.default_rng(2).normal(size=(n, 3))
    await store.put_many(ids, X, time.time(), 600.0)
    service = Service(Settings(), Sampler(_SlowModel(0.005), budget=0.1), store)  # type: ignore[arg-type]
    records = [
        ConsumerRecord("labels", 0, k, 0, 0, ids[k].encode(), encode_label(ids[k], k % 2), None, 0, 0, ())
        for k in range(n)
    ]
    gaps: list[float] = []
    done = asyncio.Event()

    async def decisions() -> None:  # stands for the items loop: how long is it kept waiting?
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(decisions())
    began = time.perf_counter()
    await service.process_labels(records)
    took = time.perf_counter() - began
    done.set()
    await ticker
    assert service.counts["labels_applied"] == n
    assert took >= n * 0.005  # the learning really happened (0.5 s)
    assert max(gaps) < 0.1, f"the items loop waited {max(gaps):.3f} s (learning all at once: {took:.2f} s)"
    assert len(gaps) > 20
