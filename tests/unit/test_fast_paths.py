"""The numpy fast paths give river's own numbers (within 1e-9), batch after batch."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from river import naive_bayes, preprocessing, tree

from streamer.models import COMMITTEE_MODEL, RiverModel, build_model
from streamer.models.fast import compile_fast

SUPPORTED = [
    "StandardScaler | LogisticRegression",
    "StandardScaler | LogisticRegression(l2=0.01)",
    "StandardScaler(with_std=False) | LogisticRegression",
    "LogisticRegression",
    "StandardScaler | SoftmaxRegression",
    "GaussianNB",
    "StandardScaler | GaussianNB",
    COMMITTEE_MODEL,
    "StandardScaler | BaggingClassifier(model=GaussianNB, n_models=3)",
]


def _pair(spec: str) -> tuple[RiverModel, RiverModel]:
    fast, slow = build_model(spec, seed=3), build_model(spec, seed=3)
    assert isinstance(slow, RiverModel)
    slow.fast = False
    return fast, slow  # type: ignore[return-value]


def _stream(seed: int, n: int, d: int, labels: list) -> tuple[np.ndarray, list]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(len(labels), d))
    k = rng.integers(0, len(labels), size=n)
    X = centers[k] + rng.normal(size=(n, d)) * rng.uniform(0.5, 5.0, size=d) + 10.0
    return X, [labels[i] for i in k]


@pytest.mark.parametrize("spec", SUPPORTED)
@pytest.mark.parametrize("labels", [[0, 1], ["cat", "dog", "eel"], [3, 1, 2, 0]])
def test_fast_path_matches_river_batch_after_batch(spec: str, labels: list) -> None:
    fast, slow = _pair(spec)
    X, y = _stream(seed=len(spec) + len(labels), n=600, d=7, labels=labels)
    for start in range(0, 600, 40):
        batch, truth = X[start : start + 40], y[start : start + 40]
        np.testing.assert_allclose(fast.predict_proba(batch), slow.predict_proba(batch), atol=1e-9, rtol=0)
        committee_fast, committee_slow = fast.committee_proba(batch), slow.committee_proba(batch)
        if committee_slow is None:
            assert committee_fast is None
        else:
            np.testing.assert_allclose(committee_fast, committee_slow, atol=1e-9, rtol=0)
        fast.observe(batch)
        slow.observe(batch)
        # the labelled share arrives later, in its own batch (as in the service)
        chosen = np.arange(0, len(batch), 4)
        fast.learn(batch[chosen], [truth[i] for i in chosen])
        slow.learn(batch[chosen], [truth[i] for i in chosen])
    assert fast.fast_path is not None, "the supported spec must really run the fast path"
    assert slow.fast_path is None
    assert fast.classes == slow.classes and fast.version == slow.version


def test_scaler_state_written_back_matches_sequential_welford() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(loc=1e3, scale=50.0, size=(5000, 4))
    batched, sequential = preprocessing.StandardScaler(), preprocessing.StandardScaler()
    fast = compile_fast([batched], naive_bayes.GaussianNB(), ["a", "b", "c", "d"])
    assert fast is not None
    for start in range(0, 5000, 333):  # uneven batches
        fast.observe(X[start : start + 333])
    for row in X:
        sequential.learn_one(dict(zip("abcd", row.tolist(), strict=True)))
    assert dict(batched.counts) == dict(sequential.counts)
    for name in "abcd":
        assert batched.means[name] == pytest.approx(sequential.means[name], rel=1e-12)
        assert batched.vars[name] == pytest.approx(sequential.vars[name], rel=1e-9)


def test_constant_feature_scales_to_zero_like_river() -> None:
    fast, slow = _pair("StandardScaler | LogisticRegression")
    X = np.column_stack([np.full(50, 7.0), np.linspace(0, 1, 50)])
    for model in (fast, slow):
        model.observe(X)
        model.learn(X[:10], [0, 1] * 5)
    np.testing.assert_allclose(fast.predict_proba(X), slow.predict_proba(X), atol=1e-9, rtol=0)


def test_extreme_logits_follow_rivers_clamped_sigmoid() -> None:
    fast, slow = _pair("LogisticRegression")  # no scaler: raw features reach the logits
    X = np.array([[0.0], [1.0]])
    for model in (fast, slow):
        for _ in range(30):
            model.learn(X, [0, 1])
    far = np.array([[-1e6], [1e6], [0.5]])
    np.testing.assert_allclose(fast.predict_proba(far), slow.predict_proba(far), atol=1e-9, rtol=0)


@pytest.mark.parametrize(
    "spec",
    [
        "HoeffdingTreeClassifier",
        "StandardScaler | KNNClassifier",
        "MinMaxScaler | LogisticRegression",
        "StandardScaler | StandardScaler | LogisticRegression",
        "StandardScaler | Perceptron",
        "StandardScaler | ARFClassifier(n_models=3)",
    ],
)
def test_unsupported_models_use_rivers_own_path(spec: str) -> None:
    model = build_model(spec)
    X, y = _stream(seed=1, n=40, d=3, labels=[0, 1])
    model.learn(X, y)
    model.predict_proba(X)
    assert model.fast_path is None


def test_windowed_scaler_is_not_fast() -> None:
    model = RiverModel(preprocessing.StandardScaler(window_size=10) | tree.HoeffdingTreeClassifier())
    model.predict_proba(np.zeros((2, 3)))
    assert model.fast_path is None


def test_fast_path_survives_pickle_and_signed_round_trip() -> None:
    model = build_model("StandardScaler | LogisticRegression")
    X, y = _stream(seed=2, n=200, d=5, labels=[0, 1, 2])
    model.observe(X)
    model.learn(X, y)
    expected = model.predict_proba(X)
    assert model.fast_path is not None
    for restored in (pickle.loads(pickle.dumps(model)), RiverModel.from_bytes(model.to_bytes(b"k" * 16), b"k" * 16)):
        np.testing.assert_array_equal(restored.predict_proba(X), expected)
        assert restored.fast_path is not None
        restored.observe(X)  # the fast path writes into the restored river objects
        assert restored._transformers[0].counts["x0"] == 400
