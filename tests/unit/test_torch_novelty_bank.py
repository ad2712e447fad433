"""Issue 18, defect 7: the torch head's novelty bank is scorer-local state.

In scale-out the learner publishes ``model.to_bytes(key, weights_only=True)`` and a scorer swaps
``TorchHead.from_bytes(blob, key)`` in with :meth:`Sampler.use_model`. The bank of rows the
scorer asked for is its own stream's state: publication must not ship it (it would be up to
``memory x d`` floats, re-downloaded by every scorer at every publication), and a swap must
not lose it (novelty 1.0 everywhere after every publication). A single process checkpoints its
whole sampler by pickle, and there the bank is its own state and stays in the checkpoint.
"""

from __future__ import annotations

import json
import logging
import pickle
import struct

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch head needs the torch extra: pip install 'streamer[torch]'")

from streamer.core.sampler import Sampler  # noqa: E402
from streamer.models.torch_head import _MAGIC, TorchHead  # noqa: E402
from streamer.store.checkpoint import Checkpoint, dumps, loads  # noqa: E402

KEY = b"torch-novelty-bank-test-key"
D = 8


def stream(n: int, d: int = D, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated blobs: ``n`` rows of ``d`` features and their labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = rng.normal(0.0, 3.0, (3, d))
    return centres[y] + rng.normal(0.0, 1.0, (n, d)), y


def head(**options: object) -> TorchHead:
    return TorchHead("mlp", **{"hidden": 8, "heads": 3, "steps": 1, "replay": 16, "memory": 5000, "seed": 0, **options})


def scorer(model: TorchHead | None = None) -> Sampler:
    return Sampler(model or head(), budget=0.4, policy="margin or novelty", explore=0.0, seed=1)


def decide_all(sampler: Sampler, X: np.ndarray, y: np.ndarray, learner: Sampler | None = None) -> np.ndarray:
    """The scorer decides ``X`` in batches of 50; the learner (else the scorer) learns the asks."""
    asked = np.zeros(len(X), dtype=bool)
    for i in range(0, len(X), 50):
        d = sampler.decide(X[i : i + 50])
        asked[i : i + 50] = d.ask
        if d.ask.any():
            (learner or sampler).learn(X[i : i + 50][d.ask], y[i : i + 50][d.ask])
    return asked


def header(blob: bytes) -> dict:
    payload = blob[len(_MAGIC) + 32 :]
    (size,) = struct.unpack_from("<Q", payload)
    return json.loads(payload[8 : 8 + size])


# -- (a) publication ships learned weights only -------------------------------------------------


def test_publication_bytes_carry_no_bank_and_do_not_grow_with_decided_rows() -> None:
    sizes = []
    for n in (200, 4000):
        X, y = stream(n)
        sampler = scorer()  # a replica that decides and learns (--role all with one replica)
        decide_all(sampler, X, y)
        model = sampler.model
        assert model.memory_size > 0.2 * n  # it remembered what it asked for
        blob = model.to_bytes(KEY, weights_only=True)
        meta = header(blob)
        assert "bank" not in {entry["name"] for entry in meta["tensors"]}
        assert meta["meta"]["bank_size"] == 0
        published = TorchHead.from_bytes(blob, KEY)
        assert published.memory_size == 0
        np.testing.assert_array_equal(published.predict_proba(X[:50]), model.predict_proba(X[:50]))
        # the full form (a checkpoint of this process) still carries the bank
        assert len(model.to_bytes(KEY)) > len(blob) + model.memory_size * D * 8 - 1
        sizes.append(len(blob))
    # 20x more decided rows: the publication is the same size, give or take its JSON counters
    assert abs(sizes[1] - sizes[0]) < 200, sizes


def test_every_model_accepts_the_publication_keyword() -> None:
    from streamer.models import build_model
    from streamer.models.portfolio import Portfolio

    X, y = stream(40)
    river = build_model("GaussianNB")
    river.learn(X, y.tolist())
    portfolio = Portfolio({"nb": build_model("GaussianNB"), "torch": head()})
    portfolio.learn(X, y.tolist())
    for model in (river, portfolio):
        restored = type(model).from_bytes(model.to_bytes(KEY, weights_only=True), KEY)
        np.testing.assert_allclose(restored.predict_proba(X), model.predict_proba(X))


def test_a_learner_that_never_decides_holds_no_bank_and_publishes_a_constant_size() -> None:
    X, y = stream(3000)
    learner = Sampler(head(), budget=0.4, policy="margin or novelty", seed=1)  # --role learner
    sizes = []
    for n in (300, 3000):
        learner.learn(X[n - 300 : n], y[n - 300 : n])
        assert learner.model.memory_size == 0
        sizes.append((len(learner.model.to_bytes(KEY)), len(learner.model.to_bytes(KEY, weights_only=True))))
    assert abs(sizes[1][0] - sizes[0][0]) < 200 and abs(sizes[1][1] - sizes[0][1]) < 200, sizes


# -- (b) a swap keeps the scorer's bank ---------------------------------------------------------


@pytest.mark.parametrize("weights_only", [False, True])
def test_after_a_swap_rows_the_scorer_already_asked_for_stay_familiar(weights_only: bool) -> None:
    X, y = stream(600)
    learner = Sampler(head(), budget=0.4, policy="margin or novelty", seed=1)  # never decides
    replica = scorer()
    asked = decide_all(replica, X[:300], y[:300], learner=learner)
    assert asked.sum() > 30
    before = replica.model.score_batch(X[:300], terms=["novelty"])["novelty"]
    assert before[asked].max() < 1e-9  # asked rows are in the bank

    blob = learner.model.to_bytes(KEY, weights_only=True) if weights_only else learner.model.to_bytes(KEY)
    published = TorchHead.from_bytes(blob, KEY)
    replica.use_model(published)

    assert replica.model is published and replica.model.version == learner.model.version
    after = published.score_batch(X[:300], terms=["novelty"])["novelty"]
    assert after.max() < 1.0  # not "everything is new"
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(published.predict_proba(X[:50]), learner.model.predict_proba(X[:50]))
    # the adopted bank goes on growing with the scorer's asks
    size = published.memory_size
    decide_all(replica, X[300:], y[300:], learner=learner)
    assert published.memory_size > size


def test_a_swap_to_a_model_that_carries_a_bank_keeps_the_scorers_own_bank() -> None:
    X, y = stream(400)
    replica = scorer()
    decide_all(replica, X[:200], y[:200])
    mine = replica.model.memory_rows()
    other = scorer(head(seed=5))
    decide_all(other, X[200:], y[200:])
    replica.use_model(TorchHead.from_bytes(other.model.to_bytes(KEY), KEY))
    np.testing.assert_array_equal(replica.model.memory_rows(), mine)


def test_a_swap_into_a_model_that_has_not_seen_data_keeps_the_bank() -> None:
    X, y = stream(300)
    replica = scorer()
    decide_all(replica, X, y)
    mine = replica.model.memory_rows()
    fresh = TorchHead.from_bytes(head().to_bytes(KEY, weights_only=True), KEY)  # a learner's version 0
    replica.use_model(fresh)
    np.testing.assert_array_equal(fresh.memory_rows(), mine)
    replica.decide(X[:50])
    assert fresh.memory_size >= len(mine)


# -- (c) a single process's checkpoint keeps its bank -------------------------------------------


def test_pickle_and_checkpoint_round_trips_keep_the_bank() -> None:
    X, y = stream(300)
    sampler = scorer()
    decide_all(sampler, X, y)
    rows = sampler.model.memory_rows()
    assert len(rows) > 50
    for restored in (pickle.loads(pickle.dumps(sampler)), loads(dumps(Checkpoint(sampler), KEY), KEY).sampler):
        np.testing.assert_array_equal(restored.model.memory_rows(), rows)
        np.testing.assert_array_equal(
            restored.model.score_batch(X, terms=["novelty"])["novelty"],
            sampler.model.score_batch(X, terms=["novelty"])["novelty"],
        )
    np.testing.assert_array_equal(TorchHead.from_bytes(sampler.model.to_bytes(KEY), KEY).memory_rows(), rows)


# -- (d) an incompatible bank is not adopted ----------------------------------------------------


def test_a_bank_of_another_width_is_not_adopted(caplog: pytest.LogCaptureFixture) -> None:
    X, y = stream(200)
    old = scorer()
    decide_all(old, X, y)
    assert old.model.memory_size > 0
    X12, y12 = stream(50, d=12)
    wider = head()
    wider.learn(X12, y12.tolist())
    with caplog.at_level(logging.WARNING, logger="streamer.models"):
        wider.adopt_local_state(old.model)
    assert wider.memory_size == 0
    assert "novelty" in caplog.text and "width" in caplog.text
    assert wider.score_batch(X12[:5], terms=["novelty"])["novelty"].tolist() == [1.0] * 5


def test_a_bank_adopted_before_the_width_is_known_is_dropped_if_the_data_disagree(
    caplog: pytest.LogCaptureFixture,
) -> None:
    X, y = stream(200)
    old = scorer()
    decide_all(old, X, y)
    size = old.model.memory_size
    fresh = head()  # no data seen: the bank's width is taken on trust until the first rows
    fresh.adopt_local_state(old.model)
    assert fresh.memory_size == size and old.model.memory_size == 0  # moved, not shared
    with caplog.at_level(logging.WARNING, logger="streamer.models"):
        scores = fresh.score_batch(np.ones((3, 12)), terms=["novelty"])["novelty"]
    assert scores.tolist() == [1.0, 1.0, 1.0] and fresh.memory_size == 0
    assert "width" in caplog.text


def test_a_bank_of_another_capacity_or_policy_is_not_adopted(caplog: pytest.LogCaptureFixture) -> None:
    X, y = stream(200)
    old = scorer()
    decide_all(old, X, y)
    for options in ({"memory": 100}, {"memory_policy": "reservoir"}, {"memory": 0}):
        new = head(**options)
        new.learn(X[:10], y[:10].tolist())
        new.adopt_local_state(old.model)
        assert new.memory_size == 0, options
